"""Dataset formats: parse annotation files into :class:`VideoRecord` lists. No decoding here.

Formats (each returns ``list[VideoRecord]``; class names come from a file or are derived):

- video list (Kinetics style): one ``path<SEP>label`` per line, path relative to ``root``;
- frame-folder list (SSv1 style): ``folder<SEP>num_frames<SEP>label``;
- folder per class: ``split_dir/<class_name>/<video>``, classes sorted by name;
- Something-Something V2 JSON: a labels file ``{template: index}`` and a list
  ``[{"id", "label", "template", "placeholders"}, ...]``.

Paths may contain the separator: fields are split from the right (a " " separator means any
run of spaces or tabs). Blank lines and lines
starting with ``#`` are skipped. Every parse error names ``file:line`` (or the JSON entry).

A list's relative paths stay under the root (:func:`listed_path`): ``../../etc/passwd`` is
refused, an absolute path is taken as written. Given ``num_classes``, a label outside
``0..num_classes-1`` is refused at its line.
"""
import json
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ..config import ConfigError
from ..utils.io import path_manager


class AnnotationError(ValueError):
    """An annotation file that cannot be parsed; the message names the file and line or entry."""


@dataclass(frozen=True)
class VideoRecord:
    """One video: where it is, its label, an id for reports, and (frame folders) its length."""

    path: str
    label: int
    video_id: str
    num_frames: Optional[int] = None


def join_root(root: str, path: str) -> str:
    """``path`` under ``root``; an absolute ``path`` or an empty ``root`` leaves it as is."""
    return os.path.join(root, path) if root else path


def listed_path(root: str, path: str, where: str) -> str:
    """``path`` of a list line under ``root``. A relative path may not climb out of ``root``
    (``..``): a list is data, and data should not reach other files by accident; an absolute
    path (or a URL) is a deliberate choice and is taken as written."""
    if os.path.isabs(path) or "://" in path:
        return path
    if os.path.normpath(path).split(os.sep)[0] == os.pardir:
        raise AnnotationError(f"{where}: {path!r} leaves the root {root or '(the working folder)'}: relative "
                              "paths must stay under DATA.ROOT; write an absolute path to use a file elsewhere")
    return join_root(root, path)


def annotation_lines(list_path: str) -> List[Tuple[int, str]]:
    """(1-based line number, stripped text) of every non-blank, non-comment line."""
    if not path_manager.isfile(list_path):
        raise AnnotationError(f"annotation file not found: {list_path}")
    with path_manager.open(list_path, "r") as f:
        numbered = [(number, line.strip()) for number, line in enumerate(f, start=1)]
    return [(n, text) for n, text in numbered if text and not text.startswith("#")]


def _split_fields(text: str, separator: str, count: int, where: str) -> List[str]:
    """The last ``count - 1`` separators split ``text``; " " stands for any run of whitespace."""
    fields = [field.strip() for field in text.rsplit(None if separator == " " else separator, count - 1)]
    if len(fields) != count or not all(fields):
        raise AnnotationError(f"{where}: expected {count} fields separated by {separator!r}, got {text!r}")
    return fields


def _parse_int(value: str, what: str, where: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise AnnotationError(f"{where}: {what} must be an integer, got {value!r}") from None
    if number < minimum:
        raise AnnotationError(f"{where}: {what} must be >= {minimum}, got {number}")
    return number


def _label(value: str, where: str, num_classes: Optional[int]) -> int:
    """A list's label: an integer >= 0, and below ``num_classes`` when given."""
    label = _parse_int(value, "label", where, 0)
    if num_classes is not None and label >= num_classes:
        raise AnnotationError(f"{where}: label {label} is out of range for MODEL.NUM_CLASSES={num_classes} "
                              f"(labels are 0..{num_classes - 1})")
    return label


def _video_id(path: str) -> str:
    """The path without its extension, e.g. ``abseiling/xyz.mp4`` -> ``abseiling/xyz``."""
    return os.path.splitext(path)[0]


def read_video_list(list_path: str, root: str = "", separator: str = " ",
                    num_classes: Optional[int] = None) -> List[VideoRecord]:
    """Parses ``path<SEP>label`` lines; paths are joined to ``root`` (:func:`listed_path`)."""
    records = []
    for number, text in annotation_lines(list_path):
        where = f"{list_path}:{number}"
        path, label = _split_fields(text, separator, 2, where)
        records.append(VideoRecord(listed_path(root, path, where), _label(label, where, num_classes), _video_id(path)))
    return records


def read_frame_list(list_path: str, root: str = "", separator: str = " ",
                    num_classes: Optional[int] = None) -> List[VideoRecord]:
    """Parses ``folder<SEP>num_frames<SEP>label`` lines (a folder of extracted frames each)."""
    records = []
    for number, text in annotation_lines(list_path):
        where = f"{list_path}:{number}"
        folder, num_frames, label = _split_fields(text, separator, 3, where)
        records.append(VideoRecord(listed_path(root, folder, where), _label(label, where, num_classes),
                                   folder.rstrip("/"), _parse_int(num_frames, "num_frames", where, 1)))
    return records


def scan_class_folders(split_dir: str, extensions: Sequence[str],
                       class_names: Optional[Sequence[str]] = None) -> Tuple[List[VideoRecord], List[str]]:
    """Videos under ``split_dir/<class_name>/`` whose names end with one of ``extensions``.

    Labels index ``class_names`` when given (every folder must be one of them: a split may
    lack classes), else the sorted folder names. Returns (records, class names).
    """
    if not os.path.isdir(split_dir):
        raise AnnotationError(f"class folder root not found: {split_dir}")
    folders = class_folders(split_dir)
    names = list(class_names) if class_names is not None else folders
    unknown = sorted(set(folders) - set(names))
    if unknown:
        raise AnnotationError(f"{split_dir}: class folders {unknown[:5]} are not among the {len(names)} class names")
    suffixes = tuple(ext.lower() for ext in extensions)
    label_of = {name: label for label, name in enumerate(names)}
    records = []
    for name in folders:
        for file_name in sorted(os.listdir(os.path.join(split_dir, name))):
            if file_name.lower().endswith(suffixes):
                records.append(VideoRecord(os.path.join(split_dir, name, file_name), label_of[name],
                                           _video_id(f"{name}/{file_name}")))
    return records, names


def class_folders(split_dir: str) -> List[str]:
    """Sorted names of the sub-folders of ``split_dir`` (raises when there are none)."""
    folders = sorted(e.name for e in os.scandir(split_dir) if e.is_dir()) if os.path.isdir(split_dir) else []
    if not folders:
        raise AnnotationError(f"{split_dir}: no class folders inside")
    return folders


def _load_json(path: str):
    if not path_manager.isfile(path):
        raise AnnotationError(f"annotation file not found: {path}")
    with path_manager.open(path, "r") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise AnnotationError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


def read_ssv2_labels(labels_json: str) -> List[str]:
    """Class names in label order from the SSv2 labels file ``{template: "index"}``."""
    mapping = _load_json(labels_json)
    if not isinstance(mapping, dict) or not mapping:
        raise AnnotationError(f"{labels_json}: expected a non-empty JSON object {{template: index}}")
    by_index = {}
    for name, index in mapping.items():
        label = _parse_int(str(index), f"index of {name!r}", labels_json, 0)
        if label in by_index:
            raise AnnotationError(f"{labels_json}: index {label} used by {by_index[label]!r} and {name!r}")
        by_index[label] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise AnnotationError(f"{labels_json}: indices must be 0..{len(by_index) - 1} without gaps")
    return [by_index[i] for i in range(len(by_index))]


def ssv2_template_name(template: str) -> str:
    """``"Putting [something] on [something]"`` -> ``"Putting something on something"``."""
    return template.replace("[", "").replace("]", "")


def read_ssv2_list(list_json: str, class_names: Sequence[str], root: str = "",
                   suffix: str = ".webm") -> List[VideoRecord]:
    """Parses the SSv2 train/validation JSON; each video is ``root/<id><suffix>``."""
    entries = _load_json(list_json)
    if not isinstance(entries, list):
        raise AnnotationError(f"{list_json}: expected a JSON list of {{id, template, ...}} entries")
    label_of = {name: label for label, name in enumerate(class_names)}
    records = []
    for position, entry in enumerate(entries):
        where = f"{list_json}: entry {position}"
        if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
            raise AnnotationError(f"{where}: needs keys 'id' and 'template', got {entry!r}")
        name = ssv2_template_name(entry["template"])
        if name not in label_of:
            raise AnnotationError(f"{where}: template {name!r} is not in the labels file")
        video_id = str(entry["id"])
        records.append(VideoRecord(listed_path(root, video_id + suffix, where), label_of[name], video_id))
    return records


def read_class_names(path: str) -> List[str]:
    """Class names in label order: a text file (one per line) or an SSv2-style JSON map."""
    if path.endswith(".json"):
        return read_ssv2_labels(path)
    names = [text for _, text in annotation_lines(path)]
    if len(set(names)) != len(names):
        raise AnnotationError(f"{path}: class names repeat")
    return names


def check_labels(records: Sequence[VideoRecord], class_names: Sequence[str], source: str) -> None:
    """Raises AnnotationError naming ``source`` when a label has no class name."""
    bad = [r for r in records if r.label >= len(class_names)]
    if bad:
        raise AnnotationError(f"{source}: label {bad[0].label} of {bad[0].video_id!r} is out of range "
                              f"for {len(class_names)} class names ({len(bad)} such videos)")


def derived_class_names(num_classes: int) -> List[str]:
    """Labels as names (``"0"``, ``"1"``, ...) when no class-name file is given."""
    return [str(label) for label in range(num_classes)]


def class_names_of(cfg) -> List[str]:
    """The class names of ``cfg``'s model: DATA.CLASS_NAMES when given, else "0", "1", ... up to
    MODEL.NUM_CLASSES; ConfigError when the file names another number of classes."""
    names = read_class_names(cfg.DATA.CLASS_NAMES) if cfg.DATA.CLASS_NAMES else \
        derived_class_names(cfg.MODEL.NUM_CLASSES)
    if len(names) != cfg.MODEL.NUM_CLASSES:
        raise ConfigError(f"DATA.CLASS_NAMES: {cfg.DATA.CLASS_NAMES} lists {len(names)} classes, "
                          f"MODEL.NUM_CLASSES is {cfg.MODEL.NUM_CLASSES}")
    return names
