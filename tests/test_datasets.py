"""Dataset formats, the train/val clip dataset (retries, failures) and the frame reader."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from video_factory import frame_index, index_frame

from cakes_video.config import ConfigError, get_cfg
from cakes_video.config_loader import check_config
from cakes_video.datasets import AnnotationError, DecodeRetriesExhausted, build_dataset, catalog
from cakes_video.datasets.video_reader import DecodeOptions, VideoReader

NUM_FRAMES = 24


@pytest.fixture(scope="module")
def videos(tmp_path_factory, make_index_video):
    """Three good 64x48 index videos and two bad ones (zero-byte, text), all ".mp4"."""
    root = tmp_path_factory.mktemp("videos")
    for name in ("a", "b", "c"):
        make_index_video(root / f"{name}.mp4", num_frames=NUM_FRAMES, fps=25, size=(64, 48))
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("not a video\n")
    return root


def _write(path, text):
    path.write_text(text)
    return str(path)


def _cfg(tmp_path, lines, root, **data):
    """Defaults for 4-frame clips of the 64x48 test videos, a video list of ``lines``."""
    cfg = get_cfg()
    cfg.DATA.ROOT = str(root)
    for key in ("TRAIN_LIST", "VAL_LIST", "TEST_LIST"):
        cfg.DATA[key] = _write(tmp_path / "list.txt", "".join(f"{line}\n" for line in lines))
    cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE = 4, 2
    cfg.DATA.TRAIN_JITTER_SCALES, cfg.DATA.TRAIN_CROP_SIZE = [48, 56], 40
    cfg.DATA.TEST_SCALE, cfg.DATA.TEST_CROP_SIZE = 48, 40
    cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS = 2, 3
    for key, value in data.items():
        cfg.DATA[key] = value
    return check_config(cfg)


# ---- formats -------------------------------------------------------------------------------

def test_video_list_splits_from_the_right_and_skips_comments(tmp_path):
    path = _write(tmp_path / "l.txt", "# header\nclass a/clip one.mp4,3\n\nb/two.avi , 0\n")
    records = catalog.read_video_list(path, root="/data", separator=",")
    assert records == [catalog.VideoRecord("/data/class a/clip one.mp4", 3, "class a/clip one"),
                       catalog.VideoRecord("/data/b/two.avi", 0, "b/two")]
    assert catalog.derived_class_names(4) == ["0", "1", "2", "3"]
    spaced = _write(tmp_path / "s.txt", "my clip.mp4\t 2\n")
    assert catalog.read_video_list(spaced) == [catalog.VideoRecord("my clip.mp4", 2, "my clip")]


@pytest.mark.parametrize("line, reason", [("only_a_path.mp4", "expected 2 fields"),
                                          ("x.mp4 three", "label must be an integer"),
                                          ("x.mp4 -1", "label must be >= 0")])
def test_bad_video_list_line_names_file_and_line(tmp_path, line, reason):
    path = _write(tmp_path / "l.txt", f"ok.mp4 1\n{line}\n")
    with pytest.raises(AnnotationError, match=rf"{path}:2: {reason}"):
        catalog.read_video_list(path)


def test_frame_list_reads_counts_and_rejects_zero_frames(tmp_path):
    path = _write(tmp_path / "f.txt", "v/1 30 5\nv/2/\t12  0\n")
    records = catalog.read_frame_list(path, root="r")
    assert [(r.path, r.num_frames, r.label, r.video_id) for r in records] == [
        ("r/v/1", 30, 5, "v/1"), ("r/v/2/", 12, 0, "v/2")]
    bad = _write(tmp_path / "g.txt", "v/1 30 5\n\nv/3 0 1\n")
    with pytest.raises(AnnotationError, match=rf"{bad}:3: num_frames must be >= 1"):
        catalog.read_frame_list(bad)


def test_folder_per_class_sorts_classes_and_keeps_train_labels_in_val(tmp_path, videos):
    for split, classes in (("train", ("zebra", "ant", "moth")), ("val", ("zebra", "moth"))):
        for name in classes:
            (tmp_path / split / name).mkdir(parents=True)
            os.symlink(videos / "a.mp4", tmp_path / split / name / "v1.MP4")
            (tmp_path / split / name / "notes.txt").write_text("not listed")
    cfg = _cfg(tmp_path, [], tmp_path, DATASET="folder_per_class", TRAIN_LIST="train", VAL_LIST="val")
    train, val = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    assert train.class_names == val.class_names == ["ant", "moth", "zebra"]
    assert [(r.label, r.video_id) for r in val.records] == [(1, "moth/v1"), (2, "zebra/v1")]
    assert train.num_videos == 3 and val.num_videos == 2


def test_folder_per_class_rejects_folders_missing_from_class_names(tmp_path):
    (tmp_path / "s" / "cat").mkdir(parents=True)
    with pytest.raises(AnnotationError, match="class folders \\['cat'\\] are not among"):
        catalog.scan_class_folders(str(tmp_path / "s"), [".mp4"], ["dog"])


def _ssv2_files(tmp_path, entries):
    labels = {"Putting something on something": "1", "Pushing something from left to right": "0"}
    return (_write(tmp_path / "labels.json", json.dumps(labels)),
            _write(tmp_path / "train.json", json.dumps(entries)))


def test_ssv2_maps_bracketed_templates_to_labels(tmp_path):
    entries = [{"id": "74225", "label": "putting a cup on a table",
                "template": "Putting [something] on [something]", "placeholders": ["a cup", "a table"]},
               {"id": "3", "label": "x", "template": "Pushing [something] from left to right", "placeholders": []}]
    labels, listing = _ssv2_files(tmp_path, entries)
    names = catalog.read_class_names(labels)
    assert names == ["Pushing something from left to right", "Putting something on something"]
    records = catalog.read_ssv2_list(listing, names, root="/ss", suffix=".webm")
    assert [(r.path, r.label, r.video_id) for r in records] == [("/ss/74225.webm", 1, "74225"), ("/ss/3.webm", 0, "3")]


def test_ssv2_unknown_template_names_the_entry(tmp_path):
    labels, listing = _ssv2_files(tmp_path, [{"id": "1", "template": "Pushing [something] from left to right"},
                                             {"id": "2", "template": "Juggling [something]"}])
    with pytest.raises(AnnotationError, match=rf"{listing}: entry 1: template 'Juggling something'"):
        catalog.read_ssv2_list(listing, catalog.read_class_names(labels))


def test_ssv2_labels_with_a_gap_are_rejected(tmp_path):
    path = _write(tmp_path / "labels.json", json.dumps({"a": "0", "b": "2"}))
    with pytest.raises(AnnotationError, match="indices must be 0..1 without gaps"):
        catalog.read_class_names(path)


def test_ssv2_dataset_reads_videos_by_id(tmp_path, videos):
    labels, listing = _ssv2_files(tmp_path, [{"id": "b", "template": "Putting [something] on [something]"}])
    cfg = _cfg(tmp_path, [], videos, DATASET="ssv2_json", CLASS_NAMES=labels, SSV2_SUFFIX=".mp4",
               VAL_LIST=listing)
    item = build_dataset(cfg, "val")[0]
    assert item["video_id"] == "b" and item["label"] == 1 and item["video"].shape == (3, 4, 40, 40)


def test_class_names_file_too_short_for_labels(tmp_path, videos):
    names = _write(tmp_path / "names.txt", "first\nsecond\n")
    with pytest.raises(AnnotationError, match="label 2 of 'c' is out of range for 2 class names"):
        build_dataset(_cfg(tmp_path, ["a.mp4 0", "c.mp4 2"], videos, CLASS_NAMES=names), "train")


def test_frame_list_dataset_decodes_jpeg_folders(tmp_path):
    folder = tmp_path / "frames" / "clip7"
    folder.mkdir(parents=True)
    for i in range(10):
        Image.fromarray(index_frame(i, (64, 48))).save(folder / f"img_{i:03d}.jpg", quality=95)
    cfg = _cfg(tmp_path, ["clip7 10 0"], tmp_path / "frames", DATASET="frame_list", DECODER="frames",
               FRAME_TEMPLATE="img_{:03d}.jpg", FRAME_START_INDEX=0, FRAME_FPS=15.0, TARGET_FPS=30.0,
               MEAN=[0.0] * 3, STD=[1.0] * 3, TEST_CROP_SIZE=48)
    item = build_dataset(cfg, "val")[0]
    # At 15 fps a rate of 2 (counted at 30 fps) steps 1 frame: starts 0..6, centre 3.
    assert _indices_in(item["video"]) == [3, 4, 5, 6] and item["failed"] == []


def test_frame_list_needs_the_frames_decoder(tmp_path, videos):
    with pytest.raises(ConfigError, match="DATA.DECODER"):
        _cfg(tmp_path, [], videos, DATASET="frame_list")


# ---- reading frames ------------------------------------------------------------------------

@pytest.mark.parametrize("cache", [False, True])
def test_reader_decodes_the_union_once_and_returns_each_clip(videos, cache):
    reader = VideoReader(DecodeOptions("pyav"), cache=cache)
    record = catalog.VideoRecord(str(videos / "a.mp4"), 0, "a")
    wanted = [np.array([5, 1, 1, 9]), np.array([20, 5]), np.array([23])]
    clips = reader.read_clips(record, lambda meta: wanted)
    assert [[frame_index(f) for f in clip] for clip in clips] == [list(w) for w in wanted]


def test_cache_serves_later_reads_without_the_file(tmp_path, videos):
    path = tmp_path / "copy.mp4"
    path.write_bytes((videos / "b.mp4").read_bytes())
    reader = VideoReader(DecodeOptions("pyav"), cache=True)
    record = catalog.VideoRecord(str(path), 0, "copy")
    reader.read_clips(record, lambda meta: [np.array([0])])
    path.unlink()
    (clip,) = reader.read_clips(record, lambda meta: [np.array([17, 3])])
    assert [frame_index(f) for f in clip] == [17, 3]


# ---- train / val items ---------------------------------------------------------------------

def _indices_in(video):
    """Frame indices shown by float [C, T, 48, 48] (the centre crop of 64x48, mean 0, std 1)."""
    frames = (video.permute(1, 2, 3, 0) * 255).round().byte().numpy()
    return [frame_index(np.pad(f, ((0, 0), (8, 8), (0, 0)), mode="edge")) for f in frames]


def test_val_item_is_the_centre_clip(tmp_path, videos):
    cfg = _cfg(tmp_path, ["a.mp4 1"], videos, MEAN=[0.0] * 3, STD=[1.0] * 3, TEST_CROP_SIZE=48, TARGET_FPS=0.0)
    item = build_dataset(cfg, "val")[0]
    # 24 frames, clip 4 x rate 2 spans 7 frames: starts range 0..17, the centre is 8.
    assert _indices_in(item["video"]) == [8, 10, 12, 14]
    assert (item["label"], item["index"], item["video_id"], item["failed"]) == (1, 0, "a", [])


def test_train_retries_bad_videos_and_reports_them(tmp_path, videos):
    cfg = _cfg(tmp_path, ["empty.mp4 0", "a.mp4 1", "text.mp4 2", "b.mp4 1"], videos, RANDOM_FLIP=False)
    dataset = build_dataset(cfg, "train")
    torch.manual_seed(0)
    for bad in (0, 2):
        item = dataset[bad]
        assert item["video"].shape == (3, 4, 40, 40) and item["video"].dtype == torch.float32
        assert item["index"] in (1, 3) and item["label"] == 1
        assert item["video_id"] == ("a" if item["index"] == 1 else "b")
        assert item["failed"] and all(f["path"] in (str(videos / "empty.mp4"), str(videos / "text.mp4"))
                                      for f in item["failed"])
        assert item["failed"][0]["path"] == dataset.records[bad].path
        assert dataset.records[bad].path in item["failed"][0]["error"]


def test_train_gives_up_after_max_retries(tmp_path, videos):
    dataset = build_dataset(_cfg(tmp_path, ["empty.mp4 0", "text.mp4 1"], videos, MAX_RETRIES=3), "train")
    with pytest.raises(DecodeRetriesExhausted, match="4 videos in a row failed to decode \\(DATA.MAX_RETRIES=3\\)"):
        dataset[0]


def test_non_decode_errors_propagate(tmp_path, videos):
    dataset = build_dataset(_cfg(tmp_path, ["a.mp4 0"], videos), "train")
    dataset.train_transform = lambda *args, **kwargs: 1 / 0  # a bug, not a bad video
    with pytest.raises(ZeroDivisionError):
        dataset[0]


def test_val_does_not_retry_a_bad_video(tmp_path, videos):
    item = build_dataset(_cfg(tmp_path, ["a.mp4 0", "text.mp4 1"], videos), "val")[1]
    assert item["video"].numel() == 0 and (item["index"], item["label"], item["video_id"]) == (1, 1, "text")
    assert [f["path"] for f in item["failed"]] == [str(videos / "text.mp4")]


def test_a_bad_video_is_logged_once_and_reported_every_time(tmp_path, videos, caplog):
    bad = tmp_path / "bad.mp4"  # a path no other test has logged: the log is once per process
    bad.write_text("not a video\n")
    dataset = build_dataset(_cfg(tmp_path, [f"{bad} 0"], videos), "val")
    with caplog.at_level("WARNING", logger="cakes_video.datasets.video_reader"):
        items = [dataset[0], dataset[0]]
    assert [r.getMessage() for r in caplog.records] == [f"cannot decode: {items[0]['failed'][0]['error']}"]
    assert all(item["failed"] == [{"path": str(bad), "error": items[0]["failed"][0]["error"]}] for item in items)
    assert str(bad) in items[0]["failed"][0]["error"]


def test_train_augmentation_is_a_function_of_seed_epoch_and_index(tmp_path, videos):
    dataset = build_dataset(_cfg(tmp_path, ["a.mp4 0", "b.mp4 1"], videos), "train")
    dataset.set_epoch(3)
    first = dataset[1]["video"]
    torch.manual_seed(123)  # torch's RNG plays no part: workers and resumed runs repeat the item
    assert torch.equal(first, dataset[1]["video"])
    dataset.set_epoch(4)
    assert not torch.equal(first, dataset[1]["video"])
    dataset.set_epoch(3)
    dataset.seed += 1
    assert not torch.equal(first, dataset[1]["video"])
