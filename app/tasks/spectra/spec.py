"""What an exported spectrum classifier promises: its classes, its wavelength grid and its warning bits.

The constants here are the one definition the simulator, the exported graph and the service share.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from app.tasks.spec import ModelSpec, Part
from app.tasks.spectra.grid import LAMOST

CLASSES = ("STAR", "GALAXY", "QSO", "UNKNOWN")
HEAVILY_MASKED_SHARE = 0.2  # of the pixels: flagged HEAVILY_MASKED, and the fits decide a doubtful UNKNOWN
# Like SDSS's ZWARNING and Redrock's ZWARN: 0 means nothing suspicious.
ZWARNING_BITS = {
    "LOW_SNR": 1,  # median S/N per pixel below 2
    "AMBIGUOUS_CLASS": 2,  # the likeliest class has probability below the graph's AMBIGUOUS_PROBABILITY
    "SMALL_DELTA_CHI2": 4,  # another redshift fits almost as well (Δχ² < 9)
    "Z_AT_EDGE": 8,  # the best redshift sits at the edge of the scanned range
    "HEAVILY_MASKED": 16,  # more than HEAVILY_MASKED_SHARE of the pixels masked
    "UNCLASSIFIED": 32,  # label UNKNOWN: z and subtype are not answers
}


class Grid(Part):
    loglam0: float
    dloglam: float = Field(gt=0)
    npix: int = Field(gt=0)


class SpectraSpec(ModelSpec):
    task: Literal["spectra"] = "spectra"
    classes: list[str] = Field(min_length=2)
    grid: Grid
    zwarning_bits: dict[str, int]
    required_outputs = ("probabilities", "label", "z", "z_err", "subtype", "stellar_template", "median_snr", "zwarning")

    @model_validator(mode="after")
    def on_the_service_grid(self) -> "SpectraSpec":
        # The service resamples every spectrum onto one grid before the model sees it.
        expected = (LAMOST.loglam0, LAMOST.dloglam, LAMOST.npix)
        if (self.grid.loglam0, self.grid.dloglam, self.grid.npix) != expected:
            raise ValueError(f"grid is {self.grid.model_dump()}; the service resamples onto loglam0, dloglam, npix = {expected}")
        return self
