"""datasets/prepare.py and cakes_video.datasets.prepare on tiny samples laid out like the
official releases: the lists load through build_dataset with the right labels and class
names; missing videos, unreadable videos (--check) and malformed lines are reported by name
(and file:line) while the rest is prepared."""
import csv
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from cakes_video.config_loader import load_config
from cakes_video.datasets import build_dataset
from cakes_video.datasets.catalog import read_class_names
from cakes_video.config import get_config_file
from cakes_video.datasets.prepare import prepare, report
from cakes_video.engine.cli import run_tool
from video_factory import index_frame

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, make_index_video):
    """One tiny video; the samples copy it under each name (PyAV reads the content, not the suffix)."""
    return make_index_video(tmp_path_factory.mktemp("clip") / "clip.mp4", num_frames=8, size=(32, 32))


def _videos(root: Path, clip: Path, names) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, root / name)
    return root


def _write(path: Path, text: str, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write(text.replace("\n", newline))
    return path


def _dataset(summary: dict, split: str = "train"):
    overrides = [part for pair in summary["overrides"].items() for part in pair]
    return build_dataset(load_config(None, overrides), split)


def _rows(dataset):
    return [(r.video_id, r.label) for r in dataset.records]


def _csv(path: Path, rows) -> None:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_kinetics400_finds_clips_flat_and_in_class_folders(tmp_path, clip):
    ann = tmp_path / "ann"
    ann.mkdir()
    header = ["label", "youtube_id", "time_start", "time_end", "split"]
    _csv(ann / "train.csv", [header, ["abseiling", "-3B32lodo2M", "59", "69", "train"],
                             ["passing American football (in game)", "abc_DEF-1", "0", "10", "train"],
                             ["air drumming", "gone", "5", "15", "train"],
                             ["abseiling", "short"],
                             ["air drumming", "xyz", "1", "11", "train"]])
    _csv(ann / "validate.csv", [header, ['tying knot (not on a tie)', "v1", "100", "110", "val"]])
    _csv(ann / "test.csv", [["youtube_id", "time_start", "time_end", "split"], ["t1", "0", "10", "test"]])
    videos = _videos(tmp_path / "videos", clip, [
        "abseiling/-3B32lodo2M_000059_000069.mp4", "passing American football (in game)/abc_DEF-1_000000_000010.mp4",
        "xyz_000001_000011.mp4", "tying_knot_(not_on_a_tie)/v1_000100_000110.mp4"])
    summary = prepare("kinetics400", str(ann), str(videos), str(tmp_path / "out"))
    train = _dataset(summary)
    assert train.class_names == ["abseiling", "air drumming", "passing American football (in game)",
                                 "tying knot (not on a tie)"]
    assert _rows(train) == [("abseiling/-3B32lodo2M_000059_000069", 0),
                            ("passing American football (in game)/abc_DEF-1_000000_000010", 2),
                            ("xyz_000001_000011", 1)]
    assert _rows(_dataset(summary, "val")) == [("tying_knot_(not_on_a_tie)/v1_000100_000110", 3)]
    assert train[0]["video"].shape[1] == 8  # decodes: [C, T, H, W]
    assert summary["splits"]["train.txt"]["missing"] == ["gone_000005_000015"]
    assert summary["malformed"] == [f"{ann / 'train.csv'}:5: expected 5 fields with a label and an id, "
                                    "got ['abseiling', 'short']"]
    assert "test.csv: skipped (no labels)" in summary["notes"]
    assert not (tmp_path / "out" / "test.txt").exists()
    assert "videos: 1 found flat, 3 in sub-folders of " + str(videos) in summary["notes"]


def test_kinetics400_uses_the_packaged_order_when_all_400_classes_are_there(tmp_path):
    packaged = read_class_names(get_config_file("classes/kinetics400.txt"))
    header = ["label", "youtube_id", "time_start", "time_end", "split"]
    ann = tmp_path / "ann"
    ann.mkdir()
    rows = [[name, f"id{i}", "0", "10", "train"] for i, name in enumerate(reversed(packaged))]
    _csv(ann / "train.csv", [header] + rows)
    _csv(ann / "validate.csv", [header])
    (tmp_path / "videos").mkdir()
    summary = prepare("kinetics400", str(ann), str(tmp_path / "videos"), str(tmp_path / "out"))
    assert (tmp_path / "out" / "classes.txt").read_text().splitlines() == packaged
    assert summary["splits"]["train.txt"]["missing_count"] == 400 and summary["splits"]["train.txt"]["written"] == 0
    assert "  missing: ... and 390 more (summary.json)" in report(summary, str(tmp_path / "out")).splitlines()


def test_kinetics400_writes_a_labelled_test_csv(tmp_path, clip):
    header = ["label", "youtube_id", "time_start", "time_end", "split"]
    ann = tmp_path / "ann"
    ann.mkdir()
    _csv(ann / "train.csv", [header, ["abseiling", "a", "0", "10", "train"]])
    _csv(ann / "validate.csv", [header, ["abseiling", "b", "0", "10", "val"]])
    _csv(ann / "test.csv", [header, ["abseiling", "c", "0", "10", "test"]])
    videos = _videos(tmp_path / "videos", clip, ["a_000000_000010.mp4", "c_000000_000010.mp4"])
    summary = prepare("kinetics400", str(ann), str(videos), str(tmp_path / "out"))
    assert (tmp_path / "out" / "test.txt").read_text() == "c_000000_000010.mp4 0\n"
    assert summary["splits"]["val.txt"]["missing"] == ["b_000000_000010"]
    assert summary["overrides"]["DATA.VAL_LIST"] == str(tmp_path / "out" / "val.txt")


def _frames(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(index_frame(i, (32, 32))).save(folder / f"{i + 1:05d}.jpg")


def test_ssv1_counts_frames_and_reports_bad_lines(tmp_path):
    ann = tmp_path / "ann"
    _write(ann / "something-something-v1-labels.csv", "Pushing something\nTearing something into two pieces\n")
    _write(ann / "something-something-v1-train.csv",
           "100;Tearing something into two pieces\n101;Pushing something\n102;Pushing something\n"
           "no separator here\n103;Juggling something\n")
    _write(ann / "something-something-v1-validation.csv", "200;Pushing something\n201;Pushing something\n")
    videos = tmp_path / "frames"
    _frames(videos / "100", 5)
    _frames(videos / "101", 3)
    _frames(videos / "200", 4)
    _frames(videos / "201", 0)
    summary = prepare("ssv1", str(ann), str(videos), str(tmp_path / "out"))
    train = _dataset(summary)
    assert train.class_names == ["Pushing something", "Tearing something into two pieces"]
    assert [(r.video_id, r.num_frames, r.label) for r in train.records] == [("100", 5, 1), ("101", 3, 0)]
    assert train[0]["video"].shape[1] == 8
    assert (tmp_path / "out" / "val.txt").read_text() == "200 4 0\n"
    assert summary["splits"]["train.txt"]["missing"] == ["102"]
    assert summary["splits"]["val.txt"]["unreadable"] == [{"name": "201", "error": "no .jpg frames in the folder"}]
    train_csv = ann / "something-something-v1-train.csv"
    assert summary["malformed"] == [
        f"{train_csv}:4: expected 'id;label', got 'no separator here'",
        f"{train_csv}:5: label 'Juggling something' is not in the labels file, got '103;Juggling something'"]
    assert summary["overrides"]["DATA.DECODER"] == "frames"


def test_ssv2_maps_templates_to_labels(tmp_path, clip):
    ann = tmp_path / "ann"
    _write(ann / "something-something-v2-labels.json", json.dumps(
        {"Approaching something with your camera": "0", "Putting something on something": "1"}))
    _write(ann / "something-something-v2-train.json", json.dumps([
        {"id": "3", "label": "putting a cup on a table", "template": "Putting [something] on [something]",
         "placeholders": ["a cup", "a table"]},
        {"id": "4", "label": "approaching a dog", "template": "Approaching [something] with your camera",
         "placeholders": ["a dog"]},
        {"id": "5", "label": "no template"},
        {"id": "6", "template": "Approaching [something] with your camera"},
        {"id": "8", "template": "Juggling [something]"}], indent=1))
    _write(ann / "something-something-v2-validation.json", json.dumps([
        {"id": "7", "template": "Putting [something] on [something]"}]))
    videos = _videos(tmp_path / "20bn-something-something-v2", clip, ["3.webm", "4.webm", "7.webm"])
    summary = prepare("ssv2", str(ann), str(videos), str(tmp_path / "out"))
    train = _dataset(summary)
    assert train.class_names == ["Approaching something with your camera", "Putting something on something"]
    assert _rows(train) == [("3", 1), ("4", 0)]
    assert _rows(_dataset(summary, "val")) == [("7", 1)]
    assert summary["splits"]["train.txt"]["missing"] == ["6"]
    train_json = ann / "something-something-v2-train.json"
    assert [line.split(", got")[0] for line in summary["malformed"]] == [
        f"{train_json}: entry 2: needs keys 'id' and 'template'",
        f"{train_json}: entry 4: template 'Juggling something' is not in the labels file"]


def _ucf_sample(tmp_path, clip):
    ann = tmp_path / "ucfTrainTestlist"
    crlf = "\r\n"  # the official files have Windows line ends
    _write(ann / "classInd.txt", "1 ApplyEyeMakeup\n2 Biking\n3 HandstandPushups\n", crlf)
    _write(ann / "trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
           "HandstandPushups/v_HandStandPushups_g08_c01.avi 3\nBiking/v_Biking_g09_c01.avi 4\n", crlf)
    _write(ann / "testlist01.txt", "HandStandPushups/v_HandStandPushups_g01_c01.avi\n"
           "Biking/v_Biking_g01_c01.avi\nApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi\n", crlf)
    videos = _videos(tmp_path / "UCF-101", clip, [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "HandstandPushups/v_HandstandPushups_g08_c01.avi",
        "HandstandPushups/v_HandStandPushups_g01_c01.avi", "Biking/v_Biking_g01_c01.avi"])
    (videos / "Biking" / "v_Biking_g01_c01.avi").write_bytes(b"not a video")
    return ann, videos


def test_ucf101_labels_from_classind_and_folders_without_case(tmp_path, clip):
    ann, videos = _ucf_sample(tmp_path, clip)
    summary = prepare("ucf101", str(ann), str(videos), str(tmp_path / "out"), split=1, check=True)
    train = _dataset(summary)
    assert train.class_names == ["ApplyEyeMakeup", "Biking", "HandstandPushups"]
    assert _rows(train) == [("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", 0),
                            ("HandstandPushups/v_HandstandPushups_g08_c01", 2)]  # the name on disk
    assert _rows(_dataset(summary, "val")) == [("HandstandPushups/v_HandStandPushups_g01_c01", 2)]
    test = summary["splits"]["test.txt"]
    assert test["missing"] == ["ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi"]
    assert [u["name"] for u in test["unreadable"]] == ["Biking/v_Biking_g01_c01.avi"]
    assert summary["malformed"] == [f"{ann / 'trainlist01.txt'}:3: label must be 1..3, got '4', "
                                    f"got 'Biking/v_Biking_g09_c01.avi 4'"]


def test_hmdb51_flags_pick_train_and_test(tmp_path, clip):
    ann = tmp_path / "testTrainMulti_7030_splits"
    _write(ann / "brush_hair_test_split1.txt", "Brushing_my_hair_u_nm_np1_ba_goo_0.avi 1 \n"
           "Brushing_my_hair_u_nm_np1_ba_goo_1.avi 2 \nBrushing_my_hair_u_nm_np1_ba_goo_2.avi 0 \n")
    _write(ann / "cartwheel_test_split1.txt", "Cartwheel_[!]_f_cm_np1_le_med_0.avi 1\ngone.avi 2\nbad line here\n")
    _write(ann / "cartwheel_test_split2.txt", "Cartwheel_[!]_f_cm_np1_le_med_0.avi 2\n")
    videos = _videos(tmp_path / "hmdb51", clip, ["brush_hair/Brushing_my_hair_u_nm_np1_ba_goo_0.avi",
                                                 "brush_hair/Brushing_my_hair_u_nm_np1_ba_goo_1.avi",
                                                 "cartwheel/Cartwheel_[!]_f_cm_np1_le_med_0.avi"])
    summary = prepare("hmdb51", str(ann), str(videos), str(tmp_path / "out"), split=1)
    train = _dataset(summary)
    assert train.class_names == ["brush_hair", "cartwheel"]
    assert _rows(train) == [("brush_hair/Brushing_my_hair_u_nm_np1_ba_goo_0", 0),
                            ("cartwheel/Cartwheel_[!]_f_cm_np1_le_med_0", 1)]
    assert _rows(_dataset(summary, "val")) == [("brush_hair/Brushing_my_hair_u_nm_np1_ba_goo_1", 0)]
    assert summary["splits"]["test.txt"]["missing"] == ["cartwheel/gone.avi"]
    assert summary["malformed"] == [f"{ann / 'cartwheel_test_split1.txt'}:3: expected 'video.avi 0|1|2', "
                                    f"got 'bad line here'"]
    split2 = prepare("hmdb51", str(ann), str(videos), str(tmp_path / "out2"), split=2)
    assert split2["num_classes"] == 1 and split2["splits"]["test.txt"]["written"] == 1


def _load_tool():
    spec = importlib.util.spec_from_file_location("prepare_tool", REPO / "datasets" / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_command_line_prints_the_report_and_writes_overrides(tmp_path, clip, capsys):
    ann, videos = _ucf_sample(tmp_path, clip)
    out = tmp_path / "out"
    tool = _load_tool()
    assert tool.main(["ucf101", "--annotations", str(ann), "--videos", str(videos), "--out", str(out), "--check"]) == 0
    printed = capsys.readouterr().out
    assert "test.txt: 1 of 3 written, 1 missing, 1 unreadable" in printed
    assert "  missing: ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi" in printed
    assert "  unreadable: Biking/v_Biking_g01_c01.avi: " in printed
    assert f"malformed: {ann / 'trainlist01.txt'}:3: " in printed
    assert f"DATA.VAL_LIST {out / 'test.txt'}" in printed
    overrides = (out / "overrides.txt").read_text().splitlines()
    assert overrides[0] == "DATA.DATASET video_list" and f"DATA.CLASS_NAMES {out / 'classes.txt'}" in overrides
    assert json.loads((out / "summary.json").read_text())["splits"]["train.txt"]["written"] == 2


def test_command_line_names_a_missing_annotation_file(tmp_path, caplog):
    (tmp_path / "videos").mkdir()
    tool = _load_tool()
    argv = ["ssv2", "--annotations", str(tmp_path), "--videos", str(tmp_path / "videos"), "--out", str(tmp_path / "o")]
    assert run_tool(lambda: tool.main(argv)) == 1
    assert "annotation file not found: " + str(tmp_path / "something-something-v2-labels.json") in caplog.text
    assert not (tmp_path / "o").exists()
