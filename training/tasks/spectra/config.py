"""What a spectrum classifier is and was trained with: its configuration, the simulated splits'
seeds, the templates its exported graph fits, and its signature."""

from __future__ import annotations

from dataclasses import dataclass

from app.tasks.spectra.grid import LAMOST
from app.tasks.spectra.spec import CLASSES
from training.runs import RunConfig

TASK = "spectra"
SPLIT_SEEDS = {"train": 1, "dev": 2, "test": 3}
BRIGHT_SNR = 2.0  # real spectra are reported over all and over median S/N ≥ this
# real_train's stars held out (by object) from the LAMOST type mapping, to measure it on.
REAL_TRAIN_HELD_OUT = {"share": 0.2, "seed": 0}
SIGNATURE = {
    "inputs": {"flux": f"float32 [N, {LAMOST.npix}] on the LAMOST grid, 0 = masked"},
    "outputs": {
        "probabilities": f"float32 [N, {len(CLASSES)}] in the order of 'classes'",
        "label": "string [N]: the likeliest class; for an ambiguous one (AMBIGUOUS_CLASS) or an UNKNOWN with part of the spectrum masked (HEAVILY_MASKED, below UNCLASSIFIABLE_MASKED_SHARE), the astrophysical class whose templates fit best (for UNKNOWN only if a template finds features: FEATURE_DELTA_CHI2)",
        "z": "float32 [N]: redshift from the template fit of the label's class (of the likeliest astrophysical class for UNKNOWN; a star's is its radial velocity / c)",
        "z_err": "float32 [N]: 1σ uncertainty of z: the fit's statistical one and the template systematic (z_systematic) in quadrature",
        "delta_chi2": "float32 [N]: χ² of the best fit elsewhere in z minus that of the best one (float32 max for stars)",
        "subtype": "string [N]: for STAR, the MK letter in LAMOST's convention (from 9; before, the best SDSS template's letter); '' for stars whose best SDSS template has none and fits better than LAMOST's (from 10), and for other classes",
        "subclass": "string [N]: for STAR, LAMOST's subclass (e.g. 'G5') within that letter (from 9; optional)",
        "stellar_template": "string [N]: for STAR, the best-fitting stellar template's name ('' for other classes)",
        "median_snr": "float32 [N]: median flux / noise per pixel, the noise estimated from the spectrum",
        "zwarning": "int32 [N]: bit mask, names in 'zwarning_bits'",
    },
}
# Below this top probability a class is ambiguous: the template fits decide it (Redrock's way).
AMBIGUOUS_PROBABILITY = 0.6
# An UNKNOWN is decided by the fits too when its best template beats a smooth continuum by this
# much (features found at ~10σ), if it is ambiguous or partly masked, and not masked as much as the
# simulator's unclassifiable spectra (UNCLASSIFIABLE_MASKED_SHARE).
FEATURE_DELTA_CHI2 = 100.0
# Rest-frame templates of the fits in the exported graph (under --data-dir's templates/), the
# redshift range each scans, and the coarse scan's step in pixels (1e-4 dex, 69 km/s): broad
# quasar lines allow a wider one. On the real spectra steps 3/4 found the same redshifts as 2/3.
REDSHIFT_TEMPLATES = {
    "GALAXY": ("sdss_idlspec2d/spEigenGal-56436.fits", -0.005, 1.5, 3),
    "QSO": ("sdss_idlspec2d/spEigenQSO-55732.fits", 0.05, 5.0, 4),
}
STELLAR_TEMPLATES = "sdss_idlspec2d/spEigenStar-53724.fits"


@dataclass
class Config(RunConfig):
    filters: tuple[int, ...] = (16, 32, 48, 64)
    kernel_size: int = 7
    dropout: float = 0.2
    mixup_alpha: float = 0.2  # 0 turns mixup off
    real_train_repeat: int = 0  # times real_train's training part is seen per epoch beside the simulated spectra

    def __post_init__(self):
        self.filters = tuple(self.filters)  # JSON gives a list
