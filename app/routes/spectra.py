# No `from __future__ import annotations`: the request models are defined per app, inside
# build_router, and FastAPI must see the classes themselves in the endpoints' signatures.

import base64
import binascii
from dataclasses import dataclass
from typing import Annotated, Union

import numpy as np
import tensorflow as tf
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    WithJsonSchema,
    model_validator,
)

from app.access import task_router
from app.dependencies import get_engine
from app.engine import InferenceEngine, ModelUnavailable
from app.errors import error_responses
from app.registry import LoadedModel
from app.settings import Settings
from training.data.spectra import CLASSES
from training.preprocessing.spectra import LAMOST, masked_fraction, on_model_grid, resample_to_model_grid
from training.preprocessing.spectrum_files import ObservedSpectrum, SpectrumFileError, read_spectra

TASK = "spectra"
HEAVY_MASKING = 0.2


@dataclass(frozen=True)
class SpectraLimits:
    """One app's limits on spectra and files, and the checks that use them."""

    max_spectra: int
    max_points: int
    max_masked: float
    max_files: int
    max_file_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> "SpectraLimits":
        return cls(settings.max_batch_spectra, settings.max_spectrum_points, settings.max_masked_fraction,
                   settings.max_fits_files, settings.max_fits_bytes)

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


def request_model(limits: SpectraLimits) -> type[BaseModel]:
    """The JSON request body with this app's limits (they are part of its OpenAPI schema)."""
    GriddedFlux = Annotated[
        list[float],
        AfterValidator(limits.on_grid),
        WithJsonSchema({"type": "array", "items": {"type": "number"}, "minItems": LAMOST.npix, "maxItems": LAMOST.npix}),
    ]

    class SpectrumWithWavelength(BaseModel):
        """A spectrum on its own wavelength grid; the service resamples it onto the model grid."""

        model_config = ConfigDict(extra="forbid")

        wavelength: list[Annotated[float, Field(gt=0)]] = Field(
            min_length=2, max_length=limits.max_points, description="Å, strictly increasing"
        )
        flux: list[float] = Field(min_length=2, max_length=limits.max_points)
        ivar: list[float] | None = Field(None, description="inverse variance; 0 marks a bad pixel")

        _flux: np.ndarray = PrivateAttr()

        @model_validator(mode="after")
        def resample(self) -> "SpectrumWithWavelength":
            n = len(self.wavelength)
            for name in ("flux", "ivar"):
                values = getattr(self, name)
                if values is not None and len(values) != n:
                    raise ValueError(f"'{name}' has {len(values)} values but 'wavelength' has {n}")
            wavelength = np.asarray(self.wavelength)
            if not np.all(np.isfinite(wavelength)) or wavelength[0] <= 0:
                raise ValueError("'wavelength' must be finite and positive")
            if not np.all(np.diff(wavelength) > 0):
                raise ValueError("'wavelength' must be strictly increasing")
            ivar = None if self.ivar is None else np.asarray(self.ivar)
            self._flux = limits.resampled_and_usable(wavelength, np.asarray(self.flux), ivar)
            return self

    class EncodedFlux(BaseModel):
        """A flux array on the model grid as base64 little-endian float32: two thirds of the bytes of
        the numbers written with three decimals, and a quarter of the server's time to parse and
        validate them (0.06 against 0.26 ms measured on the 2-core development machine)."""

        model_config = ConfigDict(extra="forbid")

        flux_b64: str = Field(
            description=f"base64 of exactly {LAMOST.npix} little-endian float32 values ({4 * LAMOST.npix} bytes), "
            "e.g. base64.b64encode(flux.astype('<f4').tobytes())"
        )

        _flux: np.ndarray = PrivateAttr()

        @model_validator(mode="after")
        def decode(self) -> "EncodedFlux":
            try:
                raw = base64.b64decode(self.flux_b64, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("'flux_b64' is not valid base64") from None
            if len(raw) != 4 * LAMOST.npix:
                raise ValueError(
                    f"'flux_b64' holds {len(raw)} bytes; {LAMOST.npix} float32 values on the model grid are {4 * LAMOST.npix}"
                )
            self._flux = limits.on_grid(np.frombuffer(raw, dtype="<f4"))
            return self

    def spectrum_kind(value) -> str | None:
        if isinstance(value, list):
            return "flux"
        if isinstance(value, EncodedFlux) or (isinstance(value, dict) and "flux_b64" in value):
            return "encoded"
        if isinstance(value, (dict, SpectrumWithWavelength)):
            return "spectrum"
        return None

    # A flux array on the model grid, or an object with its own wavelengths. The tag
    # picks the schema up front, so an error names one field instead of both options.
    Spectrum = Annotated[
        Union[
            Annotated[GriddedFlux, Tag("flux")],
            Annotated[EncodedFlux, Tag("encoded")],
            Annotated[SpectrumWithWavelength, Tag("spectrum")],
        ],
        Discriminator(
            spectrum_kind,
            custom_error_type="spectrum_type",
            custom_error_message="must be a flux array, an object with 'flux_b64', or an object with 'wavelength' and 'flux'",
        ),
    ]

    class SpectraRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [
                    {"spectra": [[1.0] * 4 + ["…"] + [1.0] * 2]},
                    {"spectra": [{"wavelength": [3600.0, 3601.0, "…", 9200.0], "flux": [12.1, 12.3, "…", 8.0]}]},
                    {"spectra": [{"flux_b64": "AACAPwAAgD8AAIA/…"}]},
                ]
            },
        )

        spectra: list[Spectrum] = Field(
            min_length=1,
            max_length=limits.max_spectra,
            description=(
                f"1 to {limits.max_spectra} spectra, each a flux array of exactly {LAMOST.npix} values on the LAMOST grid "
                f"(λ = 10**(3.5682 + 1e-4·i) Å; 0, NaN or ±Infinity mark masked pixels), or the same array as "
                "{flux_b64} (base64 little-endian float32; cheaper to send and to read), or "
                "{wavelength, flux, ivar?} on any grid, which is resampled (flux-conserving) onto it. "
                f"Spectra with more than {limits.max_masked:.0%} masked pixels are rejected."
            ),
        )

        def flux_rows(self) -> list[np.ndarray]:
            """Each spectrum's flux on the model grid."""
            return [s._flux if isinstance(s, (SpectrumWithWavelength, EncodedFlux)) else s for s in self.spectra]

    return SpectraRequest


class SpectrumResult(BaseModel):
    label: str = Field(description="STAR, GALAXY, QSO or UNKNOWN")
    probabilities: dict[str, float]
    z: float | None = Field(
        None,
        description="redshift from a template χ² fit (SDSS/BOSS eigenspectra) for GALAXY and QSO; a STAR's radial "
        "velocity / c; null for UNKNOWN",
    )
    z_err: float | None = Field(None, description="1σ uncertainty of z: the fit's statistical one (χ² curvature) and the templates' systematic in quadrature")
    subtype: str | None = Field(
        None, description="for a STAR, the MK letter (O, B, A, F, G, K, M) of the best-fitting stellar template; '' for "
        "templates without one (white dwarfs, carbon stars, L dwarfs); null for other classes"
    )
    stellar_template: str | None = Field(None, description="for a STAR, the best-fitting SDSS stellar template, e.g. 'K5'")
    warning: int = Field(0, description="bit mask like SDSS's ZWARNING: 0 when nothing is suspicious; names in `warnings`")
    warnings: list[str] = Field(
        default_factory=list,
        description="LOW_SNR (median S/N below 2), AMBIGUOUS_CLASS (top probability below 0.6), SMALL_DELTA_CHI2 "
        "(another redshift fits almost as well), Z_AT_EDGE (at the end of the scanned range), HEAVILY_MASKED "
        "(over 20 % masked), UNCLASSIFIED (UNKNOWN)",
    )
    median_snr: float | None = Field(None, description="median flux / noise per pixel, the noise estimated from the spectrum")
    masked_fraction: float = Field(description="fraction of model-grid pixels without flux")
    heavily_masked: bool = Field(description=f"more than {HEAVY_MASKING:.0%} of the pixels were masked")


class SpectraResponse(BaseModel):
    results: list[SpectrumResult]
    model_version: int


def _rounded(value: float, digits: int) -> float | None:
    return round(float(value), digits) if np.isfinite(value) else None


def run_batch(model: LoadedModel, rows: list[np.ndarray]) -> list[SpectrumResult]:
    """Classify a batch of model-grid flux rows (the engine's batch function; runs in a worker thread)."""
    flux = np.stack(rows).astype(np.float32)
    out = {key: value.numpy() for key, value in model.predict(flux=tf.constant(flux)).items()}
    classes = model.manifest.get("classes", CLASSES)
    results = []
    for i, row in enumerate(flux):
        label = out["label"][i].decode()
        fraction = masked_fraction(row)
        result = SpectrumResult(
            label=label,
            probabilities={c: round(float(p), 6) for c, p in zip(classes, out["probabilities"][i])},
            masked_fraction=round(fraction, 4),
            heavily_masked=fraction > HEAVY_MASKING,
        )
        if "z" in out:  # models exported before the template fits answer the class alone
            warning = int(out["zwarning"][i])
            result.warning = warning
            result.warnings = [name for name, bit in model.manifest["zwarning_bits"].items() if warning & bit]
            result.median_snr = _rounded(out["median_snr"][i], 3)
            if label != "UNKNOWN":
                result.z, result.z_err = _rounded(out["z"][i], 6), _rounded(out["z_err"][i], 6)
            if label == "STAR":
                result.subtype = out["subtype"][i].decode()
                result.stellar_template = out["stellar_template"][i].decode()
        results.append(result)
    return results


class FileSpectrumResult(SpectrumResult):
    file: str = Field(description="the uploaded file's name")
    row: int | None = Field(None, description="the spectrum's row in a multi-spectrum file (DESI coadd), else null")
    targetid: str | None = Field(
        None, description="DESI TARGETID, when the file names one (a string: 64-bit integers lose digits in JavaScript)"
    )
    pipeline: dict[str, str | float | int] | None = Field(
        None, description="what the file's header says about the spectrum (LAMOST: CLASS, SUBCLASS, Z, …)"
    )
    spectrum: dict[str, list[float]] | None = Field(
        None, description="with spectrum=true: the flux the model read, resampled onto its grid (`wavelength` Å, `flux`; 0 = masked)"
    )


class FileSpectrumError(BaseModel):
    file: str
    row: int | None = None
    error: str = Field(description="why this spectrum was not classified (e.g. it does not reach the model's wavelength range)")


class FitsResponse(BaseModel):
    results: list[FileSpectrumResult | FileSpectrumError] = Field(
        description="one entry per spectrum, in file and row order: a classification, or an `error` for a spectrum "
        "that cannot be classified (the rest of the file is still answered)"
    )
    model_version: int


def _invalid_files(message: str, index: int | None = None) -> RequestValidationError:
    """A 422 naming ``files`` (or ``files.<index>``), in the service's error shape."""
    loc = ("body", "files") if index is None else ("body", "files", index)
    return RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])


def _display_name(upload: UploadFile, index: int) -> str:
    name = (upload.filename or f"file {index}").replace("\\", "/").rsplit("/", 1)[-1]
    return name[:200]


def _read_uploads(contents: list[tuple[str, bytes]], limits: SpectraLimits) -> list[tuple[str, ObservedSpectrum]]:
    """Each file's spectra (CPU work, off the event loop); a file that cannot be read is a 422 naming it."""
    spectra = []
    for index, (name, data) in enumerate(contents):
        try:
            spectra += [(name, s) for s in read_spectra(data, max_bytes=limits.max_file_bytes, max_rows=limits.max_spectra)]
        except SpectrumFileError as exc:
            raise _invalid_files(f"'{name}' {exc}", index) from None
        if len(spectra) > limits.max_spectra:
            raise _invalid_files(f"the files hold more than {limits.max_spectra} spectra; send fewer per request")
    return spectra


FileEntry = tuple[str, ObservedSpectrum, "np.ndarray | str"]  # file name, spectrum, model-grid flux or why not


def file_entries(spectra: list[tuple[str, ObservedSpectrum]], limits: SpectraLimits) -> list[FileEntry]:
    """Each file spectrum with its flux on the model grid, or the reason it cannot be classified."""
    entries = []
    for name, observed in spectra:
        try:
            entries.append((name, observed, limits.resampled_and_usable(observed.wavelength, observed.flux, observed.ivar)))
        except ValueError as exc:
            entries.append((name, observed, str(exc)))
    return entries


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


def build_router(settings: Settings) -> APIRouter:
    """``POST /v1/spectra`` and ``POST /v1/spectra/fits`` with this app's limits."""
    limits = SpectraLimits.of(settings)
    SpectraRequest = request_model(limits)
    router = task_router(TASK)  # who may call: see task_router

    @router.post(
        "/v1/spectra",
        summary="Classify spectra",
        response_model=SpectraResponse,
        responses={
            200: {
                "content": {
                    "application/json": {
                        "example": {
                            "results": [
                                {
                                    "label": "STAR",
                                    "probabilities": {"STAR": 0.97, "GALAXY": 0.01, "QSO": 0.0, "UNKNOWN": 0.02},
                                    "z": -0.000087,
                                    "z_err": 0.000012,
                                    "subtype": "K",
                                    "stellar_template": "K5",
                                    "warning": 0,
                                    "warnings": [],
                                    "median_snr": 24.3,
                                    "masked_fraction": 0.012,
                                    "heavily_masked": False,
                                }
                            ],
                            "model_version": 1,
                        }
                    }
                }
            },
            **error_responses("spectra", "invalid request; `error.fields` names each offending spectrum and field"),
        },
    )
    async def classify(body: SpectraRequest, request: Request, engine: InferenceEngine = Depends(get_engine)) -> SpectraResponse:
        results, version = await engine.run(TASK, body.flux_rows(), request)
        return SpectraResponse(results=results, model_version=version)

    @router.post(
        "/v1/spectra/fits",
        summary="Classify the spectra in FITS files (LAMOST, SDSS spec-lite, DESI coadd)",
        response_model=FitsResponse,
        responses=error_responses(
            "spectra",
            "a file that is not FITS, truncated, of an unknown layout, without a wavelength solution, too large once "
            "decompressed, or too many files or spectra; `error.fields` names the file (`files.<i>`)",
        ),
    )
    async def classify_files(
        request: Request,
        files: list[UploadFile] = File(
            [],
            description=f"1 to {limits.max_files} FITS files, gzip-compressed or not: LAMOST (primary image or DR8+ table), "
            f"SDSS spec-lite/spec, or DESI coadd (every row); at most {limits.max_spectra} spectra in all",
        ),
        file: list[UploadFile] = File([], description="the same as `files` (`curl -F file=@spec.fits` works too)"),
        spectrum: bool = Form(False, description="also return each spectrum as the model read it (for plotting)"),
        engine: InferenceEngine = Depends(get_engine),
    ) -> FitsResponse:
        files = files + file
        if not files:
            raise _invalid_files("no FITS file sent: upload one or more as the form field `files` (or `file`)")
        if len(files) > limits.max_files:
            raise _invalid_files(f"{len(files)} files sent; at most {limits.max_files} per request")
        contents = [(_display_name(upload, i), await upload.read()) for i, upload in enumerate(files)]
        # Reading and resampling are CPU work: off the event loop.
        entries = await run_in_threadpool(lambda: file_entries(_read_uploads(contents, limits), limits))
        rows = [flux for _, _, flux in entries if not isinstance(flux, str)]
        if rows:
            classified, version = await engine.run(TASK, rows, request)
        else:  # nothing classifiable: the errors are the answer
            model = engine.registry.get(TASK)
            if model is None:
                raise ModelUnavailable(f"no {TASK} model is loaded")
            classified, version = [], model.version
        return FitsResponse(results=file_results(entries, classified, spectrum), model_version=version)

    return router
