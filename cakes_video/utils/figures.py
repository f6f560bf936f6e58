"""The two primitives of every figure the package draws: a matplotlib figure on its own Agg
canvas (no display, no pyplot state, so plotting is safe in any process and any layer) and its
atomic PNG write."""
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .io import replace_atomically


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches on an Agg canvas, laid out to fit its labels."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str, dpi: int = 100) -> str:
    """Writes ``fig`` to ``path`` as a PNG, atomically; returns ``path``."""
    replace_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    return path
