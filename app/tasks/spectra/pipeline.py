"""The spectra pipeline bound to one classifier: flux on the model grid → class, redshift and type;
and spectra read from files → one answer (or one reason why not) per spectrum.

Classification, the template fits and the warning bits run in the exported graph. The routes, the
bulk command (``python -m app.spectra_bulk``), ``python -m training spectra evaluate`` and
``bench/`` call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from app.tasks.spectra.files import ObservedSpectrum
from app.tasks.spectra.grid import LAMOST, masked_fraction, on_model_grid, resample_to_model_grid
from app.tasks.spectra.schemas import FileSpectrumError, FileSpectrumResult, SpectrumResult
from app.tasks.spectra.spec import HEAVILY_MASKED_SHARE, SpectraSpec


@dataclass(frozen=True)
class SpectraLimits:
    """How much a request may hold and how much of a spectrum may be masked, and the checks that use them."""

    max_spectra: int
    max_points: int
    max_masked: float
    max_files: int
    max_file_bytes: int

    def usable(self, flux: np.ndarray) -> np.ndarray:
        fraction = masked_fraction(flux)
        if fraction >= 1.0:
            raise ValueError("has no usable flux (all values are 0, NaN, infinite or beyond float32's ±3.4e38)")
        if fraction > self.max_masked:
            raise ValueError(f"{fraction:.0%} of the pixels are masked (0, NaN, infinite or beyond float32's ±3.4e38); the limit is {self.max_masked:.0%}")
        return flux

    def on_grid(self, values: list[float] | np.ndarray) -> np.ndarray:
        if len(values) != LAMOST.npix:
            raise ValueError(f"has {len(values)} values; a flux array on the model grid has exactly {LAMOST.npix}")
        return self.usable(on_model_grid(np.asarray(values, dtype=np.float64)))

    def resampled_and_usable(self, wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray | None) -> np.ndarray:
        """A spectrum on its own grid → flux on the model grid, or a ValueError saying why it is unusable there."""
        try:
            return self.usable(resample_to_model_grid(wavelength, flux, ivar))
        except ValueError as exc:
            grid = f"{LAMOST.wavelength[0]:.0f}–{LAMOST.wavelength[-1]:.0f} Å"
            raise ValueError(f"after resampling onto the model grid ({grid}) the spectrum {exc}") from None


FileEntry = tuple[str, ObservedSpectrum, "np.ndarray | str"]  # file name, spectrum, model-grid flux or why not


def _rounded(value: float, digits: int) -> float | None:
    return round(float(value), digits) if np.isfinite(value) else None


class SpectraPipeline:
    def __init__(self, predict: Callable[..., dict], spec: SpectraSpec):
        self.predict = predict
        self.classes = spec.classes
        self.zwarning_bits = spec.zwarning_bits

    @classmethod
    def from_spec(cls, predict: Callable[..., dict], spec: SpectraSpec) -> "SpectraPipeline":
        return cls(predict, spec)

    def read(self, rows: list[np.ndarray]) -> list[SpectrumResult]:
        """Classify model-grid flux rows in one model call (the micro-batcher's batch function)."""
        flux = np.stack(rows).astype(np.float32)
        out = {key: value.numpy() for key, value in self.predict(flux=tf.constant(flux)).items()}
        results = []
        for i, row in enumerate(flux):
            label, warning, fraction = out["label"][i].decode(), int(out["zwarning"][i]), masked_fraction(row)
            result = SpectrumResult(
                label=label,
                probabilities={c: round(float(p), 6) for c, p in zip(self.classes, out["probabilities"][i])},
                masked_fraction=round(fraction, 4),
                heavily_masked=fraction > HEAVILY_MASKED_SHARE,
                warning=warning,
                warnings=[name for name, bit in self.zwarning_bits.items() if warning & bit],
                median_snr=_rounded(out["median_snr"][i], 3),
            )
            if label != "UNKNOWN":
                result.z, result.z_err = _rounded(out["z"][i], 6), _rounded(out["z_err"][i], 6)
            if label == "STAR":
                result.subtype = out["subtype"][i].decode()
                result.stellar_template = out["stellar_template"][i].decode()
            results.append(result)
        return results

    @staticmethod
    def file_entries(spectra: list[tuple[str, ObservedSpectrum]], limits: SpectraLimits) -> list[FileEntry]:
        """Each file spectrum with its flux on the model grid, or the reason it cannot be classified."""
        entries = []
        for name, observed in spectra:
            try:
                entries.append((name, observed, limits.resampled_and_usable(observed.wavelength, observed.flux, observed.ivar)))
            except ValueError as exc:
                entries.append((name, observed, str(exc)))
        return entries

    @staticmethod
    def file_results(
        entries: list[FileEntry], classified: list[SpectrumResult], with_spectrum: bool = False
    ) -> list[FileSpectrumResult | FileSpectrumError]:
        """The answers for ``entries``: ``classified`` holds one result per classifiable entry, in order."""
        answers = iter(classified)
        results: list[FileSpectrumResult | FileSpectrumError] = []
        for name, observed, flux in entries:
            if isinstance(flux, str):
                results.append(FileSpectrumError(file=name, row=observed.row, error=flux))
                continue
            targetid = observed.meta.get("targetid")
            pipeline = {k: v for k, v in observed.meta.items() if k != "targetid"}
            result = FileSpectrumResult(
                **next(answers).model_dump(), file=name, row=observed.row,
                targetid=None if targetid is None else str(targetid), pipeline=pipeline or None,
            )
            if with_spectrum:
                result.spectrum = {"wavelength": np.round(LAMOST.wavelength, 2).tolist(), "flux": [round(float(v), 6) for v in flux]}
            results.append(result)
        return results
