"""The CAKES supernet (cakes_video/search/): its layers, the cost and performance modes, its
initialisations (scratch, ImageNet inflation, slicing a trained 3D model), inheriting the kept
channels into a derived network, and training it through the engine (resumable)."""
import copy
import re

import pytest
import torch
from test_engine_fakes import FakeLoaderFn, tiny_cfg
from test_convert import _randomise_bn
from test_engine_train import CrashAfterStep

from cakes_video.checkpoint import save_checkpoint
from cakes_video.config import ConfigError, get_cfg
from cakes_video.config_loader import load_config
from cakes_video.engine.monitor import read_metrics
from cakes_video.engine.search import shrink_to_config, train_supernet
from cakes_video.models.resnet3d import ResNet3D, cakes_layer_widths
from cakes_video.search.build import build_supernet, plain_3d_network, shrunk_network
from cakes_video.search.init import slice_sum
from cakes_video.search.supernet import (SupernetLayer, apply_sparsity, inherit_weights, supernet_from_3d,
                                         supernet_layers, supernet_scores)

CANDIDATES = ["kxkxk", "1xkxk", "kx1x1"]


def _cfg(depth=10, *overrides):
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.DEPTH", depth, "MODEL.BASE_WIDTH", 4, "MODEL.NUM_CLASSES", 5, *overrides])
    return cfg


def _derived(depth, selection, num_classes=5):
    config = [{s: len(idx) for s, idx in layer.items() if idx} for layer in selection]
    return ResNet3D(depth=depth, num_classes=num_classes, stage_ops=["cakes"] * 4, channel_config=config,
                    base_width=4)


def _random_selection(depth, seed=0):
    """Non-residual layers: a random 1..C of the N x C pairs; residual layers: contiguous candidate blocks."""
    g, selection = torch.Generator().manual_seed(seed), []
    for width, must_fill in cakes_layer_widths(depth, 4):
        if must_fill:
            cuts = sorted(torch.randint(0, width + 1, (2,), generator=g).tolist())
            bounds = [0, *cuts, width]
            selection.append({s: list(range(bounds[n], bounds[n + 1])) for n, s in enumerate(CANDIDATES)})
        else:
            total = int(torch.randint(1, width + 1, (1,), generator=g))
            pairs = torch.randperm(len(CANDIDATES) * width, generator=g)[:total].tolist()
            selection.append({s: sorted(p % width for p in pairs if p // width == n) for n, s in enumerate(CANDIDATES)})
    return selection


@pytest.mark.parametrize("depth", [10, 50])
def test_the_supernet_searches_exactly_the_cakes_layers(depth):
    model = build_supernet(_cfg(depth))
    layers = supernet_layers(model)
    assert [(m.width, m.must_fill) for m in layers] == cakes_layer_widths(depth, 4)
    assert all(m.candidates == CANDIDATES and m.bn.num_features == 3 * m.width for m in layers)
    if depth == 50:  # conv3 reads the N x C concatenated channels
        assert model.layer1[0].conv3.in_channels == 3 * 4
    else:  # conv2 reads conv1's N x C; its candidates sum back to C for the residual
        assert model.layer1[0].conv2.convs[0].in_channels == 3 * 4
    x = torch.randn(2, 3, 4, 16, 16)
    assert model(x).shape == model.eval()(x).shape == (2, 5)
    scores = supernet_scores(model)
    assert len(scores) == len(layers) and set(scores[0]) == set(CANDIDATES) and scores[0]["1xkxk"].shape == (4,)


def test_candidates_any_subset_in_vocabulary_order_and_the_volumetric_set():
    model = build_supernet(_cfg(10, "SEARCH.CANDIDATES", ["kx1x1", "1xkxk"]))
    assert supernet_layers(model)[0].candidates == ["1xkxk", "kx1x1"]
    volumetric = build_supernet(_cfg(10, "SEARCH.CANDIDATES", ["kxkx1", "kx1xk", "1xkxk"]))
    assert [c.kernel_size for c in supernet_layers(volumetric)[0].convs] == [(1, 3, 3), (3, 3, 1), (3, 1, 3)]
    assert volumetric(torch.randn(2, 3, 4, 16, 16)).shape == (2, 5)


@pytest.mark.parametrize("key, value, message", [
    ("SEARCH.MODE", "fast", "SEARCH.MODE: 'fast' is not one of"),
    ("SEARCH.INIT", "imagenet", "SEARCH.INIT_CHECKPOINT: SEARCH.INIT 'imagenet' needs a weights file"),
    ("SEARCH.SLICE_RULE", "mean", "SEARCH.SLICE_RULE: 'mean' is not one of"),
    ("SEARCH.CANDIDATES", ["kxkxk", "2x2x2"], "SEARCH.CANDIDATES: unknown sub-kernels ['2x2x2']"),
])
def test_bad_search_choices_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_supernet(_cfg(10, key, value))


def test_the_sum_slice_is_exact_on_static_and_spatially_constant_clips():
    plain = plain_3d_network(_cfg(10)).eval()
    conv3d = copy.deepcopy(plain.layer1[0].conv1.conv)  # [4, 4, 3, 3, 3]
    supernet = supernet_from_3d(plain, CANDIDATES, True, slice_sum)
    k333, k133, k311 = supernet.layer1[0].conv1.convs
    assert torch.equal(k333.weight, conv3d.weight)
    g = torch.Generator().manual_seed(0)
    static = torch.randn(1, 4, 1, 8, 8, generator=g).repeat(1, 1, 6, 1, 1)  # every frame the same
    torch.testing.assert_close(k133(static)[:, :, 1:-1], conv3d(static)[:, :, 1:-1])
    constant = torch.randn(1, 4, 6, 1, 1, generator=g).repeat(1, 1, 1, 8, 8)  # every pixel the same
    torch.testing.assert_close(k311(constant)[..., 1:-1, 1:-1], conv3d(constant)[..., 1:-1, 1:-1])
    # ... and only there: a moving clip tells the sub-kernels from the 3x3x3 kernel
    moving = torch.randn(1, 4, 6, 8, 8, generator=g)
    assert not torch.allclose(k133(moving)[:, :, 1:-1], conv3d(moving)[:, :, 1:-1], atol=1e-3)


def test_imagenet_init_follows_the_official_inflation_rules(tmp_path):
    # A 2D ResNet-10 of width 4 in torchvision's names: a C2D network's weights without the time axis.
    c2d = ResNet3D(depth=10, num_classes=5, stem="1x7x7", stage_ops=["2d"] * 4, base_width=4)
    rename = {"stem.conv.": "conv1.", "stem.bn.": "bn1.", ".conv1.conv.": ".conv1.", ".conv2.conv.": ".conv2.",
              ".conv1.bn.": ".bn1.", ".conv2.bn.": ".bn2.", "head.fc.": "fc."}
    state2d = {}
    for key, value in _randomise_bn(c2d).state_dict().items():
        for old, new in rename.items():
            key = key.replace(old, new)
        state2d[key] = value.squeeze(2) if value.dim() == 5 else value
    torch.save(state2d, tmp_path / "resnet10.pth")
    model = build_supernet(_cfg(10, "MODEL.STEM", "1x7x7", "SEARCH.INIT", "imagenet",
                                "SEARCH.INIT_CHECKPOINT", str(tmp_path / "resnet10.pth")))
    w2d = state2d["layer2.0.conv1.weight"]  # [8, 4, 3, 3]
    k333, k133, k311 = (c.weight for c in model.layer2[0].conv1.convs)
    torch.testing.assert_close(k333, w2d.unsqueeze(2).repeat(1, 1, 3, 1, 1) / 3)
    torch.testing.assert_close(k133[:, :, 0], w2d)
    torch.testing.assert_close(k311[:, :, :, 0, 0], w2d.sum(dim=(2, 3)).unsqueeze(2).repeat(1, 1, 3) / 3)
    bn = model.layer2[0].conv1.bn
    assert torch.equal(bn.weight, state2d["layer2.0.bn1.weight"].repeat(3))
    assert torch.equal(bn.running_var, state2d["layer2.0.bn1.running_var"].repeat(3))
    # conv2 reads conv1's three copies: inflated, tiled over them
    torch.testing.assert_close(model.layer2[0].conv2.convs[1].weight[:, 16:24, 0], state2d["layer2.0.conv2.weight"])


def _toy_batch(seed=0, n=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 4, 16, 16, generator=g), torch.randint(0, 5, (n,), generator=g)


@pytest.mark.parametrize("reweight", [True, False])
def test_cost_weighted_step_pushes_expensive_sub_kernels_down_faster(reweight):
    torch.manual_seed(0)
    model = build_supernet(_cfg(10, "SEARCH.MODE", "cost"))
    before = [layer.gammas().detach().abs().clone() for layer in supernet_layers(model)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(10):
        x, y = _toy_batch(step)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        apply_sparsity(model, 0.1, reweight)
        optimizer.step()
    drop = torch.stack([(b - layer.gammas().detach().abs()).mean(dim=1)
                        for b, layer in zip(before, supernet_layers(model))]).mean(dim=0)  # [N]
    if reweight:  # kxkxk (27 MACs a channel) > 1xkxk (9) > kx1x1 (3)
        assert drop[0] > 2 * drop[1] and drop[1] > drop[2] > 0
    else:  # network slimming: the same push on every candidate
        assert torch.allclose(drop, drop.mean().expand(3), rtol=0.3)


def test_channel_dropout_keeps_exactly_c_channels_with_their_bn_entries_and_updates_bn_stats():
    torch.manual_seed(0)
    for depth in (10, 50):
        model = build_supernet(_cfg(depth)).train()
        before = [layer.bn.running_mean.clone() for layer in supernet_layers(model)]
        x, y = _toy_batch()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        for layer, mean in zip(supernet_layers(model), before):
            rows = torch.cat([(c.weight.grad.flatten(1).abs().sum(1) > 0) for c in layer.convs])  # [N * C]
            bn_rows = (layer.bn.weight.grad != 0) & (layer.bn.bias.grad != 0)
            assert torch.equal(rows, bn_rows)  # a kept pair: its conv rows and its BN entries
            if layer.must_fill:  # exactly one candidate per output channel
                assert torch.equal(rows.view(3, layer.width).sum(0), torch.ones(layer.width, dtype=torch.long))
            else:
                assert int(rows.sum()) == layer.width
            assert not torch.equal(layer.bn.running_mean, mean)  # every channel's statistics move
            assert not torch.any(layer.bn.running_mean == mean)


def test_channel_dropout_draws_a_new_subnet_each_step_and_none_in_eval():
    layer = SupernetLayer(4, 6, CANDIDATES, channel_dropout=True)
    torch.manual_seed(0)
    first, second = layer.sample_keep(), layer.sample_keep()
    assert first.sum() == second.sum() == 6 and not torch.equal(first, second)
    x = torch.randn(2, 4, 3, 5, 5)
    layer.eval()
    full = SupernetLayer(4, 6, CANDIDATES)
    full.load_state_dict(layer.state_dict())
    torch.testing.assert_close(layer(x), full.eval()(x) / 3)  # every pair at its keep probability


def test_inherited_weights_give_the_supernet_outputs_on_the_kept_channels():
    for depth in (10, 50):
        torch.manual_seed(depth)
        supernet = _randomise_bn(build_supernet(_cfg(depth, "SEARCH.MODE", "cost"))).eval()
        selection = _random_selection(depth)
        derived = inherit_weights(supernet, _derived(depth, selection), selection).eval()
        with torch.no_grad():  # network slimming: a dropped pair has BN scale and shift zero
            for layer, chosen in zip(supernet_layers(supernet), selection):
                dropped = torch.ones(3, layer.width, dtype=torch.bool)
                for n, s in enumerate(CANDIDATES):
                    dropped[n, chosen[s]] = False
                layer.bn.weight[dropped.flatten()] = 0
                layer.bn.bias[dropped.flatten()] = 0
        x = torch.randn(2, 3, 4, 16, 16)
        torch.testing.assert_close(derived(x), supernet(x), rtol=1e-4, atol=1e-5)


def test_a_scattered_residual_selection_keeps_its_counts_and_warns(caplog):
    supernet = build_supernet(_cfg(10))
    selection = _random_selection(10)
    selection[1] = {"kxkxk": [1, 3], "1xkxk": [0, 2], "kx1x1": []}  # layer1.0.conv2 (width 4) feeds the residual
    derived = inherit_weights(supernet, _derived(10, selection), selection)
    assert "a residual layer's CAKES groups are contiguous" in caplog.text and "[1]" in caplog.text
    # its 1xkxk group is output channels 2, 3: candidate 1's rows 2, 3, on conv1's kept channels
    conv1_kept = [n * 4 + j for n, s in enumerate(CANDIDATES) for j in selection[0][s]]
    assert torch.equal(derived.layer1[0].conv2.convs[1].weight,
                       supernet.layer1[0].conv2.convs[1].weight[2:4][:, conv1_kept])
    selection[1] = {"kxkxk": [0, 1, 2], "1xkxk": [2]}  # channel 2 twice, 3 never
    with pytest.raises(ValueError, match="layer 1: a residual layer's selection must give each"):
        inherit_weights(supernet, _derived(10, selection), selection)


def test_shrinking_a_trained_3d_model_to_its_3x3x3_channels_gives_it_back_exactly():
    # A trained R3D sliced into a performance-mode supernet, derived keeping every kxkxk
    # channel: the derived CAKES network is the R3D itself (the scaling is consistent end to end).
    for depth in (10, 50):
        torch.manual_seed(depth)
        r3d = _randomise_bn(plain_3d_network(_cfg(depth))).eval()
        supernet = supernet_from_3d(copy.deepcopy(r3d), CANDIDATES, True, slice_sum)
        selection = [{"kxkxk": list(range(w))} for w, _ in cakes_layer_widths(depth, 4)]
        derived = inherit_weights(supernet, _derived(depth, selection), selection).eval()
        x = torch.randn(2, 3, 4, 16, 16)
        torch.testing.assert_close(derived(x), r3d(x), rtol=1e-4, atol=1e-5)


def test_shrink_from_a_trained_checkpoint_through_the_config(tmp_path):
    r3d = _randomise_bn(plain_3d_network(_cfg(10, "MODEL.NUM_CLASSES", 7)))
    save_checkpoint(str(tmp_path / "r3d.pyth"), r3d.state_dict())
    model = build_supernet(_cfg(10, "SEARCH.INIT", "checkpoint", "SEARCH.INIT_CHECKPOINT", str(tmp_path / "r3d.pyth")))
    assert torch.equal(model.stem.conv.weight, r3d.stem.conv.weight)  # the body is the trained model's
    assert model.head.fc.out_features == 5  # another number of classes: a new head
    torch.testing.assert_close(model.layer3[0].conv1.convs[2].weight, r3d.layer3[0].conv1.conv.weight.sum((3, 4), True))


def test_a_shrink_without_search_keeps_each_channels_own_sliced_kernel(tmp_path):
    r3d = _randomise_bn(plain_3d_network(_cfg(10))).eval()
    save_checkpoint(str(tmp_path / "r3d.pyth"), r3d.state_dict())
    # SEARCH.MODE cost scales a supernet's shares by 1/N: the shrink slices in performance mode anyway
    cfg = _cfg(10, "SEARCH.INIT", "checkpoint", "SEARCH.INIT_CHECKPOINT", str(tmp_path / "r3d.pyth"), "SEARCH.MODE", "cost")
    every_3x3x3 = [{"kxkxk": list(range(w))} for w, _ in cakes_layer_widths(10, 4)]
    x = torch.randn(2, 3, 4, 16, 16)
    torch.testing.assert_close(shrunk_network(cfg, _derived(10, every_3x3x3)).eval()(x), r3d(x), rtol=1e-4, atol=1e-5)
    # a uniform split: layer1.0.conv1's output channels 0, 1 | 2 | 3 keep kxkxk | 1xkxk | kx1x1 of their own kernels
    uniform = [{"kxkxk": [0, 1], "1xkxk": [2], "kx1x1": [3]} if w == 4 else {"kxkxk": list(range(w))}
               for w, _ in cakes_layer_widths(10, 4)]
    conv1 = shrunk_network(cfg, _derived(10, uniform)).layer1[0].conv1
    kernel = r3d.layer1[0].conv1.conv.weight
    assert torch.equal(conv1.convs[0].weight, kernel[:2])
    torch.testing.assert_close(conv1.convs[1].weight, kernel[2:3].sum(2, True))
    torch.testing.assert_close(conv1.convs[2].weight, kernel[3:].sum((3, 4), True))


def test_shrink_to_config_fine_tunes_the_sliced_network_and_needs_a_trained_model(tmp_path):
    r3d = plain_3d_network(_search_cfg(tmp_path / "r3d"))
    save_checkpoint(str(tmp_path / "r3d.pyth"), r3d.state_dict())
    cfg = _search_cfg(tmp_path / "shrunk", "SOLVER.MAX_EPOCH", 1, "SEARCH.INIT", "checkpoint",
                      "SEARCH.INIT_CHECKPOINT", str(tmp_path / "r3d.pyth"), "MODEL.CAKES.CONV_CONFIG", "uniform")
    assert shrink_to_config(cfg, FakeLoaderFn(num_videos=8))["run"] == str(tmp_path / "shrunk")
    assert load_config(str(tmp_path / "shrunk" / "config.yaml")).MODEL.TEMPORAL_OP == "cakes"
    assert [r["epoch"] for r in read_metrics(str(tmp_path / "shrunk"), "epoch")] == [1]
    with pytest.raises(ConfigError, match="SEARCH.INIT: shrinking starts from a trained 3D model"):
        shrink_to_config(_search_cfg(tmp_path / "x"), FakeLoaderFn(num_videos=8))


def _search_cfg(out, *overrides):
    return tiny_cfg(out, "MODEL.DEPTH", 10, "MODEL.BASE_WIDTH", 4, "DATA.TRAIN_CROP_SIZE", 16,
                    "DATA.TEST_CROP_SIZE", 16, *overrides, arch="resnet3d")


def _signal_batch(n):
    """4 classes told apart by a channel's mean (+1 on channel 0, 1, 2 or -1 on 0) under unit noise."""
    y = torch.randint(0, 4, (n,))
    x = torch.randn(n, 3, 4, 16, 16)
    x[torch.arange(n), y % 3] += torch.where(y < 3, 1.0, -1.0).view(n, 1, 1, 1)
    return x, y


@pytest.mark.slow
def test_a_performance_supernet_evaluates_meaningfully_on_a_toy_problem():
    torch.manual_seed(0)
    model = build_supernet(_cfg(10, "MODEL.BASE_WIDTH", 8, "MODEL.NUM_CLASSES", 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(50):  # every step trains one random subnet
        x, y = _signal_batch(16)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model.train()(x), y).backward()
        optimizer.step()
    x, y = _signal_batch(256)
    with torch.no_grad():
        top1 = (model.eval()(x).argmax(1) == y).float().mean().item()
    assert top1 >= 0.8  # chance: 0.25


@pytest.mark.slow
def test_a_killed_search_resumes_exactly(tmp_path):
    loader_fn = FakeLoaderFn(num_videos=8)
    opts = ("SOLVER.MAX_EPOCH", 3, "SEARCH.MODE", "performance")
    full = train_supernet(_search_cfg(tmp_path / "full", *opts), loader_fn)
    crashed_cfg = _search_cfg(tmp_path / "crashed", *opts)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(crashed_cfg, loader_fn, hooks=[CrashAfterStep(5)])
    resumed = train_supernet(crashed_cfg, loader_fn)
    losses = {d: {r["iteration"]: r["loss"] for r in read_metrics(str(tmp_path / d), "train_iter")}
              for d in ("full", "crashed")}
    assert losses["full"] == losses["crashed"] and len(losses["full"]) == 6
    assert all(torch.equal(a[s], b[s]) for a, b in zip(full["scores"], resumed["scores"]) for s in a)


def test_cost_mode_training_adds_the_sparsity_and_no_bn_weight_decay(tmp_path):
    cfg = _search_cfg(tmp_path, "SOLVER.MAX_EPOCH", 1, "SEARCH.MODE", "cost", "SEARCH.SPARSITY", 0.5,
                      "SOLVER.BASE_LR", 0.01, "SOLVER.WEIGHT_DECAY", 0.5)
    result = train_supernet(cfg, FakeLoaderFn(num_videos=8))
    scores = torch.stack([torch.stack([layer[s] for s in CANDIDATES]).mean(1) for layer in result["scores"]]).mean(0)
    assert scores[0] < scores[1] < scores[2] < 1.0  # from 1: kxkxk pushed down most
