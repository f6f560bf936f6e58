"""How the models of a run execute: one :class:`ExecutionPath` for all, each model's :class:`Entry`,
the timed call (:func:`make_step`) and its input (:func:`make_input`).

Invalid settings raise :class:`SettingError`, a ValueError whose message names the settings
(the :class:`ExecutionPath` fields and the run's arguments, e.g. "fuse needs deploy"); a front end
such as the command line re-renders it with its own names (:meth:`SettingError.render`).
"""
import contextlib
import string
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional

import torch
from torch import nn

from ..models.inference import inference_form
from ..utils.modes import AMP_DTYPES

# ``amp`` values: the autocast dtypes of utils.modes ("off" there is ``amp=None`` here).
AUTOCAST_DTYPES = {name: dtype for name, dtype in AMP_DTYPES.items() if dtype is not None}


class SettingError(ValueError):
    """Settings that are invalid or cannot go together.

    ``template`` names each setting it is about by a ``{field}`` that ``values`` does not fill
    (``"{fuse} needs {deploy}: ..."``); ``values`` fill the others (``{given!r}``). ``str()``
    reads with every setting under its own name; :meth:`render` under the names a front end
    gives them (the tools: their flags).
    """

    def __init__(self, template: str, **values):
        self.template, self.values = template, values
        super().__init__(self.render({}))

    @property
    def settings(self) -> List[str]:
        """The settings the message names, in order (each once)."""
        fields = [name for _, name, _, _ in string.Formatter().parse(self.template) if name]
        return list(dict.fromkeys(f for f in fields if f not in self.values))

    def render(self, names: Mapping[str, str]) -> str:
        """The message with each setting called ``names[setting]`` (its own name where absent)."""
        return self.template.format(**{s: names.get(s, s) for s in self.settings}, **self.values)


@dataclass
class Entry:
    """One model in a run: ``name``, the module, and the reference-layer twin of a CAKES model.

    ``module_gflops``: conv + linear GFLOPs of one view ``[1, 3, T, H, W]`` inside each
    module of the undeployed model, by qualified name (deploying keeps the names).
    """

    name: str
    model: nn.Module
    reference: Optional[nn.Module] = None
    result: Dict = field(default_factory=dict)
    module_gflops: Dict[str, float] = field(default_factory=dict)


class CompiledModel(nn.Module):
    """``torch.compile(model)`` (inductor), called with the config it needs: ``[N, 3, T, H, W]`` -> logits ``[N, K]``.

    ``freeze``: inductor's weight freezing (constants folded, BN folded into convs, oneDNN weights
    prepacked) whenever the call runs without grad (``torch.inference_mode`` / ``no_grad``).
    Dynamo reads the *global* ``torch._inductor.config.freezing`` while tracing (whether to lift
    weights as graph inputs), so ``torch.compile(options={"freezing": True})`` alone freezes
    nothing; the flag is therefore patched around every call (a small fixed cost per call). A
    compile that would exceed Dynamo's recompile limit (8 graphs per code object and process:
    frozen weights make one graph per model of a class) raises instead of silently running eager.
    """

    def __init__(self, model: nn.Module, freeze: bool):
        super().__init__()
        self.compiled = torch.compile(model)
        self.freeze = freeze

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Lazy: the compiler's config modules are heavy and only compiled runs need them.
        import torch._dynamo.config as dynamo_config
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=self.freeze), dynamo_config.patch(fail_on_recompile_limit_hit=True):
            return self.compiled(x)


@dataclass(frozen=True)
class ExecutionPath:
    """How every model of a run executes; one object, so that all models get the same path.

    ``device``; ``channels_last``: channels_last_3d weights and input (else contiguous);
    ``deploy``: BatchNorm folded into the convs (:func:`~cakes_video.models.inference.inference_form`);
    ``fuse``: with ``deploy``, conv + ReLU / residual add in one oneDNN call; ``compile``:
    :class:`CompiledModel` applied last (weights frozen for inference; not with ``fuse``, whose
    convs break the graph, while inductor's freezing fuses the same post-ops itself); ``train``:
    time a forward + backward step instead of an inference forward; ``amp``: "bf16" or "fp16"
    runs every call under ``torch.autocast`` in that dtype (weights stay float32, as in
    mixed-precision training), None runs float32. Invalid combinations raise :class:`SettingError`.
    """

    device: str = "cpu"
    channels_last: bool = True
    deploy: bool = False
    fuse: bool = False
    compile: bool = False
    train: bool = False
    amp: Optional[str] = None

    def __post_init__(self):
        if self.deploy and self.train:
            raise SettingError("{deploy} cannot go with {train}: deploying folds BatchNorm for inference, and a "
                               "train step needs it")
        if self.fuse and not self.deploy:
            raise SettingError("{fuse} needs {deploy}: it fuses the convs of a deployed model")
        if self.fuse and self.compile:
            # FusedConv3d caches packed weights in Python: Dynamo breaks the graph at every conv.
            raise SettingError("{fuse} cannot go with {compile}: each fused conv breaks the compiled graph; "
                               "compiling with weight freezing already fuses conv + ReLU / add (oneDNN "
                               "post-ops), so use {deploy} with {compile}")
        try:
            device = torch.device(self.device)
        except RuntimeError as err:
            raise SettingError("{device} {given!r} is not a torch device: {err}", given=self.device,
                               err=err) from None
        kind = device.type
        if kind not in ("cpu", "cuda"):
            raise SettingError("{device} {given!r}: runs are timed on the CPU or on CUDA only", given=self.device)
        if kind == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
            raise SettingError("{device} {given!r}: this torch sees {count} CUDA device(s)", given=self.device,
                               count=torch.cuda.device_count())
        if self.fuse and kind != "cpu":
            raise SettingError("{fuse} fuses oneDNN calls, on the CPU only; drop it off the CPU")
        if self.amp is not None and self.amp not in AUTOCAST_DTYPES:
            raise SettingError("{amp} {given!r}: expected one of {choices}", given=self.amp,
                               choices=sorted(AUTOCAST_DTYPES))
        if self.amp is not None and self.fuse:
            raise SettingError("{amp} cannot go with {fuse}: the fused oneDNN convs run float32 only")

    def autocast(self):
        """The context every call runs in: ``torch.autocast`` for ``amp``, else a no-op."""
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=AUTOCAST_DTYPES[self.amp])

    def prepare(self, model: nn.Module) -> nn.Module:
        """``model`` as it will run: deployed (+ fused), on the device, in train / eval mode, in
        the memory format, then compiled. May return a new module (deploy copies, compile wraps)."""
        if self.deploy:
            model = inference_form(model, fuse=self.fuse, channels_last=False)  # memory format: below, for every model
        model = model.to(self.device).train(self.train)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
        return CompiledModel(model, freeze=not self.train) if self.compile else model

    def describe(self) -> str:
        """One line, e.g. ``"inference, deployed, compiled; cpu, channels_last"``; on CUDA it
        also names the GPU and says whether cuDNN may run float32 convolutions in TF32."""
        flags = [name for on, name in ((self.deploy, "deployed"), (self.fuse, "fused"), (self.compile, "compiled"),
                                       (self.amp, f"autocast {self.amp}")) if on]
        memory = "channels_last" if self.channels_last else "contiguous"
        where = f"{self.device}, {memory}"
        if torch.device(self.device).type == "cuda":
            where += f", {torch.cuda.get_device_name(self.device)}, cuDNN TF32 {'on' if _cudnn_tf32() else 'off'}"
        return ", ".join(["train step" if self.train else "inference"] + flags) + f"; {where}"


def _cudnn_tf32() -> bool:
    """Whether cuDNN may run float32 convolutions in TF32 (``allow_tf32`` raises in torch >= 2.9
    once the newer per-op precision settings disagree; the conv one is what counts here)."""
    conv = getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)
    return conv == "tf32" if conv is not None else torch.backends.cudnn.allow_tf32


def make_step(model: nn.Module, x: torch.Tensor, path: ExecutionPath) -> Callable[[], None]:
    """One timed call of ``model`` on ``x`` ``[B, 3, T, H, W]``: an inference forward, or with
    ``path.train`` forward + backward of the logits' ``[B, K]`` sum."""
    if not path.train:
        def forward():
            with torch.inference_mode(), path.autocast():
                model(x)
        return forward

    def train_step():
        model.zero_grad(set_to_none=True)
        with path.autocast():
            loss = model(x).float().sum()
        loss.backward()
    return train_step


def make_input(batch: int, frames: int, size: int, path: ExecutionPath = ExecutionPath()) -> torch.Tensor:
    """Random clips ``[batch, 3, frames, size, size]`` on ``path.device``, in its memory format."""
    x = torch.randn(batch, 3, frames, size, size, device=path.device)
    return x.contiguous(memory_format=torch.channels_last_3d) if path.channels_last else x
