"""CAKES layers: the efficient layer and the deployed form match the reference exactly."""
import pytest
import torch
from torch import nn

from cakes_video.models.cakes import CakesConv3d, EfficientCakesConv3d, build_cakes_layer
from cakes_video.models.deploy import DeployedCakesConv3d
from cakes_video.models.fusion import FusedConv3d
from cakes_video.models.inference import ChannelsLast3d, inference_form
from cakes_video.models.plan import output_segments, plan_convs
from cakes_video.models.resnet3d import ResNet3D
from cakes_video.models.rewrite import to_efficient, to_reference
from cakes_video.models.subkernels import official_channel_config, uniform_channel_config

TOL = 1e-5
COUNTS = [
    {"kxkxk": 3, "1xkxk": 5, "kx1x1": 1},  # small groups: merged into the 3x3x3 conv at block 4
    {"1xkxk": 6, "kx1x1": 2},
    {"kxkxk": 0, "1xkxk": 4},  # zero count skipped
    {"kxkxk": 2, "kxkx1": 3, "1x1xk": 5, "kx1xk": 1},  # volumetric vocabulary
]


def _pair(counts, stride=(1, 1, 1), relu=True, block=4):
    torch.manual_seed(0)
    ref = CakesConv3d(6, counts, stride, 3, relu)
    with torch.no_grad():  # non-trivial BN statistics and affine terms
        ref.bn.running_mean.uniform_(-0.5, 0.5)
        ref.bn.running_var.uniform_(0.5, 2.0)
        ref.bn.weight.uniform_(0.5, 1.5)
        ref.bn.bias.uniform_(-0.5, 0.5)
    eff = EfficientCakesConv3d(6, counts, stride, 3, relu, channel_block=block)
    eff.load_state_dict(ref.state_dict())
    return ref, eff


def _max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.mark.parametrize("counts", COUNTS)
@pytest.mark.parametrize("stride", [(1, 1, 1), (2, 2, 2), (1, 2, 2)])
def test_efficient_matches_reference_train_forward_backward(counts, stride):
    ref, eff = _pair(counts, stride)
    x = torch.randn(2, 6, 5, 7, 7)
    xr, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, ye = ref(xr), eff(xe)
    assert yr.shape == ye.shape == (2, sum(counts.values()), *[-(-n // s) for n, s in zip((5, 7, 7), stride)])
    assert _max_diff(yr, ye) < TOL
    g = 0.05 * torch.randn_like(yr)  # keeps weight grads O(1), so 1e-5 is a float32-tight bound
    yr.backward(g)
    ye.backward(g)
    assert _max_diff(xr.grad, xe.grad) < TOL
    for (name, pr), (_, pe) in zip(ref.named_parameters(), eff.named_parameters()):
        assert _max_diff(pr.grad, pe.grad) < TOL, name
    assert _max_diff(ref.bn.running_mean, eff.bn.running_mean) < TOL


@pytest.mark.parametrize("counts", COUNTS)
@pytest.mark.parametrize("relu", [True, False])
def test_eval_and_deployed_match_reference(counts, relu):
    ref, eff = _pair(counts, (1, 2, 2), relu)
    ref.eval(), eff.eval()
    x = torch.randn(2, 6, 4, 6, 6)
    xr, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, ye = ref(xr), eff(xe)
    assert _max_diff(yr, ye) < TOL
    yr.sum().backward()
    ye.sum().backward()
    assert _max_diff(xr.grad, xe.grad) < TOL
    assert _max_diff(ref.convs[0].weight.grad, eff.convs[0].weight.grad) < TOL
    with torch.no_grad():
        for layer in (ref, eff):
            assert _max_diff(DeployedCakesConv3d(layer)(x), yr) < TOL
        if not relu:
            assert (yr < 0).any()  # no ReLU applied
    assert (yr.detach() >= 0).all() or not relu


def test_plan_merges_small_groups_and_keeps_channel_order():
    counts = {"kxkxk": 28, "1xkxk": 35, "kx1x1": 1}
    assert plan_convs(counts, 1) == [("kxkxk", [("kxkxk", 0, 28)]), ("1xkxk", [("1xkxk", 0, 35)]),
                                     ("kx1x1", [("kx1x1", 0, 1)])]
    plan = plan_convs(counts, 16)
    # 28 + 3 spilled 1xkxk rows + the single kx1x1 row fill two 16-blocks of the 3x3x3 conv.
    assert plan == [("kxkxk", [("kxkxk", 0, 28), ("1xkxk", 32, 35), ("kx1x1", 0, 1)]),
                    ("1xkxk", [("1xkxk", 0, 32)])]
    assert output_segments(plan, list(counts)) == [(0, 0, 28), (1, 0, 32), (0, 28, 32)]


def test_deployed_layer_uses_the_plan():
    ref, eff = _pair(COUNTS[0], block=4)
    assert [c.kernel_size for c in DeployedCakesConv3d(ref.eval()).convs] == [(3, 3, 3), (1, 3, 3), (3, 1, 1)]
    deployed = DeployedCakesConv3d(eff.eval())
    # block 4: the single spilled 1xkxk row fills the 3x3x3 conv's first block (3 + 1 rows); the
    # one-row 3x1x1 conv is padded to a full block with 3 zero rows, dropped from the output.
    assert eff.plan_zero_rows == [0, 0, 3] and ref.plan_zero_rows == [0, 0, 0]
    assert [(c.kernel_size, c.out_channels) for c in deployed.convs] == [((3, 3, 3), 4), ((1, 3, 3), 4),
                                                                         ((3, 1, 1), 4)]
    padding = deployed.convs[2]
    assert torch.count_nonzero(padding.weight[1:]) == 0 and torch.count_nonzero(padding.bias[1:]) == 0
    x = torch.randn(1, 6, 3, 5, 5)
    with torch.no_grad():
        assert deployed(x).shape == (1, 9, 3, 5, 5) and _max_diff(deployed(x), ref.eval()(x)) < TOL


def test_reference_plan_keeps_one_conv_per_sub_kernel_even_for_1x1x1_kernels():
    counts = {"kxkxk": 2, "1xkxk": 3}
    assert len(plan_convs(counts, 1, k=1)) == 1  # every kernel is 1x1x1: plan_convs merges the groups
    torch.manual_seed(0)
    ref = CakesConv3d(4, counts, stride=2, kernel_size=1).eval()
    assert ref.plan == [("kxkxk", [("kxkxk", 0, 2)]), ("1xkxk", [("1xkxk", 0, 3)])]
    assert ref.stride == (2, 2, 2) and ref.group_offsets == [0, 2]
    assert all(torch.equal(w, c.weight) for w, c in zip(ref.planned_weights(), ref.convs))
    deployed = DeployedCakesConv3d(ref)
    assert [c.out_channels for c in deployed.convs] == [2, 3]
    x = torch.randn(1, 4, 3, 5, 5)
    with torch.no_grad():
        assert _max_diff(deployed(x), ref(x)) < TOL


def test_state_dicts_are_interchangeable():
    ref, eff = _pair(COUNTS[0])
    assert list(ref.state_dict()) == list(eff.state_dict())
    assert [k for k in ref.state_dict() if k.startswith("convs.")] == ["convs.0.weight", "convs.1.weight",
                                                                      "convs.2.weight"]
    other = CakesConv3d(6, COUNTS[0])
    other.load_state_dict(eff.state_dict())
    assert torch.equal(other.convs[1].weight, ref.convs[1].weight)


def test_zero_counts_are_skipped_in_vocabulary_order():
    layer = build_cakes_layer(4, {"kx1x1": 2, "kxkxk": 0, "1xkxk": 3}, impl="efficient")
    assert layer.subkernels == ["1xkxk", "kx1x1"]
    assert [c.kernel_size for c in layer.convs] == [(1, 3, 3), (3, 1, 1)]
    assert layer(torch.randn(1, 4, 3, 5, 5)).shape == (1, 5, 3, 5, 5)


def test_official_and_uniform_configs_build():
    counts = official_channel_config("CAKES123D_P")[0]
    ref, eff = (build_cakes_layer(64, counts, impl=i) for i in ("reference", "efficient"))
    eff.load_state_dict(ref.state_dict())
    x = torch.randn(1, 64, 2, 6, 6)
    assert _max_diff(ref(x), eff(x)) < TOL
    uniform = uniform_channel_config([64, 7])
    assert uniform == [{"kxkxk": 22, "1xkxk": 21, "kx1x1": 21}, {"kxkxk": 3, "1xkxk": 2, "kx1x1": 2}]
    assert build_cakes_layer(8, uniform[1], impl="efficient")(torch.randn(1, 8, 2, 4, 4)).shape[1] == 7


@pytest.mark.parametrize("counts, match", [
    ({"kxkxk": 0}, "no output channel"),
    ({"3x3x3": 4}, "unknown sub-kernel"),
    ({"kxkxk": -1}, "non-negative int"),
    ({"kxkxk": 2.5}, "non-negative int"),
])
def test_bad_counts_are_rejected(counts, match):
    for impl in ("reference", "efficient"):
        with pytest.raises(ValueError, match=match):
            build_cakes_layer(4, counts, impl=impl)


def test_bad_impl_and_in_channels_are_rejected():
    with pytest.raises(ValueError, match="MODEL.CAKES.IMPL"):
        build_cakes_layer(4, {"kxkxk": 2}, impl="fast")
    with pytest.raises(ValueError, match="in_channels"):
        build_cakes_layer(0, {"kxkxk": 2})


def _tiny_net(op, impl="reference"):
    torch.manual_seed(0)
    net = ResNet3D(depth=10, num_classes=5, stage_ops=(op,) * 4, channel_config="uniform" if op == "cakes" else None,
                   cakes_impl=impl)
    for m in net.modules():  # non-trivial BN statistics, so folding is really tested
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.mark.parametrize("op, fuse", [("cakes", False), ("cakes", True), ("3d", False), ("2plus1d", True)])
def test_deploy_network_folds_every_batchnorm(op, fuse):
    net = _tiny_net(op, "efficient" if op == "cakes" else "reference")
    x = torch.randn(1, 3, 4, 32, 32)
    deployed = inference_form(net, fuse=fuse, channels_last=False)
    assert not any(isinstance(m, nn.BatchNorm3d) for m in deployed.modules())
    fused = [m for m in deployed.modules() if isinstance(m, FusedConv3d)]
    assert bool(fused) == fuse
    if fuse:  # every ReLU went into a conv, but layer1's: its sum has no plain conv (CAKES + identity)
        relus = [n for n in deployed.graph.nodes
                 if n.op == "call_module" and isinstance(deployed.get_submodule(n.target), nn.ReLU)]
        assert len(relus) == (op == "cakes")
    with torch.no_grad():
        assert _max_diff(deployed(x), net(x)) < 1e-4
        assert _max_diff(deployed(x.contiguous(memory_format=torch.channels_last_3d)), net(x)) < 1e-4
    assert any(isinstance(m, nn.BatchNorm3d) for m in net.modules())  # the original is untouched


def test_inference_form_plans_reference_layers_and_runs_channels_last():
    net = _tiny_net("cakes", "reference")
    efficient = to_efficient(net)
    assert efficient is not net and to_efficient(efficient) is efficient  # nothing left to plan
    assert all(type(m) is not CakesConv3d for m in efficient.modules())
    assert efficient.state_dict().keys() == net.state_dict().keys()
    fast = inference_form(net, plan=True, fuse=True)
    assert isinstance(fast, ChannelsLast3d) and not fast.training
    assert all(w.is_contiguous(memory_format=torch.channels_last_3d) for w in
               (c.weight for m in fast.modules() if isinstance(m, DeployedCakesConv3d) for c in m.convs))
    planned = [m for m in fast.modules() if isinstance(m, DeployedCakesConv3d)]
    plain = [m for m in inference_form(net).modules() if isinstance(m, DeployedCakesConv3d)]
    # the plan fills channel blocks with zero rows, the reference layout does not
    assert sum(c.weight.shape[0] for m in planned for c in m.convs) > sum(c.weight.shape[0] for m in plain for c in m.convs)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert _max_diff(fast(x), net(x)) < 1e-4 and _max_diff(efficient(x), net(x)) < 1e-5


def test_to_reference_keeps_weights_and_outputs():
    net = _tiny_net("cakes", "efficient")
    ref = to_reference(net)
    assert not any(isinstance(m, EfficientCakesConv3d) for m in ref.modules())
    assert ref.state_dict().keys() == net.state_dict().keys()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert _max_diff(ref(x), net(x)) < TOL
    plain = _tiny_net("3d")
    assert to_reference(plain) is plain


def test_deploy_folds_torchvision_conv_subclasses():
    from torchvision.models.video import mc3_18

    net = mc3_18(weights=None).eval()  # its convs are nn.Conv3d subclasses (Conv3DSimple, ...)
    deployed = inference_form(net, fuse=True, channels_last=False)  # and its shortcut runs after conv2: the fused add moves
    assert not any(isinstance(m, nn.BatchNorm3d) for m in deployed.modules())
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert _max_diff(deployed(x), net(x)) < 1e-4


def test_fused_conv_off_onednn_runs_the_same_convolution():
    """Off oneDNN (a GPU, or here float64) the plain ops run: stride and padding must not swap."""
    conv = nn.Conv3d(3, 4, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3)).double().eval()
    fused = FusedConv3d(conv, relu=True).double()
    x = torch.randn(1, 3, 2, 9, 11, dtype=torch.float64)
    with torch.no_grad():
        expected = conv(x)
        other = torch.randn_like(expected)
        assert _max_diff(fused(x), expected.relu()) < 1e-12
        assert _max_diff(fused(x, other), (expected + other).relu()) < 1e-12
    assert not fused._packed  # oneDNN never ran
