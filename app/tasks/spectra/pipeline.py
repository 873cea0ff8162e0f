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

from app.tasks.spectra.files import ByteBudget, FileLimits, iter_spectra
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

    @property
    def file_limits(self) -> FileLimits:
        """What one uploaded file may hold: as many spectra as a request, as many pixels as a JSON spectrum."""
        return FileLimits(max_bytes=self.max_file_bytes, max_spectra=self.max_spectra, max_pixels=self.max_points)

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


@dataclass
class FileEntry:
    """One spectrum of a file, reduced to what the answer needs: model-grid flux, or why it has none."""

    file: str
    row: int | None
    meta: dict
    flux: np.ndarray | str


def file_entries(
    name: str, data: bytes, limits: SpectraLimits, budget: ByteBudget, checkpoint: Callable[[], None] | None = None
) -> list[FileEntry]:
    """The spectra of one file, each resampled onto the model grid as soon as it is read (so a
    request holds one spectrum's raw arrays at a time); a file that cannot be read raises
    :class:`SpectrumFileError`, a spectrum that cannot be classified gets the reason instead of flux."""
    entries = []
    for observed in iter_spectra(data, limits.file_limits, budget, checkpoint):
        try:
            flux = limits.resampled_and_usable(observed.wavelength, observed.flux, observed.ivar)
        except ValueError as exc:
            flux = str(exc)
        entries.append(FileEntry(name, observed.row, observed.meta, flux))
    return entries


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
                if "subclass" in out:  # versions from 9 on
                    result.subclass = out["subclass"][i].decode()
            results.append(result)
        return results

    @staticmethod
    def file_results(
        entries: list[FileEntry], classified: list[SpectrumResult], with_spectrum: bool = False
    ) -> list[FileSpectrumResult | FileSpectrumError]:
        """The answers for ``entries``: ``classified`` holds one result per classifiable entry, in order."""
        answers = iter(classified)
        results: list[FileSpectrumResult | FileSpectrumError] = []
        for entry in entries:
            if isinstance(entry.flux, str):
                results.append(FileSpectrumError(file=entry.file, row=entry.row, error=entry.flux))
                continue
            targetid = entry.meta.get("targetid")
            pipeline = {k: v for k, v in entry.meta.items() if k != "targetid"}
            result = FileSpectrumResult(
                **next(answers).model_dump(), file=entry.file, row=entry.row,
                targetid=None if targetid is None else str(targetid), pipeline=pipeline or None,
            )
            if with_spectrum:
                result.spectrum = {"wavelength": np.round(LAMOST.wavelength, 2).tolist(), "flux": [round(float(v), 6) for v in entry.flux]}
            results.append(result)
        return results
