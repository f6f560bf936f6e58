"""ResNet3D family: shapes, temporal ops, heads, CAKES wiring, and errors on bad input."""
import pytest
import torch
from torch import nn

from cakes_video import build_model, get_cfg
from cakes_video.models import cakes, resnet3d, subkernels
from cakes_video.models.heads import ClipHead, TSNHead
from cakes_video.models.resnet3d import BLOCKS_PER_STAGE, ResNet3D, is_bottleneck, resolve_stage_ops
from cakes_video.models.temporal_ops import Conv2Plus1d, ConvBN, P3DConv, make_temporal_conv, r2plus1d_midplanes


def _clip(t=4, size=32, seed=0):
    return torch.randn(1, 3, t, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("depth, stage_ops", [(10, [op] * 4) for op in ("3d", "2d", "2plus1d", "p3d", "cakes")]
                         + [(50, ["2plus1d", "p3d", "cakes", "3d"])])  # bottleneck "2d": test_convert
def test_every_op_gives_logits(depth, stage_ops):
    config = subkernels.uniform_channel_config([w for w, _ in resnet3d.cakes_layer_widths(depth)])
    model = ResNet3D(depth=depth, num_classes=7, stage_ops=stage_ops, channel_config=config).eval()
    with torch.no_grad():
        out = model(_clip())
    assert out.shape == (1, 7) and torch.isfinite(out).all()
    assert isinstance(model.head.fc, nn.Linear) and model.head.fc.out_features == 7


def test_registry_builds_from_cfg_and_counts_blocks():
    cfg = get_cfg()
    cfg.MODEL.DEPTH = 34
    model = build_model(cfg)
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == BLOCKS_PER_STAGE[34]
    # torchvision's r3d_18 has 33,371,472 parameters; our default (depth 18, 3d) must match.
    cfg.MODEL.DEPTH = 18
    assert sum(p.numel() for p in build_model(cfg).parameters()) == 33371472
    assert is_bottleneck(50) and not is_bottleneck(34)


def test_temporal_strides_stem_pool_and_temporal_pool_set_feature_shape():
    x = _clip(t=8, size=64)
    strided = ResNet3D(depth=10, temporal_strides=(1, 2, 2, 2)).eval()
    flat = ResNet3D(depth=10, stem="1x7x7", stem_pool=True, temporal_strides=(1, 1, 1, 1),
                    temporal_pool=True).eval()
    with torch.no_grad():
        assert strided.features(x).shape == (1, 512, 1, 4, 4)
        assert flat.features(x).shape == (1, 512, 4, 2, 2)  # pool: T 8 -> 4; stem pool: H /2
    assert flat.stem.conv.kernel_size == (1, 7, 7) and flat.stem.conv.padding == (0, 3, 3)


def test_mc_resolves_to_3d_then_2d():
    assert resolve_stage_ops("mc", (), 1) == ["3d", "2d", "2d", "2d"]
    assert resolve_stage_ops("mc", (), 3) == ["3d", "3d", "3d", "2d"]
    assert resolve_stage_ops("3d", ("2d", "cakes", "3d", "p3d"), 1) == ["2d", "cakes", "3d", "p3d"]
    cfg = get_cfg()
    cfg.MODEL.TEMPORAL_OP = "mc"
    model = build_model(cfg)
    assert model.layer1[0].conv1.conv.kernel_size == (3, 3, 3)
    assert model.layer2[0].conv1.conv.kernel_size == (1, 3, 3)


def test_r2plus1d_midplanes_follow_the_blocks_in_and_out():
    assert r2plus1d_midplanes(64, 64) == 144 and r2plus1d_midplanes(64, 128) == 230
    block = ResNet3D(depth=18, stage_ops=["2plus1d"] * 4).layer2[0]
    assert isinstance(block.conv2, Conv2Plus1d)
    # both convs of the first block of stage 2 use the midplanes of (64, 128), as torchvision does
    assert block.conv1.conv_s.out_channels == block.conv2.conv_s.out_channels == 230


@pytest.mark.parametrize("variant", ["A", "B", "C"])
def test_p3d_variants_keep_shape_and_differ(variant):
    torch.manual_seed(0)
    conv = P3DConv(8, 16, variant, stride=(2, 2, 2)).eval()
    x = torch.randn(2, 8, 4, 8, 8)
    assert conv(x).shape == (2, 16, 2, 4, 4)
    assert conv.conv_t.in_channels == (8 if variant == "B" else 16)
    other = P3DConv(8, 16, "A" if variant != "A" else "B", stride=(2, 2, 2)).eval()
    shared = {k: v for k, v in conv.state_dict().items() if other.state_dict()[k].shape == v.shape}
    other.load_state_dict(shared, strict=False)
    if variant != "B":  # same weights, different wiring -> different outputs
        assert not torch.allclose(conv(x), other(x))


def test_p3d_cycles_variants_over_blocks():
    model = ResNet3D(depth=50, stage_ops=["p3d"] * 4)
    blocks = [b for s in range(1, 5) for b in getattr(model, f"layer{s}")]
    assert "".join(b.conv2.variant for b in blocks) == ("ABC" * 6)[:16]


def test_tsn_head_averages_per_frame_logits():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 3, 4, 4)
    tsn, clip = TSNHead(16, 5).eval(), ClipHead(16, 5).eval()
    clip.load_state_dict(tsn.state_dict())
    per_frame = torch.stack([tsn.fc(x[:, :, t].mean(dim=(2, 3))) for t in range(3)], 1)
    assert torch.allclose(tsn(x), per_frame.mean(1), atol=1e-6)
    assert torch.allclose(clip(x), tsn(x), atol=1e-6)  # linear head: equal in eval mode
    tsn.dropout.p = 0.5
    tsn.train()
    assert not torch.allclose(tsn(x), clip(x))


def test_basic_blocks_take_two_cakes_entries_and_narrow_layers_shrink_next_conv():
    widths = resnet3d.cakes_layer_widths(10)
    config = subkernels.uniform_channel_config([w for w, _ in widths])
    config[0] = {"kxkxk": 10, "kx1x1": 6}  # first conv of layer1.0 may use fewer than 64
    model = ResNet3D(depth=10, stage_ops=["cakes"] * 4, channel_config=config)
    assert model.layer1[0].conv1.counts == {"kxkxk": 10, "kx1x1": 6}
    assert model.layer1[0].conv2.counts == config[1] and model.layer4[0].conv2.counts == config[7]
    assert model.layer1[0].conv2.convs[0].in_channels == 16
    assert model(_clip()).shape == (1, 400)


def test_bottleneck_conv3_takes_the_channels_the_cakes_layer_makes():
    config = [{"kxkxk": 8, "1xkxk": 8}] * 16
    model = ResNet3D(depth=50, num_classes=3, stage_ops=["cakes"] * 4, channel_config=config).eval()
    assert all(b.conv3.in_channels == 16 for s in range(1, 5) for b in getattr(model, f"layer{s}"))
    assert model(_clip()).shape == (1, 3)


def test_mixed_stage_ops_use_cakes_only_where_asked():
    cfg = get_cfg()
    cfg.MODEL.DEPTH = 10
    cfg.MODEL.STAGE_TEMPORAL_OPS = ["3d", "cakes", "2d", "2plus1d"]
    model = build_model(cfg)
    kinds = [type(getattr(model, f"layer{s}")[0].conv1) for s in range(1, 5)]
    assert kinds == [ConvBN, cakes.CakesConv3d, ConvBN, Conv2Plus1d]
    assert model(_clip()).shape == (1, 400)


def test_make_temporal_conv_rejects_unknown_op_and_missing_counts():
    with pytest.raises(ValueError, match="unknown temporal op '4d'"):
        make_temporal_conv("4d", 4, 4)
    with pytest.raises(ValueError, match="counts"):
        make_temporal_conv("cakes", 4, 4)


def test_unknown_model_name_is_an_error_naming_the_key():
    cfg = get_cfg()
    cfg.MODEL.ARCH = "resnet4d"
    with pytest.raises(KeyError, match="MODEL.ARCH.*resnet4d"):
        build_model(cfg)


@pytest.mark.parametrize("config, message", [
    ([{"kxkxk": 64}] * 15, "15 layers, the network has 16"),
    ([{"kxkxk": 60, "1xkxk": 10}] * 16, "sum to 70, the layer needs 1 to 64"),
    ([{"kxkxkxk": 8}] * 16, "unknown sub-kernel 'kxkxkxk'"),
])
def test_invalid_channel_configs_are_rejected(config, message):
    with pytest.raises(ValueError, match=message):
        ResNet3D(depth=50, stage_ops=["cakes"] * 4, channel_config=config)


def test_basic_block_second_layer_must_fill_its_width():
    config = subkernels.uniform_channel_config([w for w, _ in resnet3d.cakes_layer_widths(10)])
    config[1] = {"kxkxk": 32}
    with pytest.raises(ValueError, match="layer 1.*exactly 64"):
        ResNet3D(depth=10, stage_ops=["cakes"] * 4, channel_config=config)
    with pytest.raises(ValueError, match="no channel_config"):
        ResNet3D(depth=10, stage_ops=["cakes"] * 4)


def test_builder_resolves_the_channel_config_once_over_the_cfg_vocabulary(monkeypatch):
    calls = []
    resolve = resnet3d.resolve_channel_config
    monkeypatch.setattr(resnet3d, "resolve_channel_config", lambda *args: calls.append(args) or resolve(*args))
    cfg = get_cfg()
    cfg.MODEL.DEPTH = 10
    cfg.MODEL.TEMPORAL_OP = "cakes"
    cfg.MODEL.CAKES.SUBKERNELS = ["kxkxk", "kx1x1"]
    model = build_model(cfg)
    assert len(calls) == 1
    assert model.layer1[0].conv1.counts == {"kxkxk": 32, "kx1x1": 32}


def test_unreadable_channel_config_file_is_named(tmp_path):
    path = tmp_path / "channels.yaml"
    path.write_text("[{kxkxk: 4")
    with pytest.raises(ValueError, match="cannot read channel config .*channels.yaml"):
        ResNet3D(depth=10, stage_ops=["cakes"] * 4, channel_config=str(path))


def _build_seeded(**kwargs):
    torch.manual_seed(0)
    return ResNet3D(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(depth=18), dict(depth=18, stem="2plus1d", stage_ops=["2plus1d"] * 4),
                                    dict(depth=50, stage_ops=["cakes"] * 4, channel_config="CAKES123D_P")])
def test_default_base_width_is_64_and_the_published_widths(kwargs):
    default, width_64 = _build_seeded(**kwargs), _build_seeded(base_width=64, **kwargs)
    default_state, state_64 = default.state_dict(), width_64.state_dict()
    assert list(default_state) == list(state_64)
    assert all(torch.equal(default_state[k], state_64[k]) for k in default_state)  # same init given the seed
    first_convs = [getattr(default, f"layer{s}")[0].conv1 for s in range(1, 5)]
    expected = [64, 64, 128, 256] if kwargs["depth"] < 50 else [64, 256, 512, 1024]
    assert [next(c.parameters()).shape[1] for c in first_convs] == expected
    assert resnet3d.stage_widths() == [64, 128, 256, 512]
    if kwargs.get("stem") == "2plus1d":
        assert default.stem.conv_s.out_channels == 45  # torchvision's R(2+1)D stem


def _widths(model):
    """(in-channels of every conv after the stem's, BatchNorm widths, head input width)."""
    convs = [m.in_channels for m in model.modules() if isinstance(m, nn.Conv3d)][1:]
    norms = [m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm3d)]
    return convs, norms, model.head.fc.in_features


@pytest.mark.parametrize("op", ["cakes", "3d"])
def test_base_width_32_halves_every_width(op):
    kwargs = dict(depth=10, num_classes=5, stage_ops=[op] * 4, channel_config="uniform")
    full, half = ResNet3D(**kwargs), ResNet3D(base_width=32, **kwargs).eval()
    (full_convs, full_norms, full_head), (convs, norms, head) = _widths(full), _widths(half)
    assert convs == [n // 2 for n in full_convs] and norms == [n // 2 for n in full_norms]
    assert half.stem.conv.out_channels == 32 and head == full_head // 2 == 256
    assert resnet3d.cakes_layer_widths(10, 32) == [(w // 2, fill) for w, fill in resnet3d.cakes_layer_widths(10)]
    if op == "cakes":
        assert [sum(b.conv2.counts.values()) for b in (half.layer1[0], half.layer4[0])] == [32, 256]
    with torch.no_grad():
        assert half(_clip()).shape == (1, 5)


def test_base_width_scales_the_r2plus1d_stem_and_must_be_positive():
    assert ResNet3D(depth=10, stem="2plus1d", base_width=32).stem.conv_s.out_channels == 22  # 45 * 32 // 64
    cfg = get_cfg()
    cfg.MODEL.DEPTH, cfg.MODEL.BASE_WIDTH = 10, 16
    assert build_model(cfg).stem.conv.out_channels == 16
    with pytest.raises(ValueError, match="base_width must be a positive int"):
        ResNet3D(depth=10, base_width=0)
