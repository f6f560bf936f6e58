"""A trained network exported to ONNX or TorchScript, with what a deployment needs stored in the
file, and the exported files loaded back as models.

Both formats hold the inference form (:func:`~cakes_video.models.inference.inference_form`:
BatchNorm folded into every conv, CAKES layers as their sub-kernel convolutions in the plan of
``MODEL.CAKES.IMPL``), float32, input ``[N, 3, T, H, W]`` with a dynamic batch ``N`` and the
config's ``T`` (DATA.NUM_FRAMES) and ``H = W`` (DATA.TEST_CROP_SIZE); output logits ``[N, K]``.

- ONNX: ``torch.onnx.export(dynamo=True)`` (torch.export, then onnxscript), which exports every
  op and head of the package; :data:`METADATA` in the model's ``metadata_props``; run by
  ONNX Runtime (:class:`OnnxSession`, :func:`load_onnx`).
- TorchScript: ``torch.jit.trace`` of the inference form, a ``torch.fx`` graph and so free of
  data-dependent control flow (``torch.jit.script`` cannot compile the CAKES plan's helpers);
  :data:`METADATA` as ``_extra_files``; :func:`load_torchscript`. torch 2.14 marks TorchScript
  deprecated: ONNX is the format to prefer.

onnx, onnxruntime and onnxscript are the optional ``onnx`` extra, imported on first use.
"""
import contextlib
import io
import json
import os
import warnings
from typing import Callable, Dict, List, Optional, Sequence

import torch
import yaml
from fvcore.common.config import CfgNode
from torch import nn

from ..config import get_cfg
from ..datasets.catalog import class_names_of
from ..models.inference import inference_form
from ..utils.io import replace_atomically
from .testing import find_test_checkpoint, trained_model

# The keys stored with an exported model (ONNX metadata_props, TorchScript extra files), all strings.
METADATA = {
    "class_names": "JSON list of the K class names, in logit order",
    "num_frames": "T of the input (DATA.NUM_FRAMES)",
    "crop_size": "H = W of the input (DATA.TEST_CROP_SIZE)",
    "mean": "JSON list: per-channel RGB mean subtracted from frames in [0, 1] (DATA.MEAN)",
    "std": "JSON list: per-channel RGB std the frames are divided by (DATA.STD)",
    "input_layout": "the input tensor: float32 [N, 3, T, H, W], RGB, normalised",
    "config": "the model's full config as YAML",
}
INPUT_LAYOUT = "float32 [N, 3, T, H, W], RGB, (frames / 255 - mean) / std"
EXAMPLE_BATCH = 2  # torch.export specialises a dimension traced at size 1: trace the batch at 2
MAX_ABS_DIFF = 1e-4  # the export is checked against PyTorch to this


class ExportError(ValueError):
    """An export or exported file that cannot be made or read (format, output path, metadata)."""


def model_metadata(cfg, class_names: Sequence[str]) -> Dict[str, str]:
    """:data:`METADATA` of a model of ``cfg`` with ``class_names``."""
    data = cfg.DATA
    return {"class_names": json.dumps(list(class_names)), "num_frames": str(data.NUM_FRAMES),
            "crop_size": str(data.TEST_CROP_SIZE), "mean": json.dumps(list(data.MEAN)),
            "std": json.dumps(list(data.STD)), "input_layout": INPUT_LAYOUT, "config": cfg.dump()}


def example_input(num_frames: int, crop_size: int, batch: int = EXAMPLE_BATCH) -> torch.Tensor:
    """Random clips ``[batch, 3, num_frames, crop_size, crop_size]`` (seeded: exports are reproducible)."""
    return torch.randn(batch, 3, num_frames, crop_size, crop_size, generator=torch.Generator().manual_seed(0))


def export_onnx(module: nn.Module, example: torch.Tensor, path: str, metadata: Dict[str, str]) -> str:
    """Writes ``module`` (run on inputs shaped like ``example``, batch dynamic) to ``path`` as ONNX
    with ``metadata`` in its ``metadata_props``, atomically; returns ``path``."""
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the exporter's notes on torch internals, not on the model
        program = torch.onnx.export(module, (example,), dynamo=True, verbose=False, input_names=["clips"],
                                    output_names=["logits"], dynamic_shapes=({0: batch},))
    program.model.metadata_props.update(metadata)
    replace_atomically(path, lambda tmp: program.save(tmp, external_data=False))
    return path


def export_torchscript(module: nn.Module, example: torch.Tensor, path: str, metadata: Dict[str, str]) -> str:
    """Writes ``module`` traced on ``example`` to ``path`` as TorchScript with ``metadata`` as extra
    files, atomically; returns ``path``."""
    with warnings.catch_warnings(), torch.no_grad():
        # the deprecation notice, and the plan's channel-count comparisons traced as constants
        # (they depend on the weights' shapes only, so the constants are right for every input)
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
        replace_atomically(path, lambda tmp: torch.jit.save(traced, tmp, _extra_files=metadata))
    return path


# --format -> writer(module, example input, path, metadata).
EXPORTERS: Dict[str, Callable[[nn.Module, torch.Tensor, str, Dict[str, str]], str]] = {
    "onnx": export_onnx, "torchscript": export_torchscript}


def check_format(fmt: str) -> None:
    """ExportError unless ``fmt`` is a key of :data:`EXPORTERS`."""
    if fmt not in EXPORTERS:
        raise ExportError(f"unknown export format {fmt!r}; expected one of {list(EXPORTERS)}")


def check_output(path: str) -> None:
    """ExportError naming ``path`` when it cannot be written (a folder, or a folder that cannot be
    created or written into): checked before any work."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot write {path}: cannot create its folder: {e.strerror or e}") from None
    if os.path.isdir(path) or not os.access(folder, os.W_OK):
        raise ExportError(f"cannot write {path}: {'it is a folder' if os.path.isdir(path) else 'no write permission'}")


def export_model(model: nn.Module, cfg, path: str, fmt: str = "onnx",
                 class_names: Optional[Sequence[str]] = None) -> str:
    """Exports trained ``model`` (of ``cfg``) in its inference form to ``path`` in ``fmt`` ("onnx" or
    "torchscript") with :data:`METADATA` (``class_names`` default: :func:`class_names_of` ``cfg``).

    Raises ExportError naming the format or the path; ``path`` is written atomically or not at all.
    """
    check_format(fmt)
    check_output(path)
    names = list(class_names) if class_names is not None else class_names_of(cfg)
    module = inference_form(model, channels_last=False).cpu()  # a copy: ``model`` stays where it is
    example = example_input(cfg.DATA.NUM_FRAMES, cfg.DATA.TEST_CROP_SIZE)
    try:
        return EXPORTERS[fmt](module, example, path, model_metadata(cfg, names))
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror or e}") from None


def export_trained(cfg, path: str, fmt: str = "onnx", checkpoint: str = "") -> Dict:
    """What tools/export_net.py does: the model of ``cfg`` with trained weights (``checkpoint``, else
    as testing finds them: TEST.CHECKPOINT_FILE, OUTPUT_DIR/checkpoints), exported
    (:func:`export_model`), loaded back and run beside PyTorch on the example input.

    Returns ``{"path", "format", "checkpoint", "max_abs_diff"}`` (largest logit difference).
    Bad input fails before anything is written, naming the format, checkpoint or output.
    """
    check_format(fmt)
    check_output(path)
    weights = checkpoint or find_test_checkpoint(cfg)
    model = trained_model(cfg, weights)
    export_model(model, cfg, path, fmt)
    return {"path": path, "format": fmt, "checkpoint": weights,
            "max_abs_diff": max_abs_diff(model, LOADERS[fmt](path), cfg.DATA.NUM_FRAMES, cfg.DATA.TEST_CROP_SIZE)}


@torch.no_grad()
def max_abs_diff(model: nn.Module, exported: Callable, num_frames: int, crop_size: int) -> float:
    """Largest difference between the logits of ``model`` (eval mode) and ``exported`` on :func:`example_input`."""
    x = example_input(num_frames, crop_size)
    return (model.eval()(x) - exported(x)).abs().max().item()


class OnnxSession(nn.Module):
    """An ONNX model run by ONNX Runtime on the CPU, called like a network: float ``[N, 3, T, H, W]``
    (any device, dtype or memory format) -> logits ``[N, K]`` on the input's device.

    ``threads``: ONNX Runtime's intra-op threads (0: its default). ``spinning=False`` keeps idle
    worker threads from busy-waiting between calls (for timing beside other runtimes, which they
    would slow down). A module without parameters, so ``.eval()`` and ``.to()`` change nothing.
    """

    def __init__(self, path: str, threads: int = 0, spinning: bool = True):
        super().__init__()
        import onnxruntime  # the optional onnx extra

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        try:
            self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for missing and invalid files
            raise ExportError(f"cannot load ONNX model {path}: {_first_line(e)}") from None
        self.path, self.input_name = path, self.session.get_inputs()[0].name
        self.version, self.threads = onnxruntime.__version__, threads

    def describe(self) -> str:
        """One line, e.g. ``"onnxruntime 1.22.0, cpu, 2 threads"`` (0 threads: ONNX Runtime's default)."""
        return f"onnxruntime {self.version}, cpu, {self.threads or 'default'} threads"

    def metadata(self) -> Dict[str, str]:
        """The model's ``metadata_props``."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        clips = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: clips})[0]).to(x.device)


class ExportedModel(nn.Module):
    """An exported model loaded back (:func:`load_onnx`, :func:`load_torchscript`): float
    ``[N, 3, T, H, W]`` -> logits ``[N, K]``, with what the export stored: ``class_names`` (K
    str), ``cfg`` (the model's full config, frozen), ``num_frames``, ``crop_size``, ``mean``,
    ``std``; ``path`` and ``runtime`` ("onnxruntime" or "torchscript")."""

    def __init__(self, runner: nn.Module, metadata: Dict[str, str], path: str, runtime: str):
        super().__init__()
        missing = [k for k in METADATA if k not in metadata]
        if missing:
            raise ExportError(f"{path} lacks the metadata {missing} (export it with tools/export_net.py)")
        self.runner, self.path, self.runtime = runner, path, runtime
        try:
            self.class_names: List[str] = json.loads(metadata["class_names"])
            self.num_frames, self.crop_size = int(metadata["num_frames"]), int(metadata["crop_size"])
            self.mean, self.std = json.loads(metadata["mean"]), json.loads(metadata["std"])
        except ValueError as e:
            raise ExportError(f"{path}: unreadable metadata: {e}") from None
        self.cfg = _config_from(metadata["config"], path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.runner(x)


def _config_from(text: str, path: str) -> CfgNode:
    """The defaults with the stored config merged over them (keys added since the export keep
    their defaults), frozen; ExportError naming ``path`` when it does not fit."""
    cfg = get_cfg()
    try:
        cfg.merge_from_other_cfg(CfgNode.load_cfg(text))
    except (KeyError, ValueError, TypeError, AssertionError, yaml.YAMLError) as e:
        raise ExportError(f"{path}: its stored config does not fit this version: {_first_line(e)}") from None
    cfg.freeze()
    return cfg


def load_onnx(path: str, threads: int = 0) -> ExportedModel:
    """An ONNX file of :func:`export_model`, run by ONNX Runtime on the CPU with ``threads``
    intra-op threads (0: its default); see :class:`ExportedModel`. ExportError naming ``path``."""
    session = OnnxSession(path, threads)
    return ExportedModel(session, session.metadata(), path, "onnxruntime")


def load_torchscript(path: str, map_location: str = "cpu") -> ExportedModel:
    """A TorchScript file of :func:`export_model` on ``map_location``; see :class:`ExportedModel`.
    ExportError naming ``path``."""
    extra = dict.fromkeys(METADATA, "")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
            module = torch.jit.load(path, map_location=map_location, _extra_files=extra)
    except Exception as e:  # torch raises several types for missing and foreign files
        raise ExportError(f"cannot load TorchScript model {path}: {_first_line(e)}") from None
    metadata = {k: v.decode() for k, v in extra.items() if v}
    return ExportedModel(module.eval(), metadata, path, "torchscript")


# --format -> loader(path) of the exported file.
LOADERS: Dict[str, Callable[[str], ExportedModel]] = {"onnx": load_onnx, "torchscript": load_torchscript}


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
