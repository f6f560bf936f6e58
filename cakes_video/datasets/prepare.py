"""Dataset preparation (``datasets/prepare.py``): official annotation files -> our lists.

``prepare(dataset, annotations, videos, out, split, check)`` runs the parser of
:data:`PREPARERS` on the official files under ``annotations``, looks every annotated video
up under ``videos``, and writes into ``out``: one list per split (``train.txt``, ``val.txt``
or ``test.txt`` where the official split calls it test) in the ``video_list`` or
``frame_list`` format with paths relative to ``videos``, ``classes.txt`` (label order),
``summary.json`` and ``overrides.txt`` (the ``KEY VALUE`` config overrides that use them,
one pair a line, shell-quoted). Every file is written atomically.

Nothing is dropped silently: a video not found is left out of its list and named in the
summary; an annotation line that cannot be parsed is reported as ``file:line: reason`` and
the other lines are still prepared; with ``check`` every found video is decoded
(:func:`check_video`) and an unreadable one is left out and named with its error.
"""
import csv
import json
import os
import shlex
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from ..config import get_config_file
from ..utils.io import replace_atomically, write_json
from .catalog import AnnotationError, annotation_lines, read_class_names, read_ssv2_labels, ssv2_template_name
from .check import check_video
from .transcode import find_videos

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi")
SSV1_FRAMES = {"DATA.DECODER": "frames", "DATA.FRAME_TEMPLATE": "{:05d}.jpg", "DATA.FRAME_START_INDEX": "1",
               "DATA.FRAME_FPS": "12.0", "DATA.SAMPLING": "tsn", "DATA.TEST_PROTOCOL": "tsn"}
REPORTED_NAMES = 10  # missing / unreadable names printed per split (summary.json has all)


@dataclass
class Entry:
    """One annotated video: its name in the annotations, its label, its path relative to the
    videos folder (None: not found), its frame count (frame folders) and why it is unreadable."""

    name: str
    label: int
    path: Optional[str]
    num_frames: Optional[int] = None
    error: Optional[str] = None


@dataclass
class Annotations:
    """What a parser read: class names in label order, entries per split list file name
    ("train.txt", ...), malformed lines (``file:line: reason``), notes for the report, the
    list format (``DATA.DATASET``) and extra config overrides."""

    class_names: List[str]
    splits: Dict[str, List[Entry]]
    malformed: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    data_format: str = "video_list"
    extra_overrides: Dict[str, str] = field(default_factory=dict)


def _require(path: str) -> str:
    if not os.path.isfile(path):
        raise AnnotationError(f"annotation file not found: {path}")
    return path


def _index_videos(videos: str, key: Callable[[str], str]) -> Dict[str, str]:
    """``key(relative path)`` -> relative path of every video file under ``videos`` (sorted walk:
    the first of two files with one key wins)."""
    if not os.path.isdir(videos):
        raise AnnotationError(f"videos folder not found: {videos}")
    index = {}
    for relative in find_videos(videos, VIDEO_SUFFIXES):
        index.setdefault(key(str(relative)), str(relative))
    return index


def _stem(relative: str) -> str:
    return os.path.splitext(os.path.basename(relative))[0]


def _label_of(names: List[str]) -> Dict[str, int]:
    return {name: label for label, name in enumerate(names)}


# ---- Kinetics-400 -------------------------------------------------------------------------


def kinetics_clip_name(youtube_id: str, start: str, end: str) -> str:
    """The trimmed clip's name without extension: ``{youtube_id}_{start:06d}_{end:06d}``."""
    return f"{youtube_id}_{_whole_seconds(start):06d}_{_whole_seconds(end):06d}"


def _whole_seconds(text: str) -> int:
    seconds = float(text)
    if not seconds.is_integer() or seconds < 0:
        raise ValueError(f"time {text!r} is not a whole number of seconds")
    return int(seconds)


KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


def _read_kinetics_csv(path: str, malformed: List[str]) -> List[Tuple[str, str]]:
    """(label, clip name) of every row of a Kinetics CSV file (header ``label,youtube_id,...``)."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        if not set(KINETICS_COLUMNS) <= set(header):
            raise AnnotationError(f"{path}:1: expected the header label,youtube_id,time_start,time_end,split")
        columns = [header.index(name) for name in KINETICS_COLUMNS]
        rows = []
        for row in reader:
            try:
                if len(row) != len(header) or not all(row[i] for i in columns[:2]):
                    raise ValueError(f"expected {len(header)} fields with a label and an id, got {row}")
                label, youtube_id, start, end = (row[i] for i in columns)
                rows.append((label, kinetics_clip_name(youtube_id, start, end)))
            except ValueError as err:
                malformed.append(f"{path}:{reader.line_num}: {err}")
    return rows


def _has_labels(path: str) -> bool:
    """Whether a Kinetics CSV file has a label column with a first label (newer test.csv files do)."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header, first = next(reader, []), next(reader, [])
    return "label" in header and len(first) == len(header) and bool(first[header.index("label")])


def _kinetics_class_names(labels: List[str], notes: List[str]) -> List[str]:
    """The sorted labels; when they are the 400 packaged classes, the packaged (torchvision) order."""
    names = sorted(set(labels))
    packaged = read_class_names(get_config_file("classes/kinetics400.txt"))
    if set(names) == set(packaged):
        notes.append("classes: the 400 of cakes_video/configs/classes/kinetics400.txt, in its order")
        return packaged
    unknown = sorted(set(names) - set(packaged))
    notes.append(f"classes: {len(names)} sorted labels, not the 400 packaged ones (labels do not index the "
                 f"zoo's Kinetics-400 heads)" + (f"; not Kinetics-400 classes: {unknown[:5]}" if unknown else ""))
    return names


def prepare_kinetics400(annotations: str, videos: str, split: int) -> Annotations:
    """``train.csv`` -> train.txt, ``validate.csv`` -> val.txt, ``test.csv`` -> test.txt when it has
    labels (the original release's has none: skipped, with a note). Clips are found by name
    anywhere under ``videos`` (flat or in class folders)."""
    malformed, notes = [], []
    csv_files = {"train.txt": "train.csv", "val.txt": "validate.csv"}
    test_csv = os.path.join(annotations, "test.csv")
    if os.path.isfile(test_csv):
        if _has_labels(test_csv):
            csv_files["test.txt"] = "test.csv"
        else:
            notes.append("test.csv: skipped (no labels)")
    rows = {out: _read_kinetics_csv(_require(os.path.join(annotations, csv_name)), malformed)
            for out, csv_name in csv_files.items()}
    names = _kinetics_class_names([label for split_rows in rows.values() for label, _ in split_rows], notes)
    found, label_of = _index_videos(videos, _stem), _label_of(names)
    splits = {out: [Entry(clip, label_of[label], found.get(clip)) for label, clip in split_rows]
              for out, split_rows in rows.items()}
    in_folders = sum(os.sep in e.path for entries in splits.values() for e in entries if e.path)
    found_total = sum(e.path is not None for entries in splits.values() for e in entries)
    notes.append(f"videos: {found_total - in_folders} found flat, {in_folders} in sub-folders of {videos}")
    return Annotations(names, splits, malformed, notes)


# ---- Something-Something V1 ---------------------------------------------------------------


def _count_frames(folder: str) -> int:
    return sum(1 for e in os.scandir(folder) if e.name.lower().endswith(".jpg"))


def _ssv1_entry(videos: str, video_id: str, label: int) -> Entry:
    folder = os.path.join(videos, video_id)
    if not os.path.isdir(folder):
        return Entry(video_id, label, None)
    count = _count_frames(folder)
    return Entry(video_id, label, video_id, count, None if count else "no .jpg frames in the folder")


def _read_ssv1_list(path: str, videos: str, label_of: Dict[str, int], malformed: List[str]) -> List[Entry]:
    """Lines ``id;label text`` -> entries with their folder's frame count."""
    entries = []
    for number, text in annotation_lines(_require(path)):
        video_id, _, label = (part.strip() for part in text.partition(";"))
        if not video_id or label not in label_of:
            reason = "expected 'id;label'" if not (video_id and label) else f"label {label!r} is not in the labels file"
            malformed.append(f"{path}:{number}: {reason}, got {text!r}")
            continue
        entries.append(_ssv1_entry(videos, video_id, label_of[label]))
    return entries


def prepare_ssv1(annotations: str, videos: str, split: int) -> Annotations:
    """``-train.csv`` -> train.txt, ``-validation.csv`` -> val.txt as ``frame_list`` lines
    ``id num_frames label``; classes in the labels file's order; frame folders ``videos/<id>/``."""
    if not os.path.isdir(videos):
        raise AnnotationError(f"frame folders not found: {videos}")
    prefix = os.path.join(annotations, "something-something-v1-")
    names = read_class_names(_require(prefix + "labels.csv"))
    notes = []
    if names != read_class_names(get_config_file("classes/something_something_v1.txt")):
        notes.append("classes: differ from cakes_video/configs/classes/something_something_v1.txt")
    malformed, label_of = [], _label_of(names)
    splits = {out: _read_ssv1_list(prefix + name, videos, label_of, malformed)
              for out, name in (("train.txt", "train.csv"), ("val.txt", "validation.csv"))}
    return Annotations(names, splits, malformed, notes, "frame_list", dict(SSV1_FRAMES))


# ---- Something-Something V2 ---------------------------------------------------------------


def _read_ssv2_list(path: str, found: Dict[str, str], label_of: Dict[str, int],
                    malformed: List[str]) -> List[Entry]:
    """Entries ``{"id", "template", ...}`` of a split JSON; a bad entry is named by position."""
    entries = []
    for position, item in enumerate(_load_json_list(_require(path))):
        problem = _ssv2_problem(item, label_of)
        if problem:
            malformed.append(f"{path}: entry {position}: {problem}, got {item!r}")
            continue
        label = label_of[ssv2_template_name(item["template"])]
        entries.append(Entry(str(item["id"]), label, found.get(str(item["id"]))))
    return entries


def _ssv2_problem(item, label_of: Dict[str, int]) -> Optional[str]:
    """Why a split JSON entry cannot be prepared, or None."""
    if not isinstance(item, dict) or "id" not in item or not isinstance(item.get("template"), str):
        return "needs keys 'id' and 'template'"
    name = ssv2_template_name(item["template"])
    return None if name in label_of else f"template {name!r} is not in the labels file"


def _load_json_list(path: str) -> list:
    with open(path) as f:
        try:
            entries = json.load(f)
        except json.JSONDecodeError as e:
            raise AnnotationError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(entries, list):
        raise AnnotationError(f"{path}: expected a JSON list of {{id, template, ...}} entries")
    return entries


def prepare_ssv2(annotations: str, videos: str, split: int) -> Annotations:
    """``-train.json`` -> train.txt, ``-validation.json`` -> val.txt (``<id>.webm label``); classes
    in the labels file's index order; the test JSON has no templates and is not written."""
    prefix = os.path.join(annotations, "something-something-v2-")
    names = read_ssv2_labels(_require(prefix + "labels.json"))
    found, label_of, malformed = _index_videos(videos, _stem), _label_of(names), []
    splits = {out: _read_ssv2_list(prefix + name, found, label_of, malformed)
              for out, name in (("train.txt", "train.json"), ("val.txt", "validation.json"))}
    return Annotations(names, splits, malformed, ["classes: the labels file's index order"])


# ---- UCF101 and HMDB51 --------------------------------------------------------------------


def _check_split_number(split: int) -> None:
    if split not in (1, 2, 3):
        raise AnnotationError(f"--split must be 1, 2 or 3, got {split}")


def _read_class_index(path: str, malformed: List[str]) -> List[str]:
    """UCF101 ``classInd.txt`` lines ``1 ApplyEyeMakeup`` (1-based) -> names in label order."""
    by_index = {}
    for number, text in annotation_lines(_require(path)):
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) < 1:
            malformed.append(f"{path}:{number}: expected 'index name' with a 1-based index, got {text!r}")
            continue
        by_index[int(parts[0])] = parts[1]
    return [by_index[i] for i in sorted(by_index)]


def _ucf_line(text: str, label_of: Dict[str, int], has_label: bool) -> Tuple[str, int]:
    """(video path, 0-based label) of a trainlist line ``Class/v_X.avi 1`` or testlist line."""
    parts = text.split()
    if len(parts) != (2 if has_label else 1) or "/" not in parts[0]:
        raise ValueError("expected 'Class/video.avi label'" if has_label else "expected 'Class/video.avi'")
    folder_label = label_of.get(parts[0].split("/")[0].lower())
    if not has_label:
        if folder_label is None:
            raise ValueError(f"class folder of {parts[0]!r} is not in classInd.txt")
        return parts[0], folder_label
    if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(label_of):
        raise ValueError(f"label must be 1..{len(label_of)}, got {parts[1]!r}")
    return parts[0], int(parts[1]) - 1


def _read_ucf_list(path: str, found: Dict[str, str], label_of: Dict[str, int], has_label: bool,
                   malformed: List[str]) -> List[Entry]:
    entries = []
    for number, text in annotation_lines(_require(path)):
        try:
            video, label = _ucf_line(text, label_of, has_label)
        except ValueError as err:
            malformed.append(f"{path}:{number}: {err}, got {text!r}")
            continue
        entries.append(Entry(video, label, found.get(video.lower())))
    return entries


def prepare_ucf101(annotations: str, videos: str, split: int) -> Annotations:
    """``trainlist0N.txt`` -> train.txt, ``testlist0N.txt`` -> test.txt (labels 0-based; a test
    video's label is its class folder's, matched to ``classInd.txt`` without case); videos are
    found under ``videos`` without regard to case."""
    _check_split_number(split)
    malformed = []
    names = _read_class_index(os.path.join(annotations, "classInd.txt"), malformed)
    label_of = {name.lower(): label for label, name in enumerate(names)}
    found = _index_videos(videos, str.lower)
    splits = {out: _read_ucf_list(os.path.join(annotations, f"{kind}list0{split}.txt"), found, label_of,
                                  kind == "train", malformed)
              for out, kind in (("train.txt", "train"), ("test.txt", "test"))}
    return Annotations(names, splits, malformed)


HMDB_FLAGS = {"1": "train.txt", "2": "test.txt", "0": None}


def _hmdb_split_files(annotations: str, split: int) -> Dict[str, str]:
    """Class name -> its ``<class>_test_split<N>.txt``, sorted by class."""
    suffix = f"_test_split{split}.txt"
    files = {name[: -len(suffix)]: os.path.join(annotations, name)
             for name in os.listdir(annotations) if name.endswith(suffix)} if os.path.isdir(annotations) else {}
    if not files:
        raise AnnotationError(f"{annotations}: no *{suffix} split files")
    return dict(sorted(files.items()))


def prepare_hmdb51(annotations: str, videos: str, split: int) -> Annotations:
    """Per-class ``<class>_test_split<N>.txt`` lines ``video.avi flag``: 1 -> train.txt, 2 ->
    test.txt, 0 unused; classes from the split file names, sorted; videos ``<class>/<video>``."""
    _check_split_number(split)
    files, found = _hmdb_split_files(annotations, split), _index_videos(videos, str.lower)
    splits, malformed = {"train.txt": [], "test.txt": []}, []
    for label, (name, path) in enumerate(files.items()):
        for number, text in annotation_lines(path):
            parts = text.split()
            if len(parts) != 2 or parts[1] not in HMDB_FLAGS:
                malformed.append(f"{path}:{number}: expected 'video.avi 0|1|2', got {text!r}")
            elif HMDB_FLAGS[parts[1]]:
                video = f"{name}/{parts[0]}"
                splits[HMDB_FLAGS[parts[1]]].append(Entry(video, label, found.get(video.lower())))
    return Annotations(list(files), splits, malformed)


PREPARERS = {"kinetics400": prepare_kinetics400, "ssv1": prepare_ssv1, "ssv2": prepare_ssv2,
             "ucf101": prepare_ucf101, "hmdb51": prepare_hmdb51}


# ---- shared: check, write, report ---------------------------------------------------------


def check_entries(annotations: Annotations, videos: str) -> None:
    """Decodes every found video (:func:`check_video`); an unreadable one gets its error."""
    frames = annotations.data_format == "frame_list"
    options = {"template": SSV1_FRAMES["DATA.FRAME_TEMPLATE"],
               "start_index": int(SSV1_FRAMES["DATA.FRAME_START_INDEX"])} if frames else {}
    for entries in annotations.splits.values():
        for entry in entries:
            if entry.path is not None and entry.error is None:
                result = check_video(os.path.join(videos, entry.path), "frames" if frames else "pyav", **options)
                entry.error = result["error"]


def list_line(entry: Entry) -> str:
    """``path label`` or, for a frame folder, ``folder num_frames label``."""
    middle = f" {entry.num_frames}" if entry.num_frames is not None else ""
    return f"{entry.path}{middle} {entry.label}"


def write_lines(path: str, lines: List[str]) -> None:
    """``lines``, one a line, written atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.writelines(line + "\n" for line in lines)

    replace_atomically(path, write)


def config_overrides(annotations: Annotations, videos: str, out: str) -> Dict[str, str]:
    """The ``KEY VALUE`` overrides that train and evaluate on the written lists."""
    held_out = os.path.join(out, next(name for name in annotations.splits if name != "train.txt"))
    overrides = {"DATA.DATASET": annotations.data_format, "DATA.ROOT": videos,
                 "DATA.TRAIN_LIST": os.path.join(out, "train.txt"), "DATA.VAL_LIST": held_out,
                 "DATA.TEST_LIST": held_out, "DATA.CLASS_NAMES": os.path.join(out, "classes.txt"),
                 "MODEL.NUM_CLASSES": str(len(annotations.class_names))}
    overrides.update(annotations.extra_overrides)
    return overrides


def summarize(dataset: str, annotations: Annotations, overrides: Dict[str, str]) -> dict:
    """The content of summary.json: counts, missing and unreadable names per split, malformed lines."""
    splits = {}
    for file_name, entries in annotations.splits.items():
        missing = [e.name for e in entries if e.path is None]
        unreadable = [{"name": e.name, "error": e.error} for e in entries if e.path is not None and e.error]
        splits[file_name] = {"annotated": len(entries), "written": len(entries) - len(missing) - len(unreadable),
                             "missing_count": len(missing), "missing": missing,
                             "unreadable_count": len(unreadable), "unreadable": unreadable}
    return {"dataset": dataset, "num_classes": len(annotations.class_names), "splits": splits,
            "malformed_count": len(annotations.malformed), "malformed": annotations.malformed,
            "notes": annotations.notes, "overrides": overrides}


def write_outputs(annotations: Annotations, summary: dict, out: str) -> None:
    """The lists, classes.txt, summary.json and overrides.txt under ``out``."""
    for file_name, entries in annotations.splits.items():
        write_lines(os.path.join(out, file_name), [list_line(e) for e in entries if e.path and not e.error])
    write_lines(os.path.join(out, "classes.txt"), annotations.class_names)
    write_lines(os.path.join(out, "overrides.txt"), [f"{k} {shlex.quote(v)}" for k, v in summary["overrides"].items()])
    write_json(os.path.join(out, "summary.json"), summary)


def _first(items: List[str], prefix: str) -> List[str]:
    """The first :data:`REPORTED_NAMES` of ``items`` behind ``prefix``, and how many more there are."""
    shown = [prefix + item for item in items[:REPORTED_NAMES]]
    more = len(items) - len(shown)
    return shown + ([f"{prefix}... and {more} more (summary.json)"] if more else [])


def report(summary: dict, out: str) -> str:
    """The printed report: per split counts with the first missing / unreadable names, the
    first malformed lines, the notes, and the overrides on one line."""
    lines = [f"{summary['dataset']}: {summary['num_classes']} classes"]
    for file_name, split in summary["splits"].items():
        lines.append(f"{file_name}: {split['written']} of {split['annotated']} written, "
                     f"{split['missing_count']} missing, {split['unreadable_count']} unreadable")
        lines += _first(split["missing"], "  missing: ")
        lines += _first([f"{u['name']}: {u['error']}" for u in split["unreadable"]], "  unreadable: ")
    lines += _first(summary["malformed"], "malformed: ")
    lines += [f"note: {note}" for note in summary["notes"]]
    lines.append(f"all names: {os.path.join(out, 'summary.json')}; config overrides:")
    lines.append(" ".join(f"{k} {shlex.quote(v)}" for k, v in summary["overrides"].items()))
    return "\n".join(lines)


def prepare(dataset: str, annotations: str, videos: str, out: str, split: int = 1, check: bool = False) -> dict:
    """Prepares ``dataset`` (a key of :data:`PREPARERS`) into ``out``; returns the summary.
    ``split``: the UCF101 / HMDB51 split (1, 2 or 3), not read by the others; ``check``: decode
    every found video and leave unreadable ones out."""
    if dataset not in PREPARERS:
        raise AnnotationError(f"unknown dataset {dataset!r}; one of {sorted(PREPARERS)}")
    videos, out = os.path.abspath(videos), os.path.abspath(out)
    parsed = PREPARERS[dataset](annotations, videos, split)
    if check:
        check_entries(parsed, videos)
    summary = summarize(dataset, parsed, config_overrides(parsed, videos, out))
    write_outputs(parsed, summary, out)
    return summary
