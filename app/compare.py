"""Replay requests against two versions of a model and report how their answers differ.

    python -m app.compare --model ner --versions 5 6 requests.jsonl                  # in process
    python -m app.compare --model ner --versions 5 6 requests.jsonl --url URL --api-key KEY

``requests.jsonl`` holds one request body per line for the model's task endpoint (as a caller
would send it; ``model`` and ``version`` are set here). In process, the service is built here on
``--model-root`` with every version loaded and called over httpx's ASGI transport; with ``--url``
a running service answers (both versions must be loaded there: ``POST .../versions/N/load``).
Either way each answer comes through the same routes and pipelines as a caller's.

Per task: NER, entity F1 of the second version against the first and the entities that changed;
QA, answer agreement, CMRC F1 between the answers and the mean probability shift; headlines,
ROUGE-L between the two; spectra, label and subtype agreement and |Δz|; and each version's
latency. The report is one JSON object on stdout; ``--out`` also writes every request whose
answers differ.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import httpx
from tqdm import tqdm

from app.tasks.text_scores import cmrc_f1, rouge_l

ENDPOINTS = {"ner": "/v1/ner", "qa": "/v1/qa", "headline": "/v1/headline", "spectra": "/v1/spectra"}


def _ner_results(answer: dict) -> list[dict]:
    return answer["results"] if "results" in answer else [answer]


def compare_ner(first: dict, second: dict) -> tuple[dict, bool]:
    """Entities as (type, start, end): how many agree, and which were dropped or added."""
    a = {(e["type"], e["start"], e["end"], e["text"]) for r in _ner_results(first) for e in r["entities"]}
    b = {(e["type"], e["start"], e["end"], e["text"]) for r in _ner_results(second) for e in r["entities"]}
    counts = {"first": len(a), "second": len(b), "common": len(a & b)}
    changed = {"dropped": sorted(a - b), "added": sorted(b - a)}
    return {**counts, **changed}, a != b


def compare_qa(first: dict, second: dict) -> tuple[dict, bool]:
    one, two = first.get("answer") or "", second.get("answer") or ""
    row = {
        "first": one, "second": two, "agree": one == two, "f1": cmrc_f1(two, [one]) if one and two else float(one == two),
        "probability_shift": abs((second.get("probability") or 0.0) - (first.get("probability") or 0.0)),
    }
    return row, one != two


def compare_headline(first: dict, second: dict) -> tuple[dict, bool]:
    one, two = first["headline"], second["headline"]
    return {"first": one, "second": two, "rouge_l": rouge_l(two, one)}, one != two


def compare_spectra(first: dict, second: dict) -> tuple[dict, bool]:
    pairs = list(zip(first["results"], second["results"]))
    row = {
        "labels": [(a["label"], b["label"]) for a, b in pairs],
        "label_agreement": sum(a["label"] == b["label"] for a, b in pairs),
        "subtype_agreement": sum(a.get("subtype") == b.get("subtype") for a, b in pairs),
        "abs_dz": [abs(a["z"] - b["z"]) for a, b in pairs if a.get("z") is not None and b.get("z") is not None],
        "spectra": len(pairs),
    }
    return row, row["label_agreement"] < len(pairs) or row["subtype_agreement"] < len(pairs)


COMPARISONS: dict[str, Callable[[dict, dict], tuple[dict, bool]]] = {
    "ner": compare_ner, "qa": compare_qa, "headline": compare_headline, "spectra": compare_spectra,
}


def summarise(task: str, rows: list[dict]) -> dict[str, Any]:
    """The task's agreement figures over every compared request."""
    if task == "ner":
        common, first, second = (sum(r[k] for r in rows) for k in ("common", "first", "second"))
        f1 = 2 * common / (first + second) if first + second else 1.0
        return {"entity_f1_second_vs_first": round(f1, 4), "entities_first": first, "entities_second": second}
    if task == "qa":
        return {
            "answer_agreement": round(statistics.fmean(r["agree"] for r in rows), 4),
            "answer_f1": round(statistics.fmean(r["f1"] for r in rows), 4),
            "mean_probability_shift": round(statistics.fmean(r["probability_shift"] for r in rows), 4),
        }
    if task == "headline":
        return {"rouge_l_between": round(statistics.fmean(r["rouge_l"] for r in rows), 4)}
    spectra = sum(r["spectra"] for r in rows)
    dz = [d for r in rows for d in r["abs_dz"]]
    return {
        "spectra": spectra,
        "label_agreement": round(sum(r["label_agreement"] for r in rows) / max(spectra, 1), 4),
        "subtype_agreement": round(sum(r["subtype_agreement"] for r in rows) / max(spectra, 1), 4),
        "median_abs_dz": round(statistics.median(dz), 6) if dz else None,
        "max_abs_dz": round(max(dz), 6) if dz else None,
    }


def _latency(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    quantile = lambda q: round(1000 * ordered[min(int(q * len(ordered)), len(ordered) - 1)], 2)  # noqa: E731
    return {"mean_ms": round(1000 * statistics.fmean(ordered), 2), "p50_ms": quantile(0.5), "p95_ms": quantile(0.95)}


async def replay(client: httpx.AsyncClient, task: str, model: str, versions: tuple[int, int], bodies: list[dict]) -> dict:
    """Each body answered by both versions, one after the other; the comparison report."""
    latencies: dict[int, list[float]] = {v: [] for v in versions}
    rows, changed, failures = [], [], []
    for index, body in enumerate(tqdm(bodies, desc=f"{model} {versions[0]} vs {versions[1]}", unit="request")):
        answers = []
        for version in versions:
            started = time.perf_counter()
            response = await client.post(ENDPOINTS[task], json={**body, "model": model, "version": version})
            latencies[version].append(time.perf_counter() - started)
            answers.append(response)
        if any(r.status_code != 200 for r in answers):
            failures.append({"line": index + 1, "status": [r.status_code for r in answers], "error": [r.json().get("error") for r in answers]})
            continue
        row, differs = COMPARISONS[task](answers[0].json(), answers[1].json())
        rows.append(row)
        if differs:
            changed.append({"line": index + 1, **row})
    return {
        "task": task,
        "model": model,
        "versions": list(versions),
        "requests": len(bodies),
        "compared": len(rows),
        "failed": len(failures),
        "changed": len(changed),
        **(summarise(task, rows) if rows else {}),
        "latency": {str(v): _latency(s) for v, s in latencies.items()},
        "changed_requests": changed,
        "failures": failures,
    }


async def _in_process(model_root: Path, run: Callable[[httpx.AsyncClient, str], Any]) -> Any:
    """``run(client, task_of)`` against the service built here with every version loaded."""
    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings(model_root=model_root, serve_versions="all"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://compare", timeout=120) as client:
            return await run(client, app.state.registry.discover())


async def compare(args: argparse.Namespace) -> dict:
    bodies = [json.loads(line) for line in Path(args.requests).read_text(encoding="utf-8").splitlines() if line.strip()]
    versions = tuple(args.versions)

    async def run(client: httpx.AsyncClient, tasks: dict[str, str]) -> dict:
        if args.model not in tasks:
            raise SystemExit(f"no model {args.model!r} (models: {', '.join(sorted(tasks))})")
        return await replay(client, tasks[args.model], args.model, versions, bodies)

    if args.url is None:
        return await _in_process(Path(args.model_root), run)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=120) as client:
        catalogue = (await client.get("/v1/models")).raise_for_status().json()
        return await run(client, {m["model"]: m["task"] for m in catalogue["served"]})


def main(argv: list[str] | None = None) -> None:
    from app.settings import REPO_ROOT

    parser = argparse.ArgumentParser(prog="python -m app.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("requests", help="JSON lines: one request body per line for the model's task endpoint")
    parser.add_argument("--model", required=True, help="the model to compare (e.g. ner, ner-fine)")
    parser.add_argument("--versions", type=int, nargs=2, required=True, metavar=("FIRST", "SECOND"))
    parser.add_argument("--url", help="a running service (default: build one here on --model-root)")
    parser.add_argument(
        "--api-key", default=os.environ.get("MODEL_SERVING_API_KEY"), help="a key with `predict` (with --url; default: $MODEL_SERVING_API_KEY)"
    )
    parser.add_argument("--model-root", default=str(REPO_ROOT / "models"), help="model store (in process)")
    parser.add_argument("--out", help="also write the full report, every changed request included, here")
    args = parser.parse_args(argv)
    report = asyncio.run(compare(args))
    if args.out:
        Path(args.out).write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    summary = {k: v for k, v in report.items() if k not in ("changed_requests", "failures")}
    print(json.dumps(summary, ensure_ascii=False))
    for row in report["changed_requests"][:10]:
        print(json.dumps(row, ensure_ascii=False), file=sys.stderr)


if __name__ == "__main__":
    main()
