"""tools/check_dataset.py and cakes_video.datasets.check on good, missing, empty, non-video,
truncated files and a frame folder."""
import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

from cakes_video.datasets.catalog import AnnotationError
from cakes_video.datasets.check import check_videos, read_list, summary
from cakes_video.engine.cli import run_tool
from video_factory import index_frame

REPO = Path(__file__).resolve().parents[1]


def _load_tool():
    spec = importlib.util.spec_from_file_location("check_dataset", REPO / "tools" / "check_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, make_index_video):
    """A root folder with one file of each kind and a list naming them (with labels)."""
    root = tmp_path_factory.mktemp("data")
    good = make_index_video(root / "good clip.mp4", "libx264", num_frames=24)
    mkv = make_index_video(root / "long.mkv", "libx264", num_frames=36)
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("not a video, only text\n" * 10)
    (root / "cut.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (root / "cut.mkv").write_bytes(mkv.read_bytes()[: mkv.stat().st_size * 6 // 10])
    names = ["good clip.mp4 3", "# a comment", "", "missing.mp4 1", "empty.mp4", "text.mp4 0",
             "cut.mp4 2", "cut.mkv 2"]
    (root / "list.txt").write_text("\n".join(names) + "\n")
    return root


EXPECTED_ERRORS = {"missing.mp4": "missing", "empty.mp4": "zero-byte",
                   "text.mp4": "cannot open as a video",
                   "cut.mp4": "cannot open as a video",  # the mp4 index is at the end: gone
                   "cut.mkv": "truncated: header claims 1.44 s, content is"}


def test_read_list_strips_labels_comments_and_joins_root(dataset):
    paths = read_list(str(dataset / "list.txt"), root=str(dataset))
    assert [Path(p).name for p in paths] == ["good clip.mp4", "missing.mp4", "empty.mp4", "text.mp4",
                                             "cut.mp4", "cut.mkv"]
    assert paths[0] == str(dataset / "good clip.mp4")


def test_read_list_keeps_a_last_word_that_is_no_label_and_names_a_missing_list(tmp_path):
    (tmp_path / "list.txt").write_text("  a b.mp4 x  \n#skip 1\n/abs/c.mp4 -2\n")
    assert read_list(str(tmp_path / "list.txt"), root="r") == ["r/a b.mp4 x", "/abs/c.mp4"]
    with pytest.raises(AnnotationError, match="annotation file not found: .*nope.txt"):
        read_list(str(tmp_path / "nope.txt"))


def test_tool_reports_every_file_in_json(dataset, tmp_path, capsys, caplog):
    out = tmp_path / "report.json"
    tool = _load_tool()
    status = run_tool(lambda: tool.main([str(dataset / "list.txt"), "--root", str(dataset), "--json", str(out)]))
    assert status == 1 and not caplog.records  # videos failed: the tool's own status, no error raised
    printed = capsys.readouterr().out
    assert printed.strip().splitlines()[-1] == "1 ok, 5 failed"
    assert printed.count("FAILED") == 5
    report = json.loads(out.read_text())
    assert report["summary"] == {"ok": 1, "failed": 5} and report["backend"] == "pyav"
    by_name = {Path(v["path"]).name: v for v in report["videos"]}
    assert by_name["good clip.mp4"] == {"path": str(dataset / "good clip.mp4"), "ok": True, "error": None,
                                        "num_frames": 24, "fps": 25.0, "width": 64, "height": 48}
    for name, reason in EXPECTED_ERRORS.items():
        entry = by_name[name]
        assert not entry["ok"] and reason in entry["error"] and str(dataset / name) in entry["error"]
    assert 0 < by_name["cut.mkv"]["num_frames"] < 36  # what decodes, not what the header claims
    assert by_name["missing.mp4"]["num_frames"] is None


def test_decord_backend_and_workers_give_the_same_verdicts(dataset):
    paths = read_list(str(dataset / "list.txt"), root=str(dataset))
    one = check_videos(paths, "pyav", workers=1, progress=False)
    assert check_videos(paths, "pyav", workers=2, progress=False) == one
    by_decord = check_videos(paths, "decord", progress=False)
    assert [r["ok"] for r in by_decord] == [r["ok"] for r in one]
    assert summary(by_decord) == "1 ok, 5 failed"


def test_frame_folders(tmp_path):
    good = tmp_path / "v1"
    good.mkdir()
    for i in range(5):
        Image.fromarray(index_frame(i, (32, 24))).save(good / f"img_{i:05d}.jpg")
    (tmp_path / "v2").mkdir()
    results = check_videos([str(good), str(tmp_path / "v2")], "frames", progress=False,
                           template="img_{:05d}.jpg", start_index=0)
    assert results[0]["ok"] and (results[0]["num_frames"], results[0]["width"]) == (5, 32)
    assert not results[1]["ok"] and "no frame named 'img_00000.jpg'" in results[1]["error"]


def test_tool_names_a_missing_list_in_one_line(tmp_path, caplog):
    tool = _load_tool()
    assert run_tool(lambda: tool.main([str(tmp_path / "nope.txt")])) == 1
    assert [r.getMessage() for r in caplog.records] == [f"AnnotationError: annotation file not found: {tmp_path / 'nope.txt'}"]
