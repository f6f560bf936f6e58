"""Figures drawn with matplotlib (cakes_video.engine.plots, tools/plot_run.py): the confusion
matrix for 10 and 174 classes, training curves from metrics.jsonl, and bad metrics files named."""
import importlib.util
import json
import os
import struct

import pytest
import torch

from cakes_video.engine.cli import run_tool
from cakes_video.engine.hooks import TrainingCurves
from cakes_video.engine.monitor import MetricWriter, read_metrics
from cakes_video.engine.plots import plot_confusion_matrix, plot_training_curves, training_curves

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _png_size(path):
    """(width, height) of a PNG file; fails unless it is one."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _tool(argv):
    spec = importlib.util.spec_from_file_location("plot_run", os.path.join(REPO, "tools", "plot_run.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return run_tool(lambda: module.main(argv))


@pytest.mark.parametrize("k,long_name", [(10, "moving right"), pytest.param(
    174, "Pretending to put something into something", marks=pytest.mark.slow)])  # 174: seconds of layout
def test_confusion_matrix_png_grows_with_the_classes(tmp_path, k, long_name):
    names = [f"{long_name} {i}" for i in range(k)]
    torch.manual_seed(0)
    labels = torch.randint(k, (20 * k,))
    predicted = torch.where(torch.rand(20 * k) < 0.7, labels, torch.randint(k, (20 * k,)))
    confusion = torch.zeros(k, k, dtype=torch.int64).index_put_((labels, predicted), torch.tensor(1), accumulate=True)
    path = plot_confusion_matrix(str(tmp_path / "cm.png"), confusion, names)
    width, height = _png_size(path)
    # the matrix takes >= 0.11 inch (13 px at 120 dpi) per class, beside the names and the colour bar
    assert min(width, height) >= 13 * k and max(width, height) < 40 * k + 1500
    assert os.path.getsize(path) > 10_000 * (1 + k // 50)


def _write_run(folder, epochs=3, steps_per_epoch=4):
    writer = MetricWriter(str(folder), tensorboard=False)
    for e in range(1, epochs + 1):
        for i in range(steps_per_epoch):
            step = (e - 1) * steps_per_epoch + i + 1
            writer.write("train_iter", step, {"epoch": e, "iteration": step, "loss": 2.0 / step, "top1": 10.0 * e,
                                              "lr": 0.1 * (1 - step / 20), "time": 0.1})
        writer.write("epoch", e * steps_per_epoch, {"epoch": e, "train_loss": 2.0 / e, "train_top1": 10.0 * e,
                                                    "val_loss": float("nan") if e == 1 else 1.5, "val_top1": 20.0})
    return folder


def test_training_curves_keep_the_last_record_of_each_step(tmp_path):
    run = _write_run(tmp_path)
    with open(tmp_path / "metrics.jsonl", "a") as f:  # a resumed run redid step 12 and epoch 3
        f.write(json.dumps({"type": "train_iter", "step": 12, "loss": 0.5, "lr": 0.01, "top1": 99.0}) + "\n")
        f.write(json.dumps({"type": "epoch", "step": 12, "epoch": 3, "train_loss": 0.25}) + "\n")
    curves = training_curves(str(run))
    assert curves["iter"]["step"] == list(range(1, 13)) and curves["iter"]["loss"][-1] == 0.5
    assert curves["epoch"]["epoch"] == [1, 2, 3] and curves["epoch"]["train_loss"][-1] == 0.25
    assert curves["epoch"]["val_loss"][1] == 1.5 and all(v != v for v in (curves["epoch"]["val_loss"][0],
                                                                        curves["epoch"]["val_top1"][2]))  # NaN
    path = plot_training_curves(str(run))
    assert path == str(tmp_path / "training_curves.png")
    width, height = _png_size(path)
    assert (width, height) == (1300, 380) and os.path.getsize(path) > 20_000


def test_tool_plots_a_run_folder_and_names_a_bad_metrics_file(tmp_path, capsys, caplog):
    run = _write_run(tmp_path / "run")
    assert _tool([str(run), "--output", str(tmp_path / "c.png")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "c.png") and _png_size(tmp_path / "c.png")
    metrics = tmp_path / "run" / "metrics.jsonl"
    cases = {"": f"{metrics}: no training records (train_iter or epoch lines) to plot",
             '{"type": "epoch"}\nnot json\n{"type": "epoch"}\n': f"{metrics}: line 2 is not JSON: 'not json'",
             "[1, 2]\n": f"{metrics}: line 1 is not a metrics record (an object with a \"type\")"}
    for text, message in cases.items():
        metrics.write_text(text)
        caplog.clear()
        assert _tool([str(run)]) == 1
        assert [r.getMessage() for r in caplog.records] == [f"MetricsFileError: {message}"]
    assert not (tmp_path / "run" / "training_curves.png").exists()
    caplog.clear()
    assert _tool([str(tmp_path / "nowhere")]) == 1
    assert caplog.records[0].getMessage().endswith("metrics.jsonl: not found (is "
                                                   f"{tmp_path / 'nowhere'} the OUTPUT_DIR of a training run?)")


def test_an_unfinished_last_line_is_skipped_with_a_warning(tmp_path, caplog):
    _write_run(tmp_path, epochs=1)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"type": "train_iter", "st')  # killed mid-write
    assert len(read_metrics(str(tmp_path), "train_iter")) == 4
    assert "line 6 is unfinished; skipped" in caplog.text


def test_the_hook_plots_at_the_end_and_only_warns_when_it_cannot(tmp_path, caplog):
    TrainingCurves(str(tmp_path)).after_train(None)  # nothing written yet: a warning, no error
    assert "no training curves:" in caplog.text and "metrics.jsonl: not found" in caplog.text
    _write_run(tmp_path)
    TrainingCurves(str(tmp_path)).after_train(None)
    assert _png_size(tmp_path / "training_curves.png")
