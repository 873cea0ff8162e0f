"""Real observed spectra with labels.

For evaluation and model selection only (never training):

- ``real_validation/``: 323 BOSS/eBOSS and DESI quasars, stars and galaxies, and bright low-z AGN
  (``labels.csv``: class, redshift, median S/N).
- ``lamost_real_stars/``: 176 LAMOST stars; the FITS headers give ``SUBCLASS``.

Training allowed: ``real_train/``, 1,098 LAMOST (and 3 SDSS) spectra with LAMOST's own labels,
split by object (:func:`object_split`), never by file: some stars were observed more than once.

Each file is read by :mod:`app.tasks.spectra.files` and resampled by
:func:`app.tasks.spectra.grid.resample_to_model_grid`: the path a FITS file
sent to the service takes.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.tasks.spectra.files import ObservedSpectrum, read_spectrum_file
from app.tasks.spectra.grid import resample_to_model_grid


@dataclass
class LabelledSpectrum:
    name: str  # file, and row for multi-spectrum files
    flux: np.ndarray  # on the model grid, 0 = masked
    label: str  # STAR, GALAXY or QSO
    z: float  # NaN where the catalogue has none (a pipeline failure nobody re-measured)
    median_snr: float
    subclass: str = ""
    source: str = ""
    designation: str = ""  # the object (real_train): repeat observations share it


def model_grid_flux(spectrum: ObservedSpectrum) -> np.ndarray:
    return resample_to_model_grid(spectrum.wavelength, spectrum.flux, spectrum.ivar)


def median_snr(spectrum: ObservedSpectrum) -> float:
    """Median flux · √ivar over the file's good pixels (0 when it has none)."""
    good = spectrum.ivar > 0
    return float(np.median(np.abs(spectrum.flux[good]) * np.sqrt(spectrum.ivar[good]))) if good.any() else 0.0


# Bright low-redshift AGN, added to real_validation after the survey test sets; reported apart so
# the survey sets' figures stay comparable across versions.
LOWZ_AGN_SOURCE = "sdss_lowz_agn"


def load_real_validation(data_dir: Path) -> list[LabelledSpectrum]:
    """The spectra of ``real_validation/labels.csv``, in its order."""
    root = Path(data_dir) / "real_validation"
    files: dict[Path, list[ObservedSpectrum]] = {}
    out = []
    with open(root / "labels.csv", newline="") as f:
        for entry in csv.DictReader(f):
            path = root / entry["source"] / entry["file"]
            if path not in files:
                files[path] = read_spectrum_file(path)
            row = int(entry["row"]) if entry["row"] else 0
            name = entry["file"] + (f"[{entry['row']}]" if entry["row"] else "")
            out.append(
                LabelledSpectrum(
                    name, model_grid_flux(files[path][row]), entry["class"], float(entry["z"] or "nan"),
                    float(entry["median_snr"]), entry["subclass"], entry["source"],
                )
            )
    return out


def load_lamost_stars(data_dir: Path) -> list[LabelledSpectrum]:
    """The 176 LAMOST stars, with ``SUBCLASS`` (e.g. ``G5``) from their headers."""
    out = []
    for path in sorted((Path(data_dir) / "lamost_real_stars").glob("*.fits")):
        (spectrum,) = read_spectrum_file(path)
        meta = spectrum.meta
        out.append(
            LabelledSpectrum(
                path.name, model_grid_flux(spectrum), str(meta.get("class", "STAR")).strip(), float(meta.get("z", 0.0) or 0.0),
                median_snr(spectrum), str(meta.get("subclass", "")).strip(), "lamost_real_stars",
            )
        )
    return out


def load_real_train(data_dir: Path, classes: tuple[str, ...] = ("STAR", "GALAXY", "QSO")) -> list[LabelledSpectrum]:
    """The spectra of ``real_train/labels.csv`` whose class is one of ``classes`` (LAMOST's
    ``Unknown`` is left out), in its order, with LAMOST's ``SUBCLASS`` and the object's designation."""
    root = Path(data_dir) / "real_train"
    out = []
    with open(root / "labels.csv", newline="") as f:
        for entry in csv.DictReader(f):
            if entry["class"] not in classes:
                continue
            (spectrum,) = read_spectrum_file(root / entry["file"])[:1]
            out.append(
                LabelledSpectrum(
                    entry["file"], model_grid_flux(spectrum), entry["class"], float(entry["z"]), median_snr(spectrum),
                    entry["subclass"].strip(), entry["source"], entry["designation"] or entry["file"],
                )
            )
    return out


def object_split(spectra: list[LabelledSpectrum], held_out_share: float = 0.2, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices of (training, held-out) spectra, the held-out ones a random ``held_out_share`` of the
    *objects*: every observation of a star falls on one side."""
    objects = sorted({s.designation for s in spectra})
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(objects)[: round(held_out_share * len(objects))].tolist())
    train = [i for i, s in enumerate(spectra) if s.designation not in held]
    return train, [i for i, s in enumerate(spectra) if s.designation in held]
