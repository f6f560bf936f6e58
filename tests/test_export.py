"""Export to ONNX and TorchScript (cakes_video.engine.export, tools/export_net.py): both runtimes
against PyTorch for every temporal op and both heads at two batch sizes (the batch is dynamic),
the metadata read back, and bad input named in one line."""
import importlib.util
import os

import onnx
import pytest
import torch
from torch.nn import functional as F

from cakes_video.checkpoint import save_checkpoint
from cakes_video.config import get_cfg
from cakes_video.config_loader import check_config
from cakes_video.engine.cli import run_tool
from cakes_video.engine.export import ExportError, OnnxSession, export_model, load_onnx, load_torchscript
from cakes_video.models import build_model
from cakes_video.models.inference import inference_form

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAMES, CROP, CLASSES = 4, 32, 5
LOADERS = {"onnx": load_onnx, "torchscript": load_torchscript}


def _tool():
    spec = importlib.util.spec_from_file_location("export_net", os.path.join(REPO, "tools", "export_net.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cfg(head="clip", opts=()):
    cfg = get_cfg()
    cfg.MODEL.DEPTH, cfg.MODEL.BASE_WIDTH, cfg.MODEL.NUM_CLASSES, cfg.MODEL.HEAD = 10, 8, CLASSES, head
    cfg.DATA.NUM_FRAMES, cfg.DATA.TEST_CROP_SIZE = FRAMES, CROP
    cfg.merge_from_list(list(opts))
    return check_config(cfg)


def _trained(cfg, seed=0):
    """The model of ``cfg`` with BatchNorm statistics and affine parameters drawn at random, so that
    folding them into the convs is tested."""
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5), m.bias.data.uniform_(-0.2, 0.2)
    return model


def _assert_matches(model, exported, batches=(1, 3)):
    for n in batches:  # exported at batch 2: both others work only if the batch axis is dynamic
        x = torch.randn(n, 3, FRAMES, CROP, CROP)
        with torch.no_grad():
            expected = model(x)
        got = exported(x)
        assert got.shape == (n, CLASSES)
        assert (got - expected).abs().max().item() < 1e-4


# Every temporal op and both heads, in few exports (each takes seconds): "mc" (2 stages) is 3d
# then 2d stages; three p3d blocks cycle the variants A, B, C.
CASES = {
    "mc-3d-2d-clip": (["MODEL.TEMPORAL_OP", "mc", "MODEL.MC_NUM_3D_STAGES", 2], "clip"),
    "p3d-2plus1d-tsn": (["MODEL.STAGE_TEMPORAL_OPS", ["p3d", "p3d", "p3d", "2plus1d"]], "tsn"),
    "cakes-reference-tsn": (["MODEL.TEMPORAL_OP", "cakes", "MODEL.CAKES.IMPL", "reference"], "tsn"),
    "cakes-efficient-clip": (["MODEL.TEMPORAL_OP", "cakes", "MODEL.CAKES.IMPL", "efficient"], "clip"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_onnx_runtime_and_torchscript_match_pytorch(tmp_path, case):
    opts, head = CASES[case]
    cfg = _cfg(head=head, opts=opts)
    model = _trained(cfg)
    for fmt, load in LOADERS.items():
        path = export_model(model, cfg, str(tmp_path / f"model.{fmt}"), fmt, class_names=list("abcde"))
        exported = load(path)
        _assert_matches(model, exported)
        assert exported.class_names == list("abcde")
        assert (exported.num_frames, exported.crop_size) == (FRAMES, CROP)
        assert exported.mean == list(cfg.DATA.MEAN) and exported.std == list(cfg.DATA.STD)
        assert exported.cfg.is_frozen() and exported.cfg.dump() == cfg.dump()
    _assert_inference_form_with_symbolic_batch(str(tmp_path / "model.onnx"), model)


def _assert_inference_form_with_symbolic_batch(path, model):
    graph = onnx.load(path).graph
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in (graph.input[0], graph.output[0])]
    assert isinstance(dims[0][0], str) and dims[0][0] == dims[1][0]  # one symbol for N in and out
    assert dims[0][1:] == [3, FRAMES, CROP, CROP] and dims[1][1:] == [CLASSES]
    ops = [node.op_type for node in graph.node]
    # BN folded wherever the inference form folds it (P3D-B/C keep the BN after a sum or a shared conv)
    unfolded = sum(isinstance(m, torch.nn.BatchNorm3d) for m in inference_form(model).modules())
    assert "Conv" in ops and ops.count("BatchNormalization") == unfolded


class ShapePoolHead(torch.nn.Module):
    """The pitfall of pytorchvideo #184: a global pool whose kernel is read from ``x.shape``."""

    def __init__(self, head):
        super().__init__()
        self.fc = head.fc

    def forward(self, x):
        return self.fc(F.avg_pool3d(x, x.shape[2:]).flatten(1))


@pytest.mark.slow
def test_a_pool_with_its_kernel_from_the_input_shape_keeps_the_batch_dynamic(tmp_path):
    cfg = _cfg()
    model = _trained(cfg)
    model.head = ShapePoolHead(model.head)
    for fmt, load in LOADERS.items():
        _assert_matches(model, load(export_model(model, cfg, str(tmp_path / f"m.{fmt}"), fmt)))


def test_tool_exports_a_checkpoint_and_checks_it_against_pytorch(tmp_path, capsys):
    cfg = _cfg(opts=["MODEL.TEMPORAL_OP", "cakes", "MODEL.CAKES.IMPL", "efficient"])
    model = _trained(cfg)
    (tmp_path / "config.yaml").write_text(cfg.dump())
    ckpt = save_checkpoint(str(tmp_path / "model.pyth"), model.state_dict())
    out = tmp_path / "out" / "m.pt"  # the ONNX path is the same function (export_model), tested above
    result = _tool().main(["--cfg", str(tmp_path / "config.yaml"), "--checkpoint", ckpt, "--format", "torchscript",
                           "--output", str(out)])
    assert result["max_abs_diff"] < 1e-4 and result["checkpoint"] == ckpt
    assert f"{out}: torchscript of {ckpt}; max abs logit diff vs PyTorch" in capsys.readouterr().out
    exported = load_torchscript(str(out))
    _assert_matches(model, exported)
    assert exported.class_names == [str(i) for i in range(CLASSES)]  # no DATA.CLASS_NAMES: the indices


@pytest.mark.parametrize("args,message", [
    (["--format", "tflite", "--output", "{tmp}/m.onnx"], "ExportError: unknown export format 'tflite'; "
                                                          "expected one of ['onnx', 'torchscript']"),
    (["--format", "onnx", "--output", "{tmp}/m.onnx", "--checkpoint", "{tmp}/missing.pyth"],
     "CheckpointError: checkpoint not found: {tmp}/missing.pyth"),
    (["--format", "onnx", "--output", "{tmp}/config.yaml/m.onnx", "--checkpoint", "{tmp}/missing.pyth"],
     "ExportError: cannot write {tmp}/config.yaml/m.onnx: cannot create its folder: File exists"),
    (["--format", "torchscript", "--output", "{tmp}", "--checkpoint", "{tmp}/missing.pyth"],
     "ExportError: cannot write {tmp}: it is a folder"),
])
def test_tool_names_bad_input_in_one_line_and_writes_nothing(tmp_path, caplog, args, message):
    (tmp_path / "config.yaml").write_text(_cfg().dump())
    argv = ["--cfg", str(tmp_path / "config.yaml")] + [a.format(tmp=tmp_path) for a in args]
    assert run_tool(lambda: _tool().main(argv)) == 1
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [message.format(tmp=tmp_path)]
    assert sorted(os.listdir(tmp_path)) == ["config.yaml"]


def test_loading_a_foreign_or_bare_file_names_it(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    for load in LOADERS.values():
        with pytest.raises(ExportError, match=f"cannot load .* model {junk}"):
            load(str(junk))
    bare = str(tmp_path / "bare.onnx")  # an ONNX file made elsewhere: no metadata
    value = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["N", 3]) for n in "xy"]
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
                                                            value[:1], value[1:])), bare)
    x = torch.randn(4, 3)
    assert torch.equal(OnnxSession(bare)(x), x.relu())  # runs; only load_onnx needs the metadata
    with pytest.raises(ExportError, match=f"{bare} lacks the metadata"):
        load_onnx(bare)
