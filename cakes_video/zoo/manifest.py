"""The zoo manifest (``manifest.yaml`` beside this file): one :class:`ZooEntry` per model,
checked when read so that a bad entry fails naming the entry and the field."""
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import yaml

from ..config import find_config_file

MANIFEST_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "manifest.yaml")
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
# weights.format -> the weights fields that format needs.
WEIGHT_FORMATS = {
    "torchvision": ("arch", "url", "file_name", "sha256"),
    "official-cakes": ("url", "file_name", "manual_download"),
    "project": ("packaged", "file_name", "sha256", "size_bytes"),
}
REQUIRED = ("config", "dataset", "classes", "input", "protocol", "accuracy", "params", "gflops_per_view",
            "views", "weights", "source", "licence")


class ManifestError(ValueError):
    """An entry of the zoo manifest that is incomplete or refers to nothing; names entry and field."""


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo; the fields are the manifest's (its header documents them)."""

    name: str
    config: str
    dataset: str
    classes: str
    input: Dict
    protocol: Dict
    accuracy: Dict
    params: int
    gflops_per_view: float
    views: int
    weights: Dict
    source: str
    licence: str
    config_overrides: List = field(default_factory=list)

    @property
    def test_overrides(self) -> List:
        """KEY VALUE pairs that make the config test with the entry's protocol."""
        return list(self.protocol.get("test_overrides", []))

    @property
    def packaged_weights(self) -> Optional[str]:
        """The weights file inside the package (format "project"), else None."""
        packaged = self.weights.get("packaged")
        return os.path.join(WEIGHTS_DIR, packaged) if packaged else None


def load_manifest(path: str = MANIFEST_FILE) -> Dict[str, ZooEntry]:
    """Name -> entry, in the file's order; ManifestError for an entry that does not check."""
    with open(path) as f:
        data = yaml.safe_load(f)
    return {name: _entry(name, fields) for name, fields in data.items()}


def _entry(name: str, fields: Dict) -> ZooEntry:
    if not name.isidentifier():  # hubconf.py makes one function of each name
        raise ManifestError(f"zoo entry {name!r}: a name must be a Python identifier")
    missing = [key for key in REQUIRED if key not in fields]
    unknown = sorted(set(fields) - set(REQUIRED) - {"config_overrides"})
    if missing or unknown:
        raise ManifestError(f"zoo entry {name!r}: missing {missing}, unknown {unknown}")
    for key in ("config", "classes"):
        if find_config_file(fields[key]) is None:
            raise ManifestError(f"zoo entry {name!r}: {key} {fields[key]!r} is not a packaged file")
    weights = fields["weights"]
    fmt = weights.get("format")
    if fmt not in WEIGHT_FORMATS:
        raise ManifestError(f"zoo entry {name!r}: weights.format {fmt!r} is not one of {sorted(WEIGHT_FORMATS)}")
    absent = [key for key in WEIGHT_FORMATS[fmt] if key not in weights]
    if absent:
        raise ManifestError(f"zoo entry {name!r}: weights of format {fmt!r} need {absent}")
    digest = weights.get("sha256")
    if not (digest is None and weights.get("manual_download")) and not re.fullmatch(r"[0-9a-f]{8,64}", str(digest)):
        raise ManifestError(f"zoo entry {name!r}: weights.sha256 {digest!r} is not 8 to 64 hex digits")
    return ZooEntry(name=name, **fields)
