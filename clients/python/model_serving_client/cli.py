"""The command line: ``python -m model_serving_client ner "李鹏在北京"``,
``python -m model_serving_client bulk ner texts.txt entities.jsonl``; ``--help`` on each command."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from model_serving_client import bulk
from model_serving_client._client import Client
from model_serving_client._core import DEFAULT_URL, KEY_VARIABLE, URL_VARIABLE
from model_serving_client.errors import APIError, ServingError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model_serving_client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help=f"the service (default: ${URL_VARIABLE}, else {DEFAULT_URL})")
    parser.add_argument("--api-key", default=None, help=f"default: ${KEY_VARIABLE}")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per attempt")
    commands = parser.add_subparsers(dest="command", required=True)
    # Which model answers a prediction (default: the task's own, at the version the service serves).
    choice = argparse.ArgumentParser(add_help=False)
    choice.add_argument("--model", default=None, help="a model of the task by name, e.g. ner-fine")
    choice.add_argument("--version", type=int, default=None, help="pin a version of the model")
    choice.add_argument("--version-label", default=None, help="a labelled version, e.g. stable")

    p = commands.add_parser("ner", parents=[choice], help="names of people, places and organisations in a text")
    p.add_argument("text", nargs="+", help="one or more texts")
    p.add_argument("--min-probability", type=float, default=None)
    p = commands.add_parser("qa", parents=[choice], help="answer a question from passages")
    p.add_argument("question")
    p.add_argument("passages", nargs="+")
    p.add_argument("--candidates", type=int, default=None)
    p.add_argument("--min-probability", type=float, default=None)
    p.add_argument(
        "--aggregate", choices=["max", "sum"], default=None,
        help="sum: rank an answer by every passage that holds it (many short passages)",
    )
    p = commands.add_parser("headline", parents=[choice], help="a headline for an abstract")
    p.add_argument("text")
    p.add_argument("--candidates", type=int, default=None)
    p = commands.add_parser("spectra", parents=[choice], help="classify the spectra in FITS files")
    p.add_argument("files", nargs="+")
    commands.add_parser("models", help="the loaded models and their figures")
    p = commands.add_parser("reload", help="switch a task to another model version (admin key)")
    p.add_argument("task")
    p.add_argument("--version", type=int, default=None)

    p = commands.add_parser("bulk", help="a whole file: one record per input, resumable, with a progress bar")
    p.add_argument("task", choices=sorted(bulk.TASKS))
    p.add_argument("source", help="ner: text file, one text per line; headline: TSV of id<TAB>abstract; spectra: folder of FITS files")
    p.add_argument("out", help="output, .jsonl or .csv; an existing one is resumed")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    p.add_argument("--pack-size", type=int, default=None, help="most items per request (default: the service's limits)")
    p.add_argument("--no-progress", action="store_true")
    return parser


def _call(client: Client, args: argparse.Namespace):
    if args.command in ("models", "reload"):
        return client.models() if args.command == "models" else client.reload(args.task, args.version)
    chosen = {"model": args.model, "version": args.version, "version_label": args.version_label}
    if args.command == "ner":
        texts = args.text[0] if len(args.text) == 1 else args.text
        return client.ner(texts, min_probability=args.min_probability, **chosen)
    if args.command == "qa":
        return client.qa(
            args.question, args.passages,
            num_candidates=args.candidates, min_probability=args.min_probability, aggregate=args.aggregate, **chosen,
        )
    if args.command == "headline":
        return client.headline(args.text, num_candidates=args.candidates, **chosen)
    return client.spectra_files(args.files, **chosen)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "bulk":
            summary = bulk.run(
                args.task, args.source, args.out, url=args.url, api_key=args.api_key, concurrency=args.concurrency,
                pack_size=args.pack_size, timeout=args.timeout, progress=not args.no_progress,
            )
            print(json.dumps(summary.__dict__, ensure_ascii=False), file=sys.stderr)
            if summary.failed:
                print(f"{summary.failed} inputs failed; run the same command again to send them", file=sys.stderr)
            return 1 if summary.failed else 0
        with Client(args.url, api_key=args.api_key, timeout=args.timeout) as client:
            answer = _call(client, args)
    except APIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for field in exc.fields:
            print(f"  {field.field}: {field.message}", file=sys.stderr)
        return 2
    except (ServingError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(answer.model_dump_json(indent=2))
    return 0
