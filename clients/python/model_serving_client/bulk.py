"""Bulk jobs: a file of inputs → one output record per input, as JSON Lines (``.jsonl``) or CSV (``.csv``).

A bounded number of requests is in flight; small items are packed into one request up to the
service's limits (a pack the service refuses as too large is split in two and sent again); a
progress bar counts the items. Records are appended as their answers arrive, each with its key
(a line number, an id, a file name), so a run that was interrupted, started again with the same
output file, sends only the inputs without a record. An input the service rejects (422) gets a
record with ``error``; one that failed otherwise (the service unreachable after the retries) gets
none, and is sent again by the next run.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Sequence

from tqdm import tqdm

from model_serving_client._client import AsyncClient
from model_serving_client.errors import InvalidRequest, RequestTooLarge, ServingError

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")


@dataclass(frozen=True)
class Item:
    key: str  # what an output record is matched back to on resume
    value: Any


@dataclass
class Summary:
    items: int = 0  # inputs found
    skipped: int = 0  # already in the output (resumed)
    written: int = 0  # records written by this run (rejected inputs included)
    rejected: int = 0  # records with an error: inputs the service refused (422) or could not read
    failed: int = 0  # inputs left without a record (sent again by the next run)
    errors: list[str] = field(default_factory=list)  # the first few failures


@dataclass(frozen=True)
class Task:
    """How one kind of bulk job reads its input, packs it, calls the service and writes records."""

    name: str
    key: str  # the output column holding Item.key
    unit: str
    read: Callable[[Path], list[Item]]
    send: Callable[[AsyncClient, list[Item]], Awaitable[list[dict]]]
    pack_size: int  # items per request, at most (the service's limit when known)


# Readers


def text_lines(path: Path) -> list[Item]:
    """One text per line; blank lines are skipped (the service rejects empty texts), numbered from 1."""
    with open(path, encoding="utf-8") as f:
        return [Item(str(n), line.rstrip("\r\n")) for n, line in enumerate(f, 1) if line.strip()]


def tsv_texts(path: Path) -> list[Item]:
    """``id<TAB>text`` per line, or only the text (the line number is then its id)."""
    items = []
    for item in text_lines(path):
        key, tab, text = item.value.partition("\t")
        items.append(Item(key, text) if tab else Item(item.key, item.value))
    return items


def fits_files(folder: Path) -> list[Item]:
    """FITS files (gzip-compressed or not) under ``folder``, keyed by their path relative to it."""
    paths = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name.lower().endswith(FITS_SUFFIXES))
    return [Item(p.relative_to(folder).as_posix(), p) for p in paths]


# Senders: one request per pack; a record per item


async def send_ner(client: AsyncClient, items: list[Item]) -> list[dict]:
    answer = await client.ner([item.value for item in items])
    return [{"line": item.key, **result.model_dump()} for item, result in zip(items, answer.results)]


async def send_headline(client: AsyncClient, items: list[Item]) -> list[dict]:
    (item,) = items
    answer = await client.headline(item.value)
    best = answer.candidates[0]
    return [{"id": item.key, "headline": answer.headline, "score": best.score, "log_prob": best.log_prob, "truncated": answer.truncated}]


async def send_fits(client: AsyncClient, items: list[Item]) -> list[dict]:
    # The service names each answer by the upload's file name (without folders): numbering the
    # uploads tells files of the same name in different folders apart.
    uploads = [(f"{i}-{Path(item.value).name}", Path(item.value).read_bytes()) for i, item in enumerate(items)]
    answer = await client.spectra_files(uploads)
    return [
        {**result.model_dump(exclude_none=True), "file": items[int(result.file.split("-", 1)[0])].key}
        for result in answer.results
    ]


TASKS = {
    "ner": Task("ner", "line", "text", text_lines, send_ner, pack_size=64),  # the service's default limits
    "headline": Task("headline", "id", "abstract", tsv_texts, send_headline, pack_size=1),
    "spectra": Task("spectra", "file", "file", fits_files, send_fits, pack_size=8),
}


# Output


def _drop_partial_record(out: Path) -> None:
    """Cut a last line that a killed run left half-written (it is sent again)."""
    if not out.exists() or not out.stat().st_size:
        return
    data = out.read_bytes()
    if not data.endswith(b"\n"):
        out.write_bytes(data[: data.rfind(b"\n") + 1])


def _done_keys(out: Path, key: str) -> set[str]:
    if not out.exists() or not out.stat().st_size:
        return set()
    with open(out, encoding="utf-8", newline="") as f:
        if out.suffix.lower() == ".csv":
            return {row[key] for row in csv.DictReader(f) if row.get(key)}
        return {str(json.loads(line)[key]) for line in f if line.strip()}


class RecordWriter:
    """Appends records to JSON Lines, or to CSV (nested values as JSON; the header from the first record)."""

    def __init__(self, out: Path):
        self.out, self.csv = out, out.suffix.lower() == ".csv"
        self.columns: list[str] | None = None
        if self.csv and out.exists() and out.stat().st_size:
            with open(out, encoding="utf-8", newline="") as f:
                self.columns = next(csv.reader(f))
        out.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(out, "a", encoding="utf-8", newline="")

    def write(self, records: Iterable[dict]) -> int:
        n = 0
        for record in records:
            if self.csv:
                flat = {k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v for k, v in record.items()}
                if self.columns is None:
                    self.columns = list(flat) + ([] if "error" in flat else ["error"])
                    csv.writer(self.file).writerow(self.columns)
                csv.DictWriter(self.file, self.columns, extrasaction="ignore").writerow(flat)
            else:
                self.file.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
        self.file.flush()  # a record on disk is an input the next run need not send
        return n

    def close(self) -> None:
        self.file.close()


# The run


async def _send_splitting(task: Task, client: AsyncClient, items: list[Item]) -> list[dict]:
    """Send a pack; if the service refuses it as invalid or too large, send its halves, down to single
    items, whose refusal becomes their record's ``error``."""
    try:
        return await task.send(client, items)
    except (InvalidRequest, RequestTooLarge) as exc:
        if len(items) == 1:
            message = "; ".join(f"{f.field}: {f.message}" for f in exc.fields) or exc.message
            return [{task.key: items[0].key, "error": f"{exc.code}: {message}"}]
        half = len(items) // 2
        return await _send_splitting(task, client, items[:half]) + await _send_splitting(task, client, items[half:])


def _packs(items: Sequence[Item], size: int) -> list[list[Item]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


async def run_async(
    task_name: str,
    source: str | Path,
    out: str | Path,
    client: AsyncClient,
    *,
    concurrency: int = 4,
    pack_size: int | None = None,
    progress: bool = True,
) -> Summary:
    """Run a bulk job with ``client``; see :func:`run`."""
    task = TASKS[task_name]
    source, out = Path(source), Path(out)
    items = task.read(source)
    _drop_partial_record(out)
    done = _done_keys(out, task.key)
    todo = [item for item in items if item.key not in done]
    summary = Summary(items=len(items), skipped=len(items) - len(todo))
    writer = RecordWriter(out)
    bar = tqdm(total=len(items), initial=summary.skipped, unit=task.unit, desc=task.name, file=sys.stderr, disable=not progress)
    slots = asyncio.Semaphore(concurrency)

    async def one(pack: list[Item]) -> None:
        async with slots:
            try:
                records = await _send_splitting(task, client, pack)
            except ServingError as exc:
                summary.failed += len(pack)
                if len(summary.errors) < 5:
                    summary.errors.append(f"{type(exc).__name__}: {exc}")
                return
        summary.written += writer.write(records)
        summary.rejected += sum(1 for record in records if "error" in record)
        bar.update(len(pack))

    try:
        await asyncio.gather(*(one(pack) for pack in _packs(todo, pack_size or task.pack_size)))
    finally:
        bar.close()
        writer.close()
    return summary


def run(
    task_name: str,
    source: str | Path,
    out: str | Path,
    *,
    url: str | None = None,
    api_key: str | None = None,
    concurrency: int = 4,
    pack_size: int | None = None,
    timeout: float = 120.0,
    progress: bool = True,
) -> Summary:
    """A bulk job from a script: ``run("ner", "texts.txt", "entities.jsonl")``.

    ``task_name``: ``ner`` (a text file, one text per line), ``headline`` (a TSV of
    ``id<TAB>abstract``, or one abstract per line) or ``spectra`` (a directory of FITS files).
    ``concurrency`` requests are in flight at once; ``pack_size`` caps the items per request.
    """

    async def main() -> Summary:
        async with AsyncClient(url, api_key=api_key, timeout=timeout) as client:
            return await run_async(task_name, source, out, client, concurrency=concurrency, pack_size=pack_size, progress=progress)

    return asyncio.run(main())
