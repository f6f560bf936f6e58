"""A derived network written out: its channel config (our YAML and the official JSON list of
dicts, both loadable by ``MODEL.CAKES.CONV_CONFIG``), a full config that builds it, and a
per-layer report (a markdown table and a stacked-bar PNG of the sub-kernel mix per layer).
Every file is written atomically (:func:`cakes_video.utils.io.replace_atomically`)."""
import json
import os
from typing import Dict, List, Optional, Sequence

from fvcore.common.config import CfgNode

from ..models.subkernels import ChannelConfig, in_vocabulary_order
from ..utils.figures import new_figure, save_png
from ..utils.io import write_text
from .costs import (NetworkCost, SearchedLayer, analytic_gflops, analytic_params, cakes_model_cfg,
                    derive_input_shape, in_channels_of, searched_layers)
from .derive import Derivation


def _comment(header: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())


def write_channel_config_yaml(path: str, config: ChannelConfig, header: str) -> None:
    """``config`` as our channel config YAML (as in ``configs/channel_configs/``): ``header`` as
    comment lines, then one flow-style dict per layer."""
    lines = ["- {" + ", ".join(f"{s}: {n}" for s, n in counts.items()) + "}" for counts in config]
    write_text(path, _comment(header) + "\n".join(lines) + "\n")


def write_channel_config_json(path: str, config: ChannelConfig) -> None:
    """``config`` as the official release's format: a JSON list of one dict per layer."""
    write_text(path, json.dumps(config, indent=1) + "\n")


def write_model_config(path: str, cfg: CfgNode, channel_config_path: str, header: str) -> None:
    """A full config (``cfg``, every group) whose network is CAKES in every stage with the channel
    config at ``channel_config_path`` (stored as an absolute path, so the file loads from anywhere)."""
    derived = cakes_model_cfg(cfg, os.path.abspath(channel_config_path))
    write_text(path, _comment(header) + derived.dump())


def layer_rows(layers: Sequence[SearchedLayer], config: ChannelConfig, candidates: Sequence[str],
               costs: Dict[str, NetworkCost]) -> List[Dict]:
    """One row per searched layer: name, width, kept channels, counts per candidate and each
    cost's term (``costs``: column -> model; a term counts the layer's convs, BatchNorm and the
    1x1x1 conv reading it), then a ``rest`` row (every other module) and a ``total`` row."""
    rows = []
    for i, layer in enumerate(layers):
        row = {"layer": layer.name, "width": layer.width, "kept": sum(config[i].values()),
               "in": in_channels_of(layers, config, i), **{s: config[i].get(s, 0) for s in candidates}}
        rows.append({**row, **{name: cost.term(config, i) for name, cost in costs.items()}})
    rows.append({"layer": "rest", **{name: cost.fixed for name, cost in costs.items()}})
    rows.append({"layer": "total", **{name: cost.total(config) for name, cost in costs.items()}})
    return rows


def _cell(value) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.6g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def format_report(rows: List[Dict], title: str = "", notes: Sequence[str] = ()) -> str:
    """The rows of :func:`layer_rows` as a markdown table, ``title`` above and ``notes`` below."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = [f"# {title}", ""] if title else []
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines + ([""] + list(notes) if notes else [])) + "\n"


def write_report(path: str, text: str) -> None:
    write_text(path, text)


def plot_subkernel_mix(path: str, layers: Sequence[SearchedLayer], config: ChannelConfig,
                       candidates: Sequence[str], title: str = "") -> None:
    """A PNG of one stacked bar per layer (its channels per candidate) with the layer's width
    as a tick above it (matplotlib's Agg canvas; no pyplot state)."""
    fig = new_figure(max(6.0, 0.45 * len(layers) + 2), 4.0)
    ax = fig.add_subplot()
    x = list(range(len(layers)))
    bottom = [0] * len(layers)
    for s in candidates:
        heights = [counts.get(s, 0) for counts in config]
        ax.bar(x, heights, bottom=bottom, label=s)
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.scatter(x, [layer.width for layer in layers], marker="_", s=200, color="black", label="width C")
    ax.set_xticks(x, [layer.name for layer in layers], rotation=70, fontsize=7)
    ax.set_ylabel("output channels")
    ax.set_title(title or "sub-kernel mix per searched layer")
    ax.legend(fontsize=7)
    save_png(fig, path, dpi=120)


def export_derivation(out_dir: str, cfg: CfgNode, layers: Sequence[SearchedLayer], config: ChannelConfig,
                      header: str, costs: Dict[str, NetworkCost], name: str = "derived") -> Dict[str, str]:
    """Writes ``NAME.yaml`` / ``NAME.json`` (channel config), ``NAME_model.yaml`` (full config),
    ``NAME_report.md`` and ``NAME_mix.png`` under ``out_dir``; returns their paths by kind.
    ``header``: how the network was derived (the comment atop the YAML files and the report)."""
    paths = {kind: os.path.join(out_dir, f"{name}{suffix}") for kind, suffix in
             [("yaml", ".yaml"), ("json", ".json"), ("model", "_model.yaml"), ("report", "_report.md"),
              ("plot", "_mix.png")]}
    candidates = in_vocabulary_order(cfg.SEARCH.CANDIDATES)
    write_channel_config_yaml(paths["yaml"], config, header)
    write_channel_config_json(paths["json"], config)
    write_model_config(paths["model"], cfg, paths["yaml"], header)
    write_report(paths["report"], format_report(layer_rows(layers, config, candidates, costs), header.splitlines()[0],
                                                header.splitlines()[1:]))
    plot_subkernel_mix(paths["plot"], layers, config, candidates)
    return paths


def derivation_header(cfg: CfgNode, derivation: Derivation, costs: Dict[str, NetworkCost],
                      input_shape: Sequence[int], measured_latency_ms: Optional[float] = None) -> str:
    """How the network was derived and what it costs, a few lines (the files' header comment)."""
    d, m, config = derivation, cfg.MODEL, derivation.channel_config
    how = (f"budget {d.budget_kind}={d.budget:g} for the whole network" if d.budget_kind
           else "the paper's per-layer top-C (every layer keeps its width)")
    figures = f"params {costs['params'].total(config):,.0f}, {costs['gflops'].total(config):.6g} GFLOPs (fvcore, one view)"
    if "latency_ms" in costs:
        figures += f", latency predicted {costs['latency_ms'].total(config):.3f} ms"
    if measured_latency_ms is not None:
        figures += f", measured {measured_latency_ms:.3f} ms"
    return "\n".join([
        f"CAKES channel config derived by cakes_video.search: {how}",
        f"{m.ARCH} depth {m.DEPTH}, base width {m.BASE_WIDTH}, input (C, T, H, W) {tuple(input_shape)}, "
        f"candidates {in_vocabulary_order(cfg.SEARCH.CANDIDATES)}, "
        f"granularity {cfg.SEARCH.DERIVE.GRANULARITY}",
        figures,
        "One entry per CAKES layer, in cakes_layer_widths order. Use: MODEL.TEMPORAL_OP cakes "
        "MODEL.CAKES.CONV_CONFIG <this file>",
    ])


def export(out_dir: str, cfg: CfgNode, derivation: Derivation, latency: Optional[NetworkCost] = None,
           measured_latency_ms: Optional[float] = None, name: str = "derived") -> Dict[str, str]:
    """:func:`export_derivation` of ``derivation`` with its exact params and GFLOPs (calibrated on
    the derived network itself) and its predicted latency per layer: the derivation's own model
    under a latency budget, else ``latency`` (:func:`~.latency.latency_cost`) when given.
    ``measured_latency_ms`` (:func:`~.latency.measure_network_ms`) defaults to the derivation's."""
    input_shape = derive_input_shape(cfg)
    layers = searched_layers(cfg, input_shape)
    config = derivation.channel_config
    costs = {"params": analytic_params(cfg, layers, config), "gflops": analytic_gflops(cfg, layers, config, input_shape)}
    latency = derivation.cost if derivation.budget_kind == "latency_ms" else latency
    if latency is not None:
        costs["latency_ms"] = latency
    measured = measured_latency_ms if measured_latency_ms is not None else derivation.measured_latency_ms
    header = derivation_header(cfg, derivation, costs, input_shape, measured)
    return export_derivation(out_dir, cfg, layers, config, header, costs, name)
