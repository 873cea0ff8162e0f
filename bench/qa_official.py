"""CMRC 2018 dev asked of ``/v1/qa`` over HTTP, scored by the official CMRC 2018 script.

``python -m bench.qa_official --official-script PATH [--data-dir ../shared/data/qa]``

Starts the service on loopback with the bundled models (or uses ``--url``), asks every dev
question of its own passage (one request each, ``--concurrency`` at a time, default settings:
the version's answer threshold), writes ``{question id: answer}`` — ``""`` where the service
withheld its answer — and runs the official script on that file. What it prints is to be read
against the ``CMRC 2018 dev, the answers /v1/qa gives`` line of ``python -m training qa evaluate``
(docs/qa.md).

The official script is not part of this repository (CC BY-SA 4.0): take
``baseline/cmrc2018_evaluate.py`` (v6, Python 3) from https://github.com/ymcui/cmrc2018. It
tokenises English runs with ``nltk.word_tokenize``, whose sentence splitter (the ``punkt``
model) is downloaded separately; without it the script is run with ``preserve_line=True``
(no sentence split first — the same tokens unless a run holds a sentence end), which the
output says.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from bench.serve import Server

# Runs the official script as ``__main__``; without punkt, its word_tokenize skips the sentence split.
_OFFICIAL_RUNNER = """
import functools, runpy, sys
import nltk
try:
    nltk.data.find("tokenizers/punkt_tab")
except LookupError:
    nltk.word_tokenize = functools.partial(nltk.word_tokenize, preserve_line=True)
    print("punkt not installed: word_tokenize(preserve_line=True)", file=sys.stderr)
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""


def first_questions(dataset: dict, limit: int | None = None) -> dict:
    """A SQuAD-style ``dataset`` cut to its first ``limit`` questions (so the official script's total is theirs)."""
    kept, data = 0, []
    for article in dataset["data"]:
        paragraphs = []
        for paragraph in article["paragraphs"]:
            qas = paragraph["qas"][: None if limit is None else max(limit - kept, 0)]
            kept += len(qas)
            if qas:
                paragraphs.append({**paragraph, "qas": qas})
        if paragraphs:
            data.append({**article, "paragraphs": paragraphs})
    return {**dataset, "data": data}


def questions_of(dataset: dict) -> list[dict]:
    """``{"id", "question", "context"}`` of each question of a SQuAD-style dataset, in its order."""
    return [
        {"id": qa["id"], "question": qa["question"], "context": paragraph["context"]}
        for article in dataset["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]


async def ask_all(url: str, questions: list[dict], concurrency: int, headers: dict[str, str]) -> dict[str, str]:
    """The service's answer to each question (``""`` when withheld); any non-200 stops the run."""
    limit = asyncio.Semaphore(concurrency)
    answers: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:

        async def ask(question: dict) -> None:
            async with limit:
                response = await client.post(
                    "/v1/qa", json={"question": question["question"], "passages": [question["context"]]}
                )
            if response.status_code != 200:
                raise RuntimeError(f"question {question['id']}: HTTP {response.status_code} {response.text[:200]}")
            answers[question["id"]] = response.json()["answer"] or ""

        await asyncio.gather(*(ask(q) for q in questions))
    return {q["id"]: answers[q["id"]] for q in questions}


def official_scores(script: Path, dataset: Path, predictions: Path) -> dict:
    """What the official script prints (one JSON line: AVERAGE, F1, EM, TOTAL, SKIP, FILE)."""
    finished = subprocess.run(
        [sys.executable, "-c", _OFFICIAL_RUNNER, str(script), str(dataset), str(predictions)],
        capture_output=True, text=True, check=True,
    )
    if finished.stderr.strip():
        print(finished.stderr.strip(), file=sys.stderr)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-script", type=Path, required=True, help="cmrc2018_evaluate.py (v6, Python 3)")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/qa"))
    parser.add_argument("--limit", type=int, help="only the first N dev questions")
    parser.add_argument("--url", help="a running service (default: start one on loopback with the bundled models)")
    parser.add_argument("--api-key", help="sent as a bearer token")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--predictions", type=Path, help="also keep the answers here (JSON)")
    args = parser.parse_args(argv)

    dataset = first_questions(json.loads((args.data_dir / "cmrc2018" / "cmrc2018_dev.json").read_text("utf-8")), args.limit)
    questions = questions_of(dataset)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    if args.url:
        answers = asyncio.run(ask_all(args.url, questions, args.concurrency, headers))
    else:
        with Server({}) as server:
            answers = asyncio.run(ask_all(server.url, questions, args.concurrency, server.headers))
    with tempfile.TemporaryDirectory() as scratch:
        dataset_file = Path(scratch) / "dev.json"
        dataset_file.write_text(json.dumps(dataset, ensure_ascii=False), encoding="utf-8")
        predictions = args.predictions or Path(scratch) / "predictions.json"
        predictions.write_text(json.dumps(answers, ensure_ascii=False), encoding="utf-8")
        scores = official_scores(args.official_script, dataset_file, predictions)
    withheld = sum(not a for a in answers.values())
    print(f"/v1/qa over HTTP, {len(answers)} CMRC 2018 dev questions ({withheld} withheld), official script: "
          f"EM {float(scores['EM']):.2f}  F1 {float(scores['F1']):.2f}")
    print(json.dumps({"questions": len(answers), "withheld": withheld, "official": scores}, ensure_ascii=False))


if __name__ == "__main__":
    main()
