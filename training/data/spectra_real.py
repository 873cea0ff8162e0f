"""Real observed spectra with labels, for evaluation and model selection only (never training).

- ``real_validation/``: 234 BOSS/eBOSS and DESI quasars, stars and galaxies
  (``labels.csv``: class, redshift, median S/N).
- ``lamost_real_stars/``: 176 LAMOST stars; the FITS headers give ``SUBCLASS``.

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


def model_grid_flux(spectrum: ObservedSpectrum) -> np.ndarray:
    return resample_to_model_grid(spectrum.wavelength, spectrum.flux, spectrum.ivar)


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
        flux = model_grid_flux(spectrum)
        good = spectrum.ivar > 0
        snr = np.median(np.abs(spectrum.flux[good]) * np.sqrt(spectrum.ivar[good])) if good.any() else 0.0
        meta = spectrum.meta
        out.append(
            LabelledSpectrum(
                path.name, flux, str(meta.get("class", "STAR")).strip(), float(meta.get("z", 0.0) or 0.0),
                float(snr), str(meta.get("subclass", "")).strip(), "lamost_real_stars",
            )
        )
    return out
