"""``python -m training spectra examples``: simulated FITS files for the demo page."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from app.tasks.spectra.grid import LAMOST
from app.tasks.spectra.spec import CLASSES
from training.data.spectra import Templates, simulate


def write_examples(args: argparse.Namespace) -> None:
    """One simulated spectrum per astrophysical class, written as LAMOST-style FITS files (flux and
    inverse variance rows, log-linear wavelength in COEFF0/COEFF1) for the demo page."""
    from astropy.io import fits

    flux, labels = simulate(Templates.load(Path(args.data_dir) / "templates", "test"), 1, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for row, label in zip(flux, labels):
        name = CLASSES[label]
        if name == "UNKNOWN":
            continue
        header = fits.Header()
        header["COEFF0"], header["COEFF1"] = LAMOST.loglam0, LAMOST.dloglam
        header["CLASS"] = name
        header["COMMENT"] = f"simulated by `python -m training spectra examples --seed {args.seed}` (not an observation)"
        ivar = np.where(row != 0, 1.0, 0.0).astype(np.float32)
        fits.PrimaryHDU(np.stack([row, ivar]), header).writeto(out / f"simulated_{name.lower()}.fits", overwrite=True)
        print(out / f"simulated_{name.lower()}.fits")
