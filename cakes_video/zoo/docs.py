"""What is generated from the manifest: the table of ``model_zoo/MODEL_ZOO.md`` (between its
``BEGIN`` / ``END`` markers), so the documentation cannot drift from the entries."""
from typing import Dict

from .manifest import ZooEntry

BEGIN = "<!-- zoo table: generated from cakes_video/zoo/manifest.yaml by tools/zoo_docs.py; do not edit -->"
END = "<!-- end of zoo table -->"
COLUMNS = ("name", "dataset", "input", "test protocol", "top-1 / top-5", "figure from", "params",
           "GFLOPs/view x views", "weights", "licence")


def zoo_table(entries: Dict[str, ZooEntry]) -> str:
    """The zoo as a Markdown table, one row per entry."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_row(e)) + " |" for e in entries.values()]
    return "\n".join(lines)


def _row(e: ZooEntry) -> list:
    i, a, w = e.input, e.accuracy, e.weights
    sampling = "TSN segments" if i["sampling_rate"] == "segments" else f"rate {i['sampling_rate']}"
    where = w.get("url") or f"packaged: `cakes_video/zoo/weights/{w['packaged']}`"
    weights = f"[{w['file_name']}]({where})" if w.get("url") else where
    if w.get("manual_download"):
        weights += " (download by hand)"
    return [f"`{e.name}`", e.dataset, f"{i['frames']} frames, {sampling}, crop {i['crop']}",
            f"{e.protocol['clips']} clip(s) x {e.protocol['crops']} crop(s)", f"{a['top1']} / {a['top5']}",
            a["source"], f"{e.params:,}", f"{e.gflops_per_view} x {e.views}", weights, e.licence]


def with_zoo_table(markdown: str, entries: Dict[str, ZooEntry]) -> str:
    """``markdown`` with the text between :data:`BEGIN` and :data:`END` replaced by the table;
    ValueError when the markers are missing."""
    if BEGIN not in markdown or END not in markdown:
        raise ValueError(f"the markers {BEGIN!r} and {END!r} are missing")
    head, rest = markdown.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{zoo_table(entries)}\n{END}{tail}"
