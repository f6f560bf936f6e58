"""Issue 17: every data, config and flag error a run can meet is found before its first step, as
one line naming the file, line or key, with exit status 1 and nothing written but the log (no
checkpoint, no metrics line, no results); the failure budget counts missing files up front and
stops an epoch as soon as it is exceeded; truncated files are reported; make_synthetic refuses
to write over a benchmark."""
import importlib.util
import io
import logging
import os
from pathlib import Path

import pytest
import torch
from test_engine_fakes import FakeLoaderFn, tiny_cfg

from cakes_video.checkpoint import save_checkpoint
from cakes_video.config import ConfigError, get_cfg
from cakes_video.datasets import catalog, synthetic
from cakes_video.datasets.catalog import AnnotationError
from cakes_video.datasets.failures import TooManyFailedVideos, check_failures_so_far
from cakes_video.datasets.preflight import check_files_exist, missing_files
from cakes_video.datasets.video_reader import DecodeOptions, VideoReader
from cakes_video.engine.cli import ToolParser, add_config_args, one_line, run_tool
from cakes_video.engine.monitor import read_metrics, setup_logging
from cakes_video.engine.setup import train
from cakes_video.engine.train import Hook
from cakes_video.models import build_model

REPO = Path(__file__).resolve().parents[1]
NUM_CLASSES = 4


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def data(tmp_path):
    """A root with 8 listed files (never decoded: every probe fails before that), the lists,
    class names, and a tiny config file pointing at them."""
    root = tmp_path / "root"
    (root / "v").mkdir(parents=True)
    for i in range(8):
        (root / "v" / f"{i}.mp4").write_bytes(b"x")
    lines = [f"v/{i}.mp4 {i % NUM_CLASSES}" for i in range(8)]
    for split in ("train", "val", "test"):
        (tmp_path / f"{split}.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "classes.txt").write_text("".join(f"c{i}\n" for i in range(NUM_CLASSES)))
    (tmp_path / "cfg.yaml").write_text(
        f"DEVICE: cpu\nOUTPUT_DIR: {tmp_path / 'out'}\n"
        f"MODEL: {{DEPTH: 10, BASE_WIDTH: 8, NUM_CLASSES: {NUM_CLASSES}}}\n"
        f"DATA: {{ROOT: {root}, TRAIN_LIST: {tmp_path / 'train.txt'}, VAL_LIST: {tmp_path / 'val.txt'}, "
        f"TEST_LIST: {tmp_path / 'test.txt'}, CLASS_NAMES: {tmp_path / 'classes.txt'}, NUM_FRAMES: 4}}\n"
        "DATA_LOADER: {NUM_WORKERS: 0}\nTRAIN: {BATCH_SIZE: 2, PROGRESS_BAR: False, TENSORBOARD: False}\n")
    return tmp_path


def _refused(tool, argv, caplog, capsys, out):
    """Runs ``tool`` like its command line; asserts exit status 1, one ERROR record on one line
    and no traceback, and that nothing but the log was written to ``out``. Returns the line."""
    caplog.clear()
    assert run_tool(lambda: _tool(tool).main(argv)) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert "Traceback" not in capsys.readouterr().err
    written = set(os.listdir(out)) if os.path.isdir(out) else set()
    assert written <= {"log.txt"}, written  # no checkpoints/, metrics.jsonl, config.yaml, results.json
    return errors[0]


def _edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_a_label_beyond_num_classes_fails_at_once_naming_list_and_line(data, caplog, capsys, split):
    _edit(data / f"{split}.txt", "v/6.mp4 2", "v/6.mp4 12")
    line = _refused("train_net", ["--cfg", str(data / "cfg.yaml")], caplog, capsys, data / "out")
    assert f"{data / f'{split}.txt'}:7: label 12 is out of range for MODEL.NUM_CLASSES=4" in line


def test_test_net_checks_the_test_list_before_loading_data(data, caplog, capsys):
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.DEPTH", 10, "MODEL.BASE_WIDTH", 8, "MODEL.NUM_CLASSES", NUM_CLASSES])
    weights = save_checkpoint(str(data / "w.pyth"), build_model(cfg).state_dict())
    _edit(data / "test.txt", "v/6.mp4 2", "v/6.mp4 12")
    line = _refused("test_net", ["--cfg", str(data / "cfg.yaml"), "TEST.CHECKPOINT_FILE", weights],
                    caplog, capsys, data / "out")
    assert "test.txt:7: label 12" in line


@pytest.mark.parametrize("case, expected", [
    ("class_names", "DATA.CLASS_NAMES ({data}/classes12.txt): names 12 classes, MODEL.NUM_CLASSES is 4"),
    ("empty_val", "DATA.VAL_LIST: no videos in {data}/empty.txt"),
    ("root_missing", "DATA.ROOT: no such folder: {data}/typo"),
    ("root_wrong", "DATA.ROOT: none of the 8 videos of DATA.TRAIN_LIST ({data}/train.txt) exists under "
                   "DATA.ROOT {data}; first missing: {data}/v/0.mp4"),
    ("escape", "{data}/escape.txt:2: '../../../etc/passwd' leaves the root {data}/root: relative paths must "
               "stay under DATA.ROOT"),
    ("over_budget", "DATA.TRAIN_LIST ({data}/train.txt): 1 of 8 listed videos (12.5%) are missing, more than "
                    "DATA.MAX_FAILED_FRACTION=0.01; first missing: {data}/root/v/5.mp4"),
])
def test_data_errors_fail_before_the_first_step(data, caplog, capsys, case, expected):
    opts = []
    if case == "class_names":
        (data / "classes12.txt").write_text("".join(f"c{i}\n" for i in range(12)))
        opts = ["DATA.CLASS_NAMES", str(data / "classes12.txt")]
    elif case == "empty_val":
        (data / "empty.txt").write_text("# no videos\n")
        opts = ["DATA.VAL_LIST", str(data / "empty.txt")]
    elif case == "root_missing":
        opts = ["DATA.ROOT", str(data / "typo")]
    elif case == "root_wrong":
        opts = ["DATA.ROOT", str(data)]
    elif case == "escape":
        (data / "escape.txt").write_text("v/0.mp4 0\n../../../etc/passwd 1\n")
        opts = ["DATA.TRAIN_LIST", str(data / "escape.txt")]
    else:
        (data / "root" / "v" / "5.mp4").unlink()
    line = _refused("train_net", ["--cfg", str(data / "cfg.yaml"), *opts], caplog, capsys, data / "out")
    assert expected.format(data=data) in line


def test_paths_stay_under_the_root_unless_absolute():
    assert catalog.listed_path("/r", "a/../b.mp4", "l:1") == "/r/a/../b.mp4"  # stays under /r
    assert catalog.listed_path("/r", "/elsewhere/b.mp4", "l:1") == "/elsewhere/b.mp4"  # absolute: by choice
    for path in ("../b.mp4", "a/../../b.mp4"):
        with pytest.raises(AnnotationError, match="l:1: .* leaves the root /r"):
            catalog.listed_path("/r", path, "l:1")
    with pytest.raises(AnnotationError, match="leaves the root \\(the working folder\\)"):
        catalog.listed_path("", "../b.mp4", "l:1")


def test_missing_files_within_the_budget_are_a_warning(tmp_path, caplog):
    (tmp_path / "a.mp4").write_bytes(b"x")
    records = [catalog.VideoRecord(str(tmp_path / n), 0, n) for n in ("a.mp4", "b.mp4")]
    check_files_exist(records, str(tmp_path), "DATA.TRAIN_LIST (l.txt)", 0.5)
    assert "1 of 2 listed videos are missing" in caplog.text and str(tmp_path / "b.mp4") in caplog.text
    with pytest.raises(TooManyFailedVideos, match="1 of 2 listed videos"):
        check_files_exist(records, str(tmp_path), "DATA.TRAIN_LIST (l.txt)", 0.4)


def test_a_folder_listed_as_a_video_or_a_file_listed_as_frames_is_missing(tmp_path):
    for name in ("folder.mp4", "frames"):
        (tmp_path / name).mkdir()
    for name in ("video.mp4", "file_frames"):
        (tmp_path / name).write_bytes(b"x")
    records = [catalog.VideoRecord(str(tmp_path / n), 0, n, num_frames=frames)
               for n, frames in (("folder.mp4", None), ("video.mp4", None), ("frames", 8), ("file_frames", 8))]
    assert [r.video_id for r in missing_files(records)] == ["folder.mp4", "file_frames"]


def test_a_stop_in_the_first_epoch_claims_no_checkpoint():
    with pytest.raises(TooManyFailedVideos) as stop:
        check_failures_so_far(4, 8, 0.2, epoch=1)
    message = str(stop.value)
    assert "last checkpoint is kept" not in message and "checkpoints of earlier epochs, if any" in message


@pytest.mark.parametrize("opts, expected", [
    (["DEVICE", "gpu"], "DEVICE: 'gpu' is not one of ['auto', 'cpu', 'cuda']"),
    (["NUM_THREADS", "-2"], "NUM_THREADS: must be >= 0"),
    (["DEVICE", "cuda"], "DEVICE: 'cuda' requested but no GPU is usable here"),
])
def test_device_and_threads_are_refused_in_one_line(data, caplog, capsys, opts, expected):
    if opts[1] == "cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is usable here")
    line = _refused("train_net", ["--cfg", str(data / "cfg.yaml"), *opts], caplog, capsys, data / "out")
    assert expected in line


@pytest.mark.parametrize("case", ["cycle", "missing", "unreadable"])
def test_base_chain_errors_name_the_file_that_names_the_base(tmp_path, caplog, capsys, case):
    top = tmp_path / "top.yaml"
    top.write_text("_BASE_: mid.yaml\nSEED: 1\n")
    base = {"cycle": "top.yaml", "missing": "gone.yaml", "unreadable": "folder.yaml"}[case]
    (tmp_path / "mid.yaml").write_text(f"_BASE_: [{base}]\n")
    (tmp_path / "folder.yaml").mkdir()
    line = _refused("train_net", ["--cfg", str(top), "OUTPUT_DIR", str(tmp_path / "out")], caplog, capsys,
                    tmp_path / "out")
    expected = {"cycle": f"{tmp_path / 'mid.yaml'}: _BASE_ top.yaml makes a cycle (top.yaml -> mid.yaml -> top.yaml)",
                "missing": f"{tmp_path / 'mid.yaml'}: _BASE_ gone.yaml not found ({tmp_path / 'gone.yaml'})",
                "unreadable": f"{tmp_path / 'mid.yaml'}: _BASE_ folder.yaml cannot be read "
                              f"({tmp_path / 'folder.yaml'}: Is a directory)"}[case]
    assert expected in line


def test_bad_yaml_is_named_by_file_and_line(tmp_path, caplog, capsys):
    (tmp_path / "bad.yaml").write_text("SEED: 1\nMODEL: [unclosed\n")
    line = _refused("train_net", ["--cfg", str(tmp_path / "bad.yaml")], caplog, capsys, tmp_path / "out")
    assert f"{tmp_path / 'bad.yaml'}:3: not valid YAML" in line


def test_flags_after_the_overrides_are_flags(data, caplog, capsys):
    parser = ToolParser()
    parser.add_argument("--topk", type=int, default=5)
    args = add_config_args(parser).parse_args(
        ["--cfg", "x.yaml", "SOLVER.BASE_LR", "-0.5", "--topk", "3", "SEED", "2"])
    assert args.topk == 3 and args.opts == ["SOLVER.BASE_LR", "-0.5", "SEED", "2"]
    line = _refused("train_net", ["--cfg", str(data / "cfg.yaml"), "SEED", "1", "--no-such-flag"], caplog, capsys,
                    data / "out")
    assert "unrecognized arguments: --no-such-flag" in line


def test_topk_must_be_positive(data, caplog, capsys):
    argv = ["--cfg", str(data / "cfg.yaml"), "--video", str(data / "root" / "v" / "0.mp4"), "--topk", "-1"]
    line = _refused("predict", argv, caplog, capsys, data / "out")
    assert "argument --topk: must be a positive integer, got -1" in line


def test_an_output_dir_that_cannot_be_written_is_one_line(data, caplog, capsys):
    (data / "a_file").write_text("")
    line = _refused("train_net", ["--cfg", str(data / "cfg.yaml"), "OUTPUT_DIR", str(data / "a_file" / "out")],
                    caplog, capsys, data / "a_file")
    assert f"OUTPUT_DIR: cannot write to {data / 'a_file' / 'out'}" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_dir_is_one_line(data, caplog, capsys):
    (data / "ro").mkdir(mode=0o500)
    line = _refused("train_net", ["--cfg", str(data / "cfg.yaml"), "OUTPUT_DIR", str(data / "ro")], caplog, capsys,
                    data / "ro")
    assert f"OUTPUT_DIR: cannot write to {data / 'ro'} (Permission denied)" in line


def test_an_error_from_a_loader_worker_is_reported_by_its_own_line():
    wrapped = ("Caught DecodeRetriesExhausted in DataLoader worker process 0.\nOriginal Traceback (most recent "
               "call last):\n  File \"x.py\", line 1, in f\ncakes_video.datasets.failures.DecodeRetriesExhausted: "
               "11 videos in a row failed to decode (DATA.MAX_RETRIES=10): a.mp4\n")
    assert one_line(wrapped) == "11 videos in a row failed to decode (DATA.MAX_RETRIES=10): a.mp4"


@pytest.mark.parametrize("rank, reported", [("0", 1), ("1", 0)])
def test_under_torchrun_only_global_rank_0_reports_an_expected_error(monkeypatch, caplog, rank, reported):
    monkeypatch.setenv("RANK", rank)  # as torchrun sets them, before the process group is joined
    monkeypatch.setenv("WORLD_SIZE", "2")

    def fail():
        raise ConfigError("SOLVER.BASE_LR: must be > 0")

    assert run_tool(fail) == 1
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == reported


class FailEverythingAfter(Hook):
    """From epoch ``epoch + 1`` on, every training video fails to decode."""

    def __init__(self, epoch):
        self.epoch = epoch

    def after_epoch(self, trainer, epoch, record):
        if epoch == self.epoch:
            dataset = trainer.loaders["train"].dataset
            dataset.failing = set(range(len(dataset)))


def test_the_failure_budget_stops_an_epoch_as_it_goes_and_keeps_the_last_checkpoint(tmp_path):
    cfg = tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 3, "TRAIN.BATCH_SIZE", 2, "DATA.MAX_FAILED_FRACTION", 0.2)
    expected = "4 videos failed to decode by now in epoch 2.*checkpoints of earlier epochs"
    with pytest.raises(TooManyFailedVideos, match=expected):
        train(cfg, FakeLoaderFn(num_videos=8), hooks=[FailEverythingAfter(1)])
    # 4 steps per epoch: the first of epoch 2 (2 of 8 + 2 failed: 20%) passes, the second (4 of 12) stops it
    assert [r["epoch"] for r in read_metrics(str(tmp_path), "train_iter")] == [1] * 4 + [2]
    assert [r["epoch"] for r in read_metrics(str(tmp_path), "epoch")] == [1]
    assert "checkpoint_epoch_00001.pyth" in os.listdir(tmp_path / "checkpoints")


def test_a_file_shorter_than_its_header_is_used_with_a_warning(tmp_path, make_index_video, caplog):
    full = make_index_video(tmp_path / "full.mkv", "libx264", num_frames=36)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 6 // 10])
    reader = VideoReader(DecodeOptions())
    for _ in range(2):
        (clip,) = reader.read_clips(catalog.VideoRecord(str(cut), 0, "cut"), lambda meta: [[0, meta.num_frames - 1]])
    assert clip.shape[0] == 2
    warnings = [r.getMessage() for r in caplog.records if "shorter than its header" in r.getMessage()]
    assert len(warnings) == 1, warnings  # once per file and process
    assert str(cut) in warnings[0] and "header claims 1.44 s" in warnings[0] and "of the 36 claimed" in warnings[0]
    caplog.clear()
    reader.read_clips(catalog.VideoRecord(str(full), 0, "full"), lambda meta: [[0]])
    assert "shorter than its header" not in caplog.text


def test_make_synthetic_refuses_an_existing_benchmark_unless_told_to_replace_it(tmp_path, caplog, capsys):
    out = tmp_path / "bench"
    tool = _tool("make_synthetic")
    small = [str(out), "--videos-per-class", "1", "--frames", "2", "--size", "32"]
    assert run_tool(lambda: tool.main(small)) == 0
    stale = out / "videos" / "train" / "stale_0099.mp4"
    stale.write_bytes(b"old")
    before = (out / "train.txt").read_text()
    caplog.clear()
    assert run_tool(lambda: tool.main([*small, "--seed", "1"])) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and f"{out} already holds a synthetic benchmark" in errors[0] and "--overwrite" in errors[0]
    assert (out / "train.txt").read_text() == before and stale.exists()  # untouched
    assert run_tool(lambda: tool.main([*small, "--seed", "1", "--overwrite"])) == 0
    assert not stale.exists() and (out / "meta.json").read_text().count('"seed": 1') == 1
    with pytest.raises(synthetic.BenchmarkExists):
        synthetic.make_synthetic(str(out), videos_per_class=1, frames=2, size=32)


@pytest.mark.parametrize("case, expected", [
    ("count", "argument --videos-per-class: must be a positive integer, got -1"),
    ("file", "OUT_DIR {out} is a file, not a folder"),
])
def test_make_synthetic_bad_arguments_are_one_line(tmp_path, caplog, capsys, case, expected):
    out = tmp_path / "bench"
    if case == "file":
        out.write_text("not a folder")
    argv = [str(out), "--videos-per-class", "-1" if case == "count" else "1", "--frames", "2", "--size", "32"]
    caplog.clear()
    assert run_tool(lambda: _tool("make_synthetic").main(argv)) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and expected.format(out=out) in errors[0], errors
    assert "Traceback" not in capsys.readouterr().err


def test_log_lines_go_to_the_current_stderr(monkeypatch):
    """setup_logging's handler writes to sys.stderr as it is now: a caller that swapped stderr
    and closed the old one (a notebook cell, a test's capture) gets no "Logging error"."""
    old = io.StringIO()
    monkeypatch.setattr("sys.stderr", old)
    setup_logging()
    old.close()
    new = io.StringIO()
    monkeypatch.setattr("sys.stderr", new)
    logging.getLogger("cakes_video.test").warning("after the swap")
    assert "Logging error" not in new.getvalue()
    assert new.getvalue().rstrip().endswith("WARNING] after the swap")
