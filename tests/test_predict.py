"""Prediction on users' videos (engine/predict.py, tools/predict.py): inputs, JSON, exit
status, bad input; windows streamed over long videos (datasets/windows.py) and scored as the
offline test scores the clip a window covers; the CSV (engine/reports.py) and PNG timeline (engine/plots.py)."""
import importlib.util
import json
import os
import weakref

import av
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cakes_video import load_config
from cakes_video.checkpoint import save_checkpoint
from cakes_video.datasets.catalog import VideoRecord
from cakes_video.datasets.decoding import open_video
from cakes_video.datasets.loader import collate_videos
from cakes_video.datasets.multiview import SpatialViews, TemporalViews, multiview_dataset_from_cfg
from cakes_video.datasets.streaming import FrameStream
from cakes_video.datasets.video_reader import VideoReader, decode_options_from_cfg
from cakes_video.datasets.windows import SlidingWindows, Span
from cakes_video.engine import predict as predict_module
from cakes_video.config import ConfigError
from cakes_video.engine.cli import UsageError, run_tool
from cakes_video.engine.export import export_model
from cakes_video.engine.predict import (EXIT_SOME_FAILED, PredictOptions, find_inputs, load_trained_model,
                                        predict_inputs, split_overrides, view_overrides)
from cakes_video.engine.testing import collect_predictions
from cakes_video.engine.plots import plot_timeline, timeline_classes
from cakes_video.engine.reports import write_windows_csv
from cakes_video.models import build_model
from video_factory import frame_index

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "demo/cakes_r10_synthetic"
TINY = ["DEVICE", "cpu", "MODEL.BASE_WIDTH", "8", "DATA.NUM_FRAMES", "4", "DATA.SAMPLING_RATE", "2",
        "DATA.TARGET_FPS", "10.0", "DATA.TEST_SCALE", "32", "DATA.TEST_CROP_SIZE", "32",
        "TEST.NUM_ENSEMBLE_VIEWS", "2", "TEST.NUM_SPATIAL_CROPS", "3"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _tool():
    spec = importlib.util.spec_from_file_location("predict_tool", os.path.join(REPO, "tools", "predict.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model's config and a checkpoint of its (random) weights."""
    cfg = load_config(CONFIG, TINY)
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("model") / "model.pyth")
    save_checkpoint(path, build_model(cfg).state_dict(), epoch=1)
    return cfg, path


@pytest.fixture(scope="module")
def model(trained):
    cfg, path = trained
    return load_trained_model(cfg, path)


def _audio_only(path):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=8000)
        for i in range(3):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _scores(topk):
    return {t["label"]: t["score"] for t in topk}


def test_span_reads_seconds_and_frames():
    assert Span.parse("2.5") == Span(2.5) and Span.parse("64f") == Span(64, in_frames=True)
    assert Span.parse("2.5").frames(10) == 25 and Span.parse("64f").frames(10) == 64
    assert Span.parse(".05").frames(10) == 1 and Span.parse("0.01").frames(10) == 1  # halves up, at least one
    assert str(Span.parse("64f")) == "64f" and str(Span.parse("2.50")) == "2.5s"
    for bad in ("0", "-1", "2.5f", "abc", "", "3s"):
        with pytest.raises(ValueError):
            Span.parse(bad)


@pytest.mark.slow
def test_windowed_scores_equal_the_offline_test_output(tmp_path, make_index_video, trained, model):
    """Every window scores exactly what multi-view testing (datasets/multiview ->
    engine/testing.collect_predictions) scores for a video holding the window's frames alone;
    the whole video likewise. FFV1 is lossless, so a stretch written alone decodes the same."""
    cfg, _ = trained
    long = str(make_index_video(tmp_path / "long.mkv", "ffv1", num_frames=40, fps=10))
    names = [str(i) for i in range(10)]
    options = PredictOptions(topk=10, window=Span(16, True), stride=Span(1.2), output_dir=str(tmp_path / "out"),
                             progress=False)
    (windowed,) = predict_inputs(model, names, cfg, [long], options)
    (whole,) = predict_inputs(model, names, cfg, [long], PredictOptions(topk=10, progress=False))
    assert [(w["start"], w["end"]) for w in windowed["windows"]] == [(0.0, 1.6), (1.2, 2.8), (2.4, 4.0)]

    clips = [str(make_index_video(tmp_path / f"clip{s}.mkv", "ffv1", num_frames=16, fps=10, first=s))
             for s in (0, 12, 24)]
    records = [VideoRecord(p, 0, os.path.basename(p)) for p in clips + [long]]
    dataset = multiview_dataset_from_cfg(cfg, records, names, VideoReader(decode_options_from_cfg(cfg)))
    loader = DataLoader(dataset, batch_size=1, collate_fn=collate_videos)
    offline = collect_predictions(model, loader, torch.device("cpu"), cfg.TEST.AGGREGATION, False)["scores"]
    predicted = [_scores(w["topk"]) for w in windowed["windows"]] + [_scores(whole["topk"])]
    for got, expected in zip(predicted, offline):
        assert sorted(got) == names
        np.testing.assert_allclose([got[n] for n in names], expected.numpy(), rtol=0, atol=1e-6)
    assert len({round(s[names[0]], 6) for s in predicted}) > 1  # the windows do differ


def test_windows_keep_only_the_frames_they_sample(tmp_path, make_index_video):
    """After the first window, only frames a pending window samples are converted and kept, each
    until no pending window samples it: as many frames are held for a 48-frame video as for a
    24-frame one."""
    def peak_held(num_frames):
        live, peak, converted = set(), [0], []

        class Counting(SpatialViews):
            def scaled(self, frame):
                out = super().scaled(frame).copy()
                converted.append(frame_index(frame))
                live.add(len(converted))
                if len(converted) > 8:  # past the first window
                    peak[0] = max(peak[0], len(live))
                weakref.finalize(out, live.discard, len(converted))
                return out

        path = make_index_video(tmp_path / f"v{num_frames}.mkv", "ffv1", num_frames=num_frames, fps=10)
        windows = SlidingWindows(TemporalViews("dense", 4, 2, None, 1), Counting(32, 32, 1), Span(8, True),
                                 Span(4, True))
        starts = [w.start for w in windows.read(str(path))]
        assert starts == list(range(0, num_frames - 7, 4))
        return peak[0], converted

    peak_short, converted = peak_held(24)
    peak_long, converted_long = peak_held(48)
    # window 0 keeps frames 0..7; later windows (start 4k, sampling 4k + 0, 2, 4, 6) convert only theirs
    assert converted == list(range(8)) + list(range(8, 24, 2))
    assert converted_long == list(range(8)) + list(range(8, 48, 2))
    assert peak_short == peak_long == 4  # window k's frames 4k + {0, 2, 4, 6}, held until it is scored


def test_inputs_are_files_folders_and_lists(tmp_path):
    videos = tmp_path / "videos"
    for name in ("a/x.mp4", "a/b/y.MKV", "z.avi", ".hidden.mp4", "notes.md"):
        (videos / name).parent.mkdir(parents=True, exist_ok=True)
        (videos / name).write_bytes(b"")
    (tmp_path / "empty").mkdir()
    listed = tmp_path / "list.txt"
    listed.write_text("# two videos\nvideos/z.avi\n\nvideos/a/x.mp4\nvideos/gone.mp4\n")
    found = find_inputs([str(videos), str(listed), str(tmp_path / "empty"), str(tmp_path / "nope.mp4")])
    assert [p for p, e in found if not e] == [str(videos / "a/b/y.MKV"), str(videos / "a/x.mp4"), str(videos / "z.avi"),
                                              str(tmp_path / "videos/z.avi"), str(tmp_path / "videos/a/x.mp4")]
    errors = [e for _, e in found if e]
    assert errors == [f"{tmp_path / 'videos/gone.mp4'}: no such file (listed in {listed})",
                      errors[1], f"{tmp_path / 'nope.mp4'}: no such file or folder"]
    assert errors[1].startswith(f"{tmp_path / 'empty'}: no video files (.mp4")
    assert find_inputs([str(videos)], frame_folders=True) == [(str(videos), "")]  # DATA.DECODER frames


def test_command_line_inputs_overrides_and_views():
    assert split_overrides(["a.mp4", "dir", "TEST.TOPK", "3", "DEVICE", "cpu"]) == \
        (["a.mp4", "dir"], ["TEST.TOPK", "3", "DEVICE", "cpu"])
    assert split_overrides(["a.mp4"]) == (["a.mp4"], [])
    assert view_overrides("10x3", "dense") == ["TEST.NUM_ENSEMBLE_VIEWS", "10", "TEST.NUM_SPATIAL_CROPS", "3",
                                               "DATA.TEST_PROTOCOL", "dense"]
    with pytest.raises(ValueError, match="CLIPSxCROPS"):
        view_overrides("ten")
    for argv in (["a.mp4", "--cfg", CONFIG, "--stride", "2"], ["a.mp4", "--cfg", CONFIG, "--window", "0"],
                 ["a.mp4", "--cfg", CONFIG, "--views", "3"], ["--cfg", CONFIG, "TEST.TOPK", "3"],
                 ["a.mp4", "--cfg", CONFIG, "--topk", "-1"]):
        with pytest.raises(UsageError, match="see --help"):
            _tool().main(argv)


def test_tool_predicts_each_video_and_names_every_bad_one(tmp_path, make_index_video, trained, capsys):
    """A good video, a portrait one, a 1-frame one, an audio-only file, a missing file and a
    folder with no videos: each failure one line naming it, the others predicted, exit 3."""
    cfg, checkpoint = trained
    good = make_index_video(tmp_path / "good.mp4", num_frames=30, fps=10)
    portrait = make_index_video(tmp_path / "portrait.mp4", num_frames=30, fps=10, size=(96, 64), rotation=90)
    single = make_index_video(tmp_path / "single.mp4", num_frames=1, fps=10)
    audio = _audio_only(tmp_path / "audio.mp4")
    (tmp_path / "empty").mkdir()
    inputs = [str(p) for p in (good, portrait, single, audio, tmp_path / "missing.mp4", tmp_path / "empty")]
    out = tmp_path / "predictions.json"
    argv = [*inputs, "--cfg", CONFIG, "--checkpoint", checkpoint, "--json", str(out), "--topk", "3",
            "--no-progress", *TINY]
    assert run_tool(lambda: _tool().main(argv)) == EXIT_SOME_FAILED
    results = json.loads(out.read_text())
    assert [r["path"] for r in results] == inputs
    for r in results[:3]:
        assert [t["label"] for t in r["topk"]] and len(r["topk"]) == 3 and "error" not in r
        scores = [t["score"] for t in r["topk"]]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    assert results[2]["warning"] == f"{single}: 1 frame(s) at 10 fps: the test clips repeat frames"
    assert "warning" not in results[0]
    assert results[3]["error"] == f"{audio}: no video stream"
    assert results[4]["error"] == f"{tmp_path / 'missing.mp4'}: no such file or folder"
    assert results[5]["error"].startswith(f"{tmp_path / 'empty'}: no video files")
    printed = capsys.readouterr().out
    assert [line for line in printed.splitlines() if line.startswith("FAILED")] == \
        [f"FAILED {r['error']}" for r in results[3:]]
    assert f"{good}:\n  1. " in printed and "predicted 3 of 6 videos (3 failed)" in printed
    # the same call with the good videos alone succeeds
    assert run_tool(lambda: _tool().main([str(good), str(portrait), *argv[len(inputs):]])) == 0


def test_portrait_video_is_seen_upright(tmp_path, make_index_video):
    """The streaming reader turns frames as the decoders do, so windows and whole-video views agree."""
    path = str(make_index_video(tmp_path / "portrait.mp4", num_frames=12, fps=10, size=(96, 64), rotation=90))
    with FrameStream(path) as stream:
        streamed = np.stack([frame for _, frame in stream.frames(lambda i: True)])
    with open_video(path) as video:
        decoded = video.get_frames(range(video.meta.num_frames))
    assert streamed.shape == (12, 96, 64, 3)  # portrait: taller than wide
    np.testing.assert_array_equal(streamed, decoded)
    corner = streamed[:, -96 // 8:, : 64 // 8]  # the top-left marker, turned a quarter counter-clockwise
    assert corner.mean() > 240 and [frame_index(np.rot90(f, -1)) for f in streamed] == list(range(12))


@pytest.mark.slow
def test_windows_handle_short_and_bad_videos(tmp_path, make_index_video, trained, model):
    """A video shorter than the window is one window with a warning naming it, a 1-frame video
    too; a file without video fails alone; the CSV and PNG hold each video's windows."""
    cfg, _ = trained
    paths = [str(make_index_video(tmp_path / "long.mp4", num_frames=30, fps=10)),
             str(make_index_video(tmp_path / "short.mp4", num_frames=12, fps=10)),
             str(make_index_video(tmp_path / "one.mp4", num_frames=1, fps=10)),
             str(_audio_only(tmp_path / "audio.mp4"))]
    out = tmp_path / "out"
    options = PredictOptions(topk=2, window=Span(2.0), stride=Span(0.5), output_dir=str(out),
                             json_path=str(tmp_path / "p.json"), progress=False)
    results = predict_inputs(model, [str(i) for i in range(10)], cfg, paths, options)
    assert json.loads((tmp_path / "p.json").read_text()) == results
    long, short, one, audio = results
    assert [(w["start"], w["end"]) for w in long["windows"]] == [(0.0, 2.0), (0.5, 2.5), (1.0, 3.0)]
    assert (long["window_frames"], long["stride_frames"], long["fps"]) == (20, 5, 10.0) and "warning" not in long
    assert [(w["start"], w["end"]) for w in short["windows"]] == [(0.0, 1.2)]
    assert short["warning"] == f"{paths[1]}: 12 frame(s), 1.2 s, is shorter than the 2s window: one window over the whole video"
    assert [(w["start"], w["end"]) for w in one["windows"]] == [(0.0, 0.1)] and one["warning"].startswith(f"{paths[2]}: 1 frame(s)")
    assert audio == {"path": paths[3], "error": f"{paths[3]}: no video stream"}
    rows = (out / "long.csv").read_text().splitlines()
    assert rows[0] == "start_s,end_s,top1,top1_score,top2,top2_score" and len(rows) == 4
    assert rows[2].split(",")[:3] == ["0.500", "2.500", long["windows"][1]["topk"][0]["label"]]
    for r in (long, short, one):
        assert r["csv"] == str(out / f"{os.path.splitext(os.path.basename(r['path']))[0]}.csv")
        with open(r["timeline"], "rb") as f:
            assert f.read(8) == PNG_MAGIC


def test_a_missing_checkpoint_stops_before_any_video(tmp_path, make_index_video, caplog):
    video = make_index_video(tmp_path / "v.mp4", num_frames=8)
    out = tmp_path / "p.json"
    argv = [str(video), "--cfg", CONFIG, "--checkpoint", str(tmp_path / "none.pyth"), "--json", str(out), *TINY]
    assert run_tool(lambda: _tool().main(argv)) == 1
    assert f"CheckpointError: checkpoint not found: {tmp_path / 'none.pyth'}" in caplog.text
    assert not out.exists()


def test_any_callable_model_predicts_and_an_interrupted_run_keeps_its_results(tmp_path, make_index_video, trained,
                                                                             monkeypatch):
    """What an exported model gives predict: a function of [N, 3, T, H, W] -> [N, K], its class
    names and config. The JSON is written even when the run stops half-way."""
    cfg, _ = trained
    videos = [str(make_index_video(tmp_path / f"v{i}.mp4", num_frames=8, fps=10)) for i in range(2)]

    def brightness(clips):  # two "classes": bright and dark
        mean = clips.mean(dim=(1, 2, 3, 4))
        return torch.stack([mean, -mean], dim=1)

    out = tmp_path / "p.json"
    (result,) = predict_inputs(brightness, ["bright", "dark"], cfg, videos[:1], PredictOptions(progress=False))
    views, _ = predict_module.video_views(cfg, videos[0])
    expected = torch.softmax(brightness(views), dim=1).mean(dim=0)  # TEST.AGGREGATION mean_softmax
    order = expected.argsort(descending=True).tolist()
    assert result["topk"] == [{"label": ["bright", "dark"][i], "score": pytest.approx(float(expected[i]))} for i in order]

    calls = []
    original = predict_module.video_views

    def stop_on_second(cfg_, path):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(cfg_, path)

    monkeypatch.setattr(predict_module, "video_views", stop_on_second)
    with pytest.raises(KeyboardInterrupt):
        predict_inputs(brightness, ["bright", "dark"], cfg, videos, PredictOptions(json_path=str(out), progress=False))
    saved = json.loads(out.read_text())
    assert [r["path"] for r in saved] == videos[:1] and saved[0]["topk"] == result["topk"]


def test_timeline_csv_and_plot(tmp_path):
    scores = torch.tensor([[0.7, 0.2, 0.1, 0.0], [0.6, 0.1, 0.0, 0.3], [0.15, 0.05, 0.0, 0.8]])
    spans = [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0)]
    assert timeline_classes(scores, 2) == [3, 0]  # peaks: an action in one window shows
    write_windows_csv(str(tmp_path / "w.csv"), spans, scores, ["a", "b", "c", "d"], 2)
    assert (tmp_path / "w.csv").read_text().splitlines() == [
        "start_s,end_s,top1,top1_score,top2,top2_score", "0.000,2.000,a,0.7,b,0.2",
        "1.000,3.000,a,0.6,d,0.3", "2.000,4.000,d,0.8,a,0.15"]
    plot_timeline(str(tmp_path / "t.png"), spans, scores, ["a", "b", "c", "d"], 2, "video.mp4")
    assert (tmp_path / "t.png").read_bytes()[:8] == PNG_MAGIC and sorted(os.listdir(tmp_path)) == ["t.png", "w.csv"]


@pytest.mark.slow
def test_memory_benchmark_child_reports_its_peak(tmp_path, capsys):
    """The measured process of tools/benchmark_predict.py, run here in-process on a short video."""
    from cakes_video.benchmarks.predict_memory import child, write_test_video

    video = write_test_video(str(tmp_path / "sweep.mp4"), seconds=1.2, fps=10, size=(64, 48))
    with open_video(video) as v:
        assert (v.meta.num_frames, v.meta.width, v.meta.height, v.meta.fps) == (12, 64, 48, 10.0)
    child(json.dumps({"video": video, "model": "synthetic_cakes_r10_w32", "window": "8f", "stride": "4f",
                      "overrides": ["DEVICE", "cpu"]}))
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["windows"] == 2 and report["peak_rss_mib"] >= report["peak_rss_before_video_mib"] > 0


def test_a_video_failing_half_way_keeps_its_windows(tmp_path, make_index_video, trained, model, monkeypatch):
    from cakes_video.datasets import streaming
    from cakes_video.datasets.decoding import DecodeError

    cfg, _ = trained
    path = str(make_index_video(tmp_path / "v.mp4", num_frames=40, fps=10))
    decode = streaming.decoded_frames

    def corrupt_after_25(container, stream, name):
        for i, frame in enumerate(decode(container, stream, name)):
            if i == 25:
                raise DecodeError(f"{name}: corrupt data after 25 frames")
            yield frame

    monkeypatch.setattr(streaming, "decoded_frames", corrupt_after_25)
    options = PredictOptions(window=Span(10, True), output_dir=str(tmp_path / "out"), progress=False)
    (result,) = predict_inputs(model, [str(i) for i in range(10)], cfg, [path], options)
    assert result["error"] == f"{path}: corrupt data after 25 frames"
    assert [(w["start"], w["end"]) for w in result["windows"]] == [(0.0, 1.0), (1.0, 2.0)]
    assert len((tmp_path / "out" / "v.csv").read_text().splitlines()) == 3


@pytest.mark.slow
def test_an_onnx_export_predicts_what_the_pytorch_model_does(tmp_path, make_index_video, trained):
    """``--onnx FILE``: the export's own class names and config (its protocol), ONNX Runtime
    scores equal to PyTorch's; overrides after the inputs still apply; --checkpoint is refused."""
    cfg, checkpoint = trained
    onnx = str(tmp_path / "model.onnx")
    export_model(load_trained_model(cfg, checkpoint), cfg, onnx, "onnx")
    video = str(make_index_video(tmp_path / "clip.mp4", num_frames=30, fps=10))
    runs = {}
    for name, source in (("torch", ["--cfg", CONFIG, "--checkpoint", checkpoint, *TINY]), ("onnx", ["--onnx", onnx])):
        out = tmp_path / f"{name}.json"
        assert run_tool(lambda: _tool().main([video, *source, "--json", str(out), "--no-progress"])) == 0
        runs[name] = json.loads(out.read_text())[0]["topk"]
    assert [t["label"] for t in runs["onnx"]] == [t["label"] for t in runs["torch"]]
    for a, b in zip(runs["onnx"], runs["torch"]):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
    one_view = tmp_path / "one_view.json"
    assert run_tool(lambda: _tool().main([video, "--onnx", onnx, "--views", "1x1", "--json", str(one_view),
                                          "--no-progress"])) == 0
    assert json.loads(one_view.read_text())[0]["topk"] != runs["onnx"]  # another protocol, other scores
    with pytest.raises(UsageError, match="--checkpoint"):
        _tool().main([video, "--onnx", onnx, "--checkpoint", checkpoint])
    with pytest.raises(ConfigError, match=r"DATA.NUM_FRAMES: .*model.onnx was exported for 4, not 8"):
        _tool().main([video, "--onnx", onnx, "DATA.NUM_FRAMES", "8"])
    with pytest.raises(ConfigError, match="TEST.TOPKK"):
        _tool().main([video, "--onnx", onnx, "TEST.TOPKK", "3"])
