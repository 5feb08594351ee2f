"""``sfumato`` command line: thin layers of files and flags over the library, one module per subcommand.

- ``cloak`` (:mod:`.cloak`): cloak images against style mimicry;
- ``poison`` (:mod:`.poison`): Nightshade's poisoned image-caption pairs;
- ``evaluate`` (:mod:`.evaluate`): the harness that fine-tunes a mimic on clean and protected art.
"""

from __future__ import annotations

import argparse
import sys
import time

from .. import __version__
from . import cloak, evaluate, poison
from ._files import error

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sfumato", description="Protect artwork from AI style mimicry.")
    parser.add_argument("--version", action="version", version=f"sfumato {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (cloak, poison, evaluate):
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    if not getattr(args, "quiet", False):
        print(f"done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return code
