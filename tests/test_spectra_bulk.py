"""``python -m app.spectra_bulk``: a directory of FITS files → one CSV row per spectrum, resumable."""

from __future__ import annotations

import csv
import gzip

import pytest

from app import spectra_bulk
from tests.fixtures.spectrum_files import write_desi_coadd, write_lamost_image, write_sdss_spec_lite

pytestmark = pytest.mark.slow  # the slow tier (`make test-slow`): bulk runs over files


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "spectra"
    (root / "night2").mkdir(parents=True)
    lamost = write_lamost_image(tmp_path / "lamost.fits")
    (root / "lamost.fits.gz").write_bytes(gzip.compress(lamost.read_bytes()))
    write_sdss_spec_lite(root / "night2" / "spec.fits")
    write_desi_coadd(root / "coadd.fits", nspec=2)
    (root / "broken.fits").write_bytes(b"SIMPLE  =                    T" + bytes(100))
    (root / "notes.txt").write_text("not a spectrum file: ignored")
    return root


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_in_process_writes_a_row_per_spectrum_and_resumes(folder, tmp_path, tiny_spectra_store, capsys):
    out = tmp_path / "results.csv"
    spectra_bulk.main([str(folder), "--out", str(out), "--model-root", str(tiny_spectra_store), "--files-per-request", "2"])
    rows = _rows(out)
    assert [(r["file"], r["row"]) for r in rows] == [
        ("broken.fits", ""), ("coadd.fits", "0"), ("coadd.fits", "1"), ("lamost.fits.gz", ""), ("night2/spec.fits", ""),
    ]
    broken, *good = rows
    assert "'broken.fits'" in broken["error"] and broken["label"] == ""
    for row in good:
        assert row["label"] in {"STAR", "GALAXY", "QSO", "UNKNOWN"} and row["error"] == ""
        assert abs(sum(float(row[c]) for c in spectra_bulk.CLASS_COLUMNS) - 1) < 1e-3
    assert good[0]["targetid"] == "39633345008634465"
    assert "4 spectra from 4 files" in capsys.readouterr().out

    spectra_bulk.main([str(folder), "--out", str(out), "--model-root", str(tiny_spectra_store)])
    assert len(_rows(out)) == 5  # nothing redone
    assert "0 spectra from 0 files" in (printed := capsys.readouterr().out) and "4 files already in" in printed


def test_an_interrupted_run_continues_where_it_stopped(folder, tmp_path, tiny_spectra_store):
    out = tmp_path / "results.csv"
    classifier = spectra_bulk.InProcess(tiny_spectra_store)
    spectra_bulk.run(folder, out, classifier, files_per_request=2)
    complete = _rows(out)
    with open(out, "w", newline="") as f:  # as if stopped after the first two files
        writer = csv.DictWriter(f, fieldnames=spectra_bulk.COLUMNS)
        writer.writeheader()
        writer.writerows(r for r in complete if r["file"] in {"broken.fits", "coadd.fits"})
    summary = spectra_bulk.run(folder, out, classifier, files_per_request=2)
    assert summary["files"] == 2 and summary["skipped_already_done"] == 2 and summary["spectra"] == 2
    assert sorted((r["file"], r["row"]) for r in _rows(out)) == sorted((r["file"], r["row"]) for r in complete)
