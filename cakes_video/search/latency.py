"""The latency table: each searched layer's convolutions timed on the device at hand, so that the
latency of any channel config is predicted without building it.

For searched layer i, candidate s and count n (multiples of the layer's granularity), the table
holds the time of a CAKES layer of ``{s: n}`` alone, at the layer's input shape, in the deploy
form the derived network runs in (:func:`~cakes_video.models.inference.inference_form`: BN
folded, ``MODEL.CAKES.IMPL``'s convs, ReLU fused with ``TEST.FUSE``, channels-last-3d). A layer
fed by the previous searched layer (a basic block's ``conv2``) is timed at a few input widths
and interpolated linearly between them; a bottleneck's 1x1x1 ``conv3`` (the *tail*) is timed
per input count. The prediction is ``rest_ms + sum_i (sum_s ms_i[s](n_s, c_in) + tail_i(n))``,
``rest_ms`` (stem, shortcuts, head, concatenations) calibrated by timing one whole network.

The table is a JSON file whose ``key`` (device, threads, dtype, torch version, batch size, the
network and input) must match for it to be reused; otherwise it is rebuilt and rewritten.
"""
import json
import logging
import os
import platform
from typing import Callable, Dict, Iterable, List, Sequence

import torch
from fvcore.common.config import CfgNode
from torch import nn
from torch.utils.benchmark import Timer

from ..models.cakes import build_cakes_layer
from ..models.inference import inference_form
from ..models.subkernels import ChannelConfig, in_vocabulary_order
from ..utils.distributed import resolve_device
from ..utils.io import write_json
from .costs import NetworkCost, SearchedLayer, build_derived_model, layer_granularity

logger = logging.getLogger(__name__)

TABLE_FILE = "latency_table.json"
FED_INPUT_FRACTIONS = (0.25, 0.5, 1.0)  # input widths at which a fed layer is timed, of the previous width
Progress = Callable[[Iterable, str], Iterable]


def device_name(device: torch.device) -> str:
    """The device's model: the GPU's name, or the CPU's (``/proc/cpuinfo``, else ``platform``)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            return f"cpu: {names[0]}"
    except OSError:
        pass
    return f"cpu: {platform.processor() or platform.machine()}"


def table_threads(cfg: CfgNode) -> int:
    """Intra-op threads of the timings: SEARCH.LATENCY.THREADS, else NUM_THREADS, else torch's count."""
    return cfg.SEARCH.LATENCY.THREADS or cfg.NUM_THREADS or torch.get_num_threads()


def table_key(cfg: CfgNode, input_shape: Sequence[int]) -> Dict:
    """What a table's timings depend on; a stored table is reused only when its key equals this."""
    m = cfg.MODEL
    device = resolve_device(cfg.DEVICE)
    return {
        "device": device_name(device), "threads": table_threads(cfg), "dtype": str(torch.get_default_dtype()),
        "torch": torch.__version__, "batch_size": cfg.SEARCH.LATENCY.BATCH_SIZE,
        "network": {"arch": m.ARCH, "depth": m.DEPTH, "base_width": m.BASE_WIDTH, "stem": m.STEM,
                    "stem_pool": m.STEM_POOL, "temporal_strides": list(m.TEMPORAL_STRIDES),
                    "temporal_pool": m.TEMPORAL_POOL, "head": m.HEAD, "num_classes": m.NUM_CLASSES,
                    "kernel_size": m.KERNEL_SIZE, "cakes_impl": m.CAKES.IMPL, "fuse": cfg.TEST.FUSE,
                    "candidates": in_vocabulary_order(cfg.SEARCH.CANDIDATES),
                    "granularity": cfg.SEARCH.DERIVE.GRANULARITY},
        "input_shape": list(input_shape),
    }


def table_path(cfg: CfgNode) -> str:
    """SEARCH.LATENCY.TABLE, or OUTPUT_DIR/latency_table.json."""
    return cfg.SEARCH.LATENCY.TABLE or os.path.join(cfg.OUTPUT_DIR, TABLE_FILE)


def time_ms(module: nn.Module, x: torch.Tensor, threads: int, repeats: int) -> float:
    """The best ms of ``repeats`` calls of ``module(x)`` (after one untimed call), without autograd;
    ``torch.utils.benchmark`` synchronises a GPU around each. The best, not the median: on a
    shared machine other work only ever adds time."""
    timer = Timer("module(x)", globals={"module": module, "x": x}, num_threads=threads)
    with torch.inference_mode():
        module(x)
        return min(timer.timeit(1).median for _ in range(repeats)) * 1e3


def _input(channels: int, thw: Sequence[int], batch: int, device: torch.device) -> torch.Tensor:
    return torch.randn(batch, channels, *thw, device=device).contiguous(memory_format=torch.channels_last_3d)


def _deployed(model: nn.Module, cfg: CfgNode, device: torch.device) -> nn.Module:
    return inference_form(model.eval(), fuse=cfg.TEST.FUSE).to(device)


def _deployed_layer(layer: nn.Module, cfg: CfgNode, device: torch.device) -> nn.Module:
    """``layer``'s deploy form alone, channels-last, without the wrappers a network pays for once."""
    graph = inference_form(nn.Sequential(layer).eval(), fuse=cfg.TEST.FUSE, channels_last=False)
    return graph.get_submodule("0").to(device, memory_format=torch.channels_last_3d)


def measure_network_ms(cfg: CfgNode, config: ChannelConfig, input_shape: Sequence[int]) -> float:
    """Measured latency (ms, best of SEARCH.LATENCY.REPEATS) of the derived network of
    ``config`` in its deploy form, for a batch of SEARCH.LATENCY.BATCH_SIZE views ``input_shape``."""
    device = resolve_device(cfg.DEVICE)
    model = _deployed(build_derived_model(cfg, config), cfg, device)
    x = _input(input_shape[0], input_shape[1:], cfg.SEARCH.LATENCY.BATCH_SIZE, device)
    return time_ms(model, x, table_threads(cfg), cfg.SEARCH.LATENCY.REPEATS)


def count_grid(width: int, granularity: int) -> List[int]:
    """The counts a layer of ``width`` takes: multiples of its granularity up to the width."""
    step = layer_granularity(width, granularity)
    return list(range(step, width + 1, step))


def fed_input_grid(previous_width: int, granularity: int) -> List[int]:
    """Input widths at which a fed layer is timed: :data:`FED_INPUT_FRACTIONS` of the previous
    layer's width, on its grid."""
    step = layer_granularity(previous_width, granularity)
    return sorted({max(step, round(previous_width * f / step) * step) for f in FED_INPUT_FRACTIONS})


def _layer_entries(cfg: CfgNode, layer: SearchedLayer, in_grid: List[int], device: torch.device) -> Dict:
    """One layer's timings: ``ms[s][count index][input index]`` and ``tail_ms[count index]``."""
    threads, repeats, batch = table_threads(cfg), cfg.SEARCH.LATENCY.REPEATS, cfg.SEARCH.LATENCY.BATCH_SIZE
    counts = count_grid(layer.width, cfg.SEARCH.DERIVE.GRANULARITY)
    ms = {}
    for s in in_vocabulary_order(cfg.SEARCH.CANDIDATES):
        ms[s] = [[time_ms(_deployed_layer(build_cakes_layer(c_in, {s: n}, layer.stride, layer.kernel_size,
                                                             not layer.must_fill, cfg.MODEL.CAKES.IMPL), cfg, device),
                          _input(c_in, layer.in_thw, batch, device), threads, repeats)
                  for c_in in in_grid] for n in counts]
    tail = None
    if layer.tail_channels:
        # conv3 with bn3 folded in: a 1x1x1 conv with bias
        tail = [time_ms(nn.Conv3d(n, layer.tail_channels, 1).eval().to(device, memory_format=torch.channels_last_3d),
                        _input(n, layer.out_thw, batch, device), threads, repeats) for n in counts]
    return {"name": layer.name, "counts": counts, "in_channels": in_grid, "ms": ms, "tail_ms": tail}


def build_table(cfg: CfgNode, layers: Sequence[SearchedLayer], input_shape: Sequence[int],
                reference: ChannelConfig, progress: Progress) -> Dict:
    """Times every entry (see the module doc) and calibrates ``rest_ms`` on the network of
    ``reference``; returns the table (``key``, ``layers``, ``rest_ms``)."""
    device, g = resolve_device(cfg.DEVICE), cfg.SEARCH.DERIVE.GRANULARITY
    entries = []
    for i, layer in enumerate(progress(layers, "latency table")):
        in_grid = fed_input_grid(layers[i - 1].width, g) if layer.fed_by_previous else [layer.in_channels]
        entries.append(_layer_entries(cfg, layer, in_grid, device))
    table = {"key": table_key(cfg, input_shape), "layers": entries, "rest_ms": 0.0}
    predicted = table_cost(layers, table)
    table["rest_ms"] = measure_network_ms(cfg, reference, input_shape) - predicted.total(reference)
    return table


def load_or_build_table(path: str, key: Dict, build: Callable[[], Dict]) -> Dict:
    """The table at ``path`` when its key equals ``key``; else ``build()``, written to ``path``."""
    if os.path.isfile(path):
        try:
            with open(path) as f:
                stored = json.load(f)
        except (OSError, ValueError) as e:
            logger.warning("latency table %s unreadable (%s): rebuilding it", path, e)
            stored = None
        if stored and stored.get("key") == key:
            logger.info("latency table: reusing %s", path)
            return stored
        if stored:
            logger.info("latency table %s was measured for another setting: rebuilding it", path)
    table = build()
    write_json(path, table)
    return table


def _interpolate(xs: Sequence[int], ys: Sequence[float], x: float) -> float:
    """Piecewise-linear through ``(xs, ys)``, extended along the end segments; proportional for one point."""
    if len(xs) == 1:
        return ys[0] * x / xs[0]
    k = min(max(1, next((k for k, v in enumerate(xs) if v >= x), len(xs) - 1)), len(xs) - 1)
    x0, x1, y0, y1 = xs[k - 1], xs[k], ys[k - 1], ys[k]
    return max(0.0, y0 + (y1 - y0) * (x - x0) / (x1 - x0))


def table_cost(layers: Sequence[SearchedLayer], table: Dict) -> NetworkCost:
    """The latency model of ``table`` (ms): rest plus each layer's candidates and tail."""
    entries = table["layers"]

    def layer_ms(i: int, counts: Dict[str, int], c_in: int) -> float:
        e = entries[i]
        ms = sum(_interpolate(e["in_channels"], e["ms"][s][e["counts"].index(n)], c_in)
                 for s, n in counts.items() if n)
        return ms + (e["tail_ms"][e["counts"].index(sum(counts.values()))] if e["tail_ms"] else 0.0)

    return NetworkCost(layers, layer_ms, "ms", table["rest_ms"])


def latency_cost(cfg: CfgNode, layers: Sequence[SearchedLayer], input_shape: Sequence[int],
                 reference: ChannelConfig, progress: Progress) -> NetworkCost:
    """The latency model of the table at :func:`table_path`, reused or (re)built for this setting."""
    table = load_or_build_table(table_path(cfg), table_key(cfg, input_shape),
                                lambda: build_table(cfg, layers, input_shape, reference, progress))
    return table_cost(layers, table)
