"""``python -m training <task> train|evaluate|export [options]``."""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TASKS = ("ner", "spectra", "qa", "headline")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    tasks = parser.add_subparsers(dest="task", required=True)
    for name in TASKS:
        module = importlib.import_module(f"training.tasks.{name}")
        module.configure_parser(tasks.add_parser(name, help=module.__doc__.strip().splitlines()[0]))
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["python", "-m", "training", *argv])
    args.func(args)


if __name__ == "__main__":
    main()
