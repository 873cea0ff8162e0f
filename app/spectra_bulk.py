"""Classify a directory of FITS spectra into a CSV: ``python -m app.spectra_bulk DIR --out results.csv``.

In process, with the bundled model and no server: the answers ``POST /v1/spectra/fits`` gives,
one CSV row per spectrum. Through a running service, the Python client does the same job
(``python -m model_serving_client bulk spectra DIR out.csv``, docs/client.md). The CSV is
written file by file, so an interrupted run started again with the same ``--out`` skips
the files already in it (resumable). A file that cannot be read gets a row with its error.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

from tqdm import tqdm

from app.tasks.spectra.files import FITS_SUFFIXES

CLASS_COLUMNS = ("p_star", "p_galaxy", "p_qso", "p_unknown")
COLUMNS = ("file", "row", "targetid", "label", *CLASS_COLUMNS, "z", "z_err", "subtype", "subclass", "stellar_template", "warning", "warnings", "median_snr", "error")


def spectrum_files(folder: Path) -> list[Path]:
    """FITS files (gzip-compressed or not) under ``folder``, in a stable order."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name.lower().endswith(FITS_SUFFIXES))


def csv_row(file: str, answer: dict) -> dict:
    """One CSV row from an answer of ``POST /v1/spectra/fits`` (or an error for the whole file)."""
    row = {column: "" for column in COLUMNS}
    row.update(file=file, row="" if answer.get("row") is None else answer["row"], error=answer.get("error", ""))
    if "label" in answer:
        probabilities = answer["probabilities"]
        row.update({column: probabilities[name] for column, name in zip(CLASS_COLUMNS, ("STAR", "GALAXY", "QSO", "UNKNOWN"))})
        for key in ("targetid", "label", "z", "z_err", "subtype", "subclass", "stellar_template", "warning", "median_snr"):
            row[key] = "" if answer.get(key) is None else answer[key]
        row["warnings"] = " ".join(answer.get("warnings", []))
    return row


def _done_files(out: Path) -> set[str]:
    if not out.exists():
        return set()
    with open(out, newline="") as f:
        return {row["file"] for row in csv.DictReader(f)}


class InProcess:
    """The model loaded here, answering like the service (the same pipeline, bound to one version)."""

    def __init__(self, model_root: Path):
        from app.registry import ModelRegistry
        from app.settings import get_settings

        self.pipeline = ModelRegistry(model_root).load("spectra").pipeline
        self.limits = get_settings().spectra_limits()

    def classify(self, files: list[tuple[str, bytes]]) -> Iterator[tuple[str, list[dict]]]:
        from app.tasks.spectra.files import ByteBudget, SpectrumFileError
        from app.tasks.spectra.pipeline import file_entries

        failed, entries = {}, []
        for name, data in files:
            try:  # the service's limits, for each file on its own
                entries += file_entries(name, data, self.limits, ByteBudget(self.limits.max_file_bytes))
            except SpectrumFileError as exc:
                failed[name] = f"'{name}' {exc}"
        rows = [entry.flux for entry in entries if not isinstance(entry.flux, str)]
        results = self.pipeline.file_results(entries, self.pipeline.read(rows) if rows else [])  # one batch for the group
        for name, _ in files:
            yield name, [{"error": failed[name]}] if name in failed else [r.model_dump() for r in results if r.file == name]


def _groups(paths: list[Path], root: Path, size: int) -> Iterable[list[tuple[str, bytes]]]:
    for start in range(0, len(paths), size):
        yield [(str(p.relative_to(root)), p.read_bytes()) for p in paths[start : start + size]]


def run(folder: Path, out: Path, classifier, files_per_request: int = 16) -> dict:
    """Classify every file under ``folder`` not yet in ``out``; returns counts and the rate."""
    paths = spectrum_files(folder)
    done = _done_files(out)
    todo = [p for p in paths if str(p.relative_to(folder)) not in done]
    new_file = not out.exists()
    spectra = 0
    started = time.perf_counter()
    with open(out, "a", newline="") as f, tqdm(total=len(todo), unit="file", file=sys.stderr, desc="spectra") as bar:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new_file:
            writer.writeheader()
        for group in _groups(todo, folder, files_per_request):
            for name, answers in classifier.classify(group):
                writer.writerows(csv_row(name, a) for a in answers)
                spectra += sum("label" in a for a in answers)
                bar.update(1)
            f.flush()  # a file's rows are on disk before the next group starts: resumable
    seconds = time.perf_counter() - started
    return {
        "files": len(todo),
        "skipped_already_done": len(paths) - len(todo),
        "spectra": spectra,
        "seconds": round(seconds, 2),
        "spectra_per_second": round(spectra / seconds, 1) if seconds > 0 and spectra else 0.0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.spectra_bulk", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="searched recursively for .fits/.fit/.fts files, gzip-compressed or not")
    parser.add_argument("--out", type=Path, required=True, help="CSV to write; an existing one is continued")
    parser.add_argument("--model-root", type=Path, default=Path("models"), help="in-process model store")
    parser.add_argument("--files-per-request", type=int, default=16, help="files per model batch")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a directory")
    summary = run(args.folder, args.out, InProcess(args.model_root), args.files_per_request)
    print(
        f"{summary['spectra']} spectra from {summary['files']} files in {summary['seconds']} s "
        f"({summary['spectra_per_second']} spectra/s); {summary['skipped_already_done']} files already in {args.out}"
    )


if __name__ == "__main__":
    main()
