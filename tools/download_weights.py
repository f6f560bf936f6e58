#!/usr/bin/env python3
"""Fetches and verifies zoo weights into the cache, for machines that go offline later:
``tools/download_weights.py NAME [NAME ...] | --all``. Prints each model's verified file, or
how to download it by hand (the official CAKES files); exit status 1 when any could not be
had (each named, with why and how to get it)."""
import argparse
import sys

from cakes_video.zoo import list_models, prefetch
from cakes_video.zoo.download import cache_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    names = parser.add_mutually_exclusive_group(required=True)
    names.add_argument("names", nargs="*", default=[], metavar="NAME", help="zoo model names")
    names.add_argument("--all", action="store_true", help="every model of the zoo")
    args = parser.parse_args(argv)
    found = prefetch(list_models() if args.all else args.names)
    for name, result in found.items():
        print(f"{name}: {result}")
    failed = [name for name, result in found.items() if result.startswith("error:")]
    manual = [name for name, result in found.items() if result.startswith("manual:")]
    print(f"{len(found) - len(failed) - len(manual)} of {len(found)} verified in {cache_dir()} (or inside the "
          f"package); {len(manual)} to download by hand; {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
