#!/usr/bin/env python3
"""Regenerates the zoo table of model_zoo/MODEL_ZOO.md from cakes_video/zoo/manifest.yaml:
``tools/zoo_docs.py [--check]`` (--check: exit status 1 when the file is out of date)."""
import argparse
import os
import sys

from cakes_video.zoo.docs import with_zoo_table
from cakes_video.zoo.manifest import load_manifest

MODEL_ZOO_MD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "model_zoo", "MODEL_ZOO.md")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check that the file is up to date")
    args = parser.parse_args(argv)
    with open(MODEL_ZOO_MD) as f:
        text = f.read()
    updated = with_zoo_table(text, load_manifest())
    if args.check:
        print("up to date" if updated == text else f"{MODEL_ZOO_MD} is out of date: run tools/zoo_docs.py")
        return int(updated != text)
    with open(MODEL_ZOO_MD, "w") as f:
        f.write(updated)
    print(f"wrote {MODEL_ZOO_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
