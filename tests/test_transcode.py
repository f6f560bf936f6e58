"""Resized videos and frame folders (cakes_video/datasets/transcode.py and the two
datasets/ scripts): rotation, size, frame rate, resuming, atomic outputs, failures."""
import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from cakes_video.datasets import transcode
from cakes_video.datasets.decoding import open_video
from cakes_video.datasets.transcode import (extract_frames, find_videos, report, resize_video, run_jobs,
                                            scaled_size, transcode_tree)
from cakes_video.engine.cli import run_tool
from video_factory import frame_index

REPO = Path(__file__).resolve().parents[1]
SIZE = (64, 48)  # (width, height) as stored


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "datasets" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _marker_corners(frame):
    """Corners of an [H, W, 3] frame that hold the white marker (written top-left, upright)."""
    h, w = frame.shape[:2]
    corners = {"top_left": frame[: h // 8, : w // 8], "top_right": frame[: h // 8, -w // 8:],
               "bottom_left": frame[-h // 8:, : w // 8], "bottom_right": frame[-h // 8:, -w // 8:]}
    return {name for name, patch in corners.items() if patch.mean() > 230}


def _stored_index(upright):
    """frame_index of an upright frame of the ``rotated`` video, turned back as stored."""
    return frame_index(np.rot90(upright, k=-1))


def _read_all(path, backend="pyav", **options):
    with open_video(path, backend, **options) as video:
        return video.meta, video.get_frames(np.arange(video.meta.num_frames))


@pytest.fixture()
def rotated(tmp_path, make_index_video):
    """A portrait phone video: stored 64x48 landscape, tagged 90 degrees counter-clockwise."""
    (tmp_path / "in").mkdir()
    return make_index_video(tmp_path / "in" / "phone.mp4", num_frames=6, size=SIZE, rotation=90)


@pytest.fixture()
def tree(tmp_path, make_index_video):
    """IN_DIR with two good videos (one nested, one AVI) and three unreadable files."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    good = make_index_video(root / "a.mp4", num_frames=5)
    make_index_video(root / "sub" / "b.avi", "mpeg4", num_frames=4)
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("not a video\n" * 10)
    (root / "cut.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (root / "notes.txt").write_text("not listed: no video suffix")
    return root


def test_scaled_size_keeps_aspect_rounds_even_and_never_upscales_unless_asked():
    assert scaled_size(64, 48, 32, multiple=2) == (42, 32)
    assert scaled_size(48, 64, 32, multiple=2) == (32, 42)
    assert scaled_size(64, 48, 320, multiple=2) == (64, 48)
    assert scaled_size(64, 48, 320, upscale=True, multiple=2) == (426, 320)
    assert all(side % 2 == 0 for side in scaled_size(65, 47, None, multiple=2))
    assert scaled_size(65, 47, None) == (65, 47)


def test_resize_turns_a_rotated_video_upright_and_keeps_frames_and_rate(rotated, tmp_path):
    out = tmp_path / "out" / "phone.mp4"
    resize_video(str(rotated), str(out), short_side=32)
    meta, frames = _read_all(out)
    source_meta, source = _read_all(rotated)
    assert source_meta.rotation == 270 and (source_meta.width, source_meta.height) == (48, 64)
    assert (meta.width, meta.height, meta.rotation) == (32, 42, 0)  # still portrait, no tag
    assert (meta.num_frames, meta.fps) == (6, 25.0)
    assert [_stored_index(f) for f in frames] == [_stored_index(f) for f in source] == list(range(6))
    assert _marker_corners(frames[0]) == _marker_corners(source[0]) == {"bottom_left"}
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert not container.streams.audio
        assert next(container.decode(stream)).rotation == 0


def test_resize_never_upscales_and_fps_resamples_by_time(tmp_path, make_index_video):
    src = make_index_video(tmp_path / "a.mp4", num_frames=10, fps=25, size=SIZE)
    resize_video(str(src), str(tmp_path / "same.mp4"), short_side=320)
    meta, _ = _read_all(tmp_path / "same.mp4")
    assert (meta.width, meta.height, meta.num_frames) == (*SIZE, 10)
    resize_video(str(src), str(tmp_path / "half.mp4"), short_side=320, fps=12.5)
    meta, frames = _read_all(tmp_path / "half.mp4")
    assert (meta.fps, meta.num_frames) == (12.5, 5)
    assert [frame_index(f) for f in frames] == [0, 2, 4, 6, 8]


def test_extract_frames_names_upright_frames_that_our_decoder_reads(rotated, tmp_path):
    folder = tmp_path / "frames" / "phone"
    extract_frames(str(rotated), str(folder), short_side=24)
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:05d}.jpg" for i in range(1, 7)]
    meta, frames = _read_all(folder, "frames", template="{:05d}.jpg", start_index=1)
    assert (meta.width, meta.height, meta.num_frames) == (24, 32, 6)
    assert [_stored_index(f) for f in frames] == list(range(6))
    assert _marker_corners(frames[0]) == {"bottom_left"}


def test_extract_frames_template_start_index_and_fps(tmp_path, make_index_video):
    src = make_index_video(tmp_path / "a.mp4", num_frames=10, fps=25, size=SIZE)
    extract_frames(str(src), str(tmp_path / "a"), template="img_{:04d}.png", start_index=0, fps=12.5)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == [f"img_{i:04d}.png" for i in range(5)]
    frames = [np.asarray(Image.open(tmp_path / "a" / name)) for name in names]
    assert frames[0].shape == (48, 64, 3) and [frame_index(f) for f in frames] == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("kind, final", [("resize", "a.mp4"), ("frames", "a")])
def test_a_failure_midway_leaves_no_output_and_no_partial_file(tree, tmp_path, monkeypatch, kind, final):
    calls = []

    def fail_on_third(self, frame):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return np.zeros((self.size[1], self.size[0], 3), np.uint8)
    monkeypatch.setattr(transcode._Upright, "__call__", fail_on_third)
    jobs = [job for job in transcode.plan_jobs(str(tree), str(tmp_path / "out"), kind) if job.src.endswith("a.mp4")]
    [result] = run_jobs(jobs, workers=1, progress=False)
    assert result["status"] == "failed" and "a.mp4: disk full" in result["error"]
    assert list((tmp_path / "out").iterdir()) == []


def test_tree_reports_unreadable_files_by_name_and_resumes(tree, tmp_path):
    out = tmp_path / "out"
    assert [str(p) for p in find_videos(str(tree))] == ["a.mp4", "cut.mp4", "empty.mp4", "sub/b.avi", "text.mp4"]
    out.mkdir()
    (out / ".a.mp4.partial").write_bytes(b"left by a killed run")
    results = transcode_tree(str(tree), str(out), "resize", workers=2, progress=False, short_side=32)
    errors = {Path(r["src"]).name: r["error"] for r in results if r["status"] == "failed"}
    assert set(errors) == {"cut.mp4", "empty.mp4", "text.mp4"}
    assert "zero-byte" in errors["empty.mp4"] and "cannot open as a video" in errors["text.mp4"]
    assert all(name in error for name, error in errors.items())
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["a.mp4", "sub", "sub/b.mp4"]
    assert _read_all(out / "sub" / "b.mp4")[0].num_frames == 4
    assert report(results).splitlines()[-1] == "2 processed, 0 skipped, 3 failed"
    stamp = (out / "a.mp4").stat().st_mtime_ns
    again = transcode_tree(str(tree), str(out), "resize", workers=2, progress=False, short_side=32)
    assert report(again).splitlines()[-1] == "0 processed, 2 skipped, 3 failed"
    assert (out / "a.mp4").stat().st_mtime_ns == stamp


def test_two_videos_with_one_output_name_fail_the_second(tmp_path, make_index_video):
    (tmp_path / "in").mkdir()
    make_index_video(tmp_path / "in" / "a.mp4", num_frames=3)
    make_index_video(tmp_path / "in" / "a.mkv", num_frames=3)
    results = transcode_tree(str(tmp_path / "in"), str(tmp_path / "out"), "frames", workers=1, progress=False)
    assert [r["status"] for r in results] == ["processed", "failed"]  # sorted: a.mkv, a.mp4
    assert "a.mp4: same output" in results[1]["error"] and results[1]["error"].endswith("a.mkv")


def test_extract_frames_script_progress_summary_and_exit_status(tree, tmp_path, capsys):
    script = _load_script("extract_frames")
    out = tmp_path / "frames"
    status = run_tool(lambda: script.main([str(tree), str(out), "--workers", "2", "--short-side", "32"]))
    captured = capsys.readouterr()
    assert status == 1
    assert "FAILED" in captured.out and "empty.mp4: zero-byte" in captured.out
    assert captured.out.splitlines()[-1] == "2 processed, 0 skipped, 3 failed"
    assert "frames" in captured.err and "100%" in captured.err  # the tqdm bar, on stderr
    assert sorted(p.name for p in (out / "sub" / "b").iterdir()) == [f"{i:05d}.jpg" for i in range(1, 5)]
    assert len(list((out / "a").iterdir())) == 5


def test_resize_script_succeeds_and_names_a_missing_folder(tmp_path, make_index_video, capsys, caplog):
    script = _load_script("resize_videos")
    (tmp_path / "in").mkdir()
    make_index_video(tmp_path / "in" / "a.mp4", num_frames=3)
    args = [str(tmp_path / "in"), str(tmp_path / "out"), "--short-side", "32", "--workers", "1"]
    assert run_tool(lambda: script.main(args)) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 processed, 0 skipped, 0 failed"
    assert run_tool(lambda: script.main([str(tmp_path / "nowhere"), str(tmp_path / "out"), "--short-side", "32"])) == 1
    assert "nowhere: no such folder of videos" in caplog.text
