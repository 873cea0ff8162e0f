# No `from __future__ import annotations`: the request models are defined per app, inside
# build_router, and FastAPI must see the classes themselves in the endpoints' signatures.


from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import (
    BaseModel,
    Field,
)

from app.access import caller_identity, task_router
from app.dependencies import get_engine, get_upload_work
from app.engine import InferenceEngine
from app.errors import error_responses
from app.model_store import NAME_PATTERN
from app.settings import Settings
from app.tasks.choice import ModelChoice, Target
from app.tasks.spectra import fits_guard
from app.tasks.spectra.files import ByteBudget, SpectrumFileError
from app.tasks.spectra.pipeline import FileEntry, SpectraLimits, file_entries
from app.tasks.spectra.requests import request_model
from app.tasks.spectra.schemas import FileSpectrumError, FileSpectrumResult, SpectrumResult
from app.upload_work import Deadline, UploadWork

TASK = "spectra"


class SpectraResponse(BaseModel):
    results: list[SpectrumResult]
    model: str
    model_version: int


class FitsResponse(BaseModel):
    results: list[FileSpectrumResult | FileSpectrumError] = Field(
        description="one entry per spectrum, in file and row order: a classification, or an `error` for a spectrum "
        "that cannot be classified (the rest of the file is still answered)"
    )
    model: str
    model_version: int


def warm_up() -> None:
    fits_guard.warm_up()


def _invalid_files(message: str, index: int | None = None) -> RequestValidationError:
    """A 422 naming ``files`` (or ``files.<index>``), in the service's error shape."""
    loc = ("body", "files") if index is None else ("body", "files", index)
    return RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])


def _display_name(upload: UploadFile, index: int) -> str:
    name = (upload.filename or f"file {index}").replace("\\", "/").rsplit("/", 1)[-1]
    return name[:200]


def _read_uploads(uploads: list[tuple[str, UploadFile]], limits: SpectraLimits, deadline: Deadline) -> list[FileEntry]:
    """Each file's spectra on the model grid (in an upload thread, one file in memory at a time,
    within one decompressed-bytes budget for the request); a file that cannot be read is a 422 naming it."""
    budget = ByteBudget(limits.max_file_bytes)
    entries: list[FileEntry] = []
    for index, (name, upload) in enumerate(uploads):
        deadline.check()
        upload.file.seek(0)
        try:
            entries += file_entries(name, upload.file.read(), limits, budget, deadline.check)
        except SpectrumFileError as exc:
            raise _invalid_files(f"'{name}' {exc}", index) from None
        if len(entries) > limits.max_spectra:
            raise _invalid_files(f"the files hold more than {limits.max_spectra} spectra; send fewer per request")
    return entries


def build_router(settings: Settings) -> APIRouter:
    """``POST /v1/spectra`` and ``POST /v1/spectra/fits`` with this app's limits."""
    limits = settings.spectra_limits()
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
                                    "subclass": "K5",
                                    "stellar_template": "K5",
                                    "warning": 0,
                                    "warnings": [],
                                    "median_snr": 24.3,
                                    "masked_fraction": 0.012,
                                    "heavily_masked": False,
                                }
                            ],
                            "model": "spectra",
                            "model_version": 1,
                        }
                    }
                }
            },
            **error_responses("spectra", "invalid request; `error.fields` names each offending spectrum and field"),
        },
    )
    async def classify(body: SpectraRequest, request: Request, engine: InferenceEngine = Depends(get_engine)) -> SpectraResponse:
        with engine.registry.lease(TASK, body.target(), caller_identity(request)) as model:
            results = await engine.run(model, body.flux_rows(), request)
        return SpectraResponse(results=results, model=model.model, model_version=model.version)

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
        model: str | None = Form(None, pattern=NAME_PATTERN, description=ModelChoice.model_fields["model"].description),
        version: int | None = Form(None, gt=0, description=ModelChoice.model_fields["version"].description),
        version_label: str | None = Form(
            None, pattern=NAME_PATTERN, description=ModelChoice.model_fields["version_label"].description
        ),
        engine: InferenceEngine = Depends(get_engine),
        upload_work: UploadWork = Depends(get_upload_work),
    ) -> FitsResponse:
        target = Target(model, version, version_label)
        files = files + file
        if not files:
            raise _invalid_files("no FITS file sent: upload one or more as the form field `files` (or `file`)")
        if len(files) > limits.max_files:
            raise _invalid_files(f"{len(files)} files sent; at most {limits.max_files} per request")
        uploads = [(_display_name(upload, i), upload) for i, upload in enumerate(files)]
        # Reading and resampling are CPU work: in the bounded upload threads, off the event loop.
        entries = await upload_work.run(lambda deadline: _read_uploads(uploads, limits, deadline))
        with engine.registry.lease(TASK, target, caller_identity(request)) as answering:
            pipeline = answering.pipeline
            rows = [entry.flux for entry in entries if not isinstance(entry.flux, str)]
            classified = await engine.run(answering, rows, request) if rows else []  # none: the errors are the answer
        results = pipeline.file_results(entries, classified, spectrum)
        return FitsResponse(results=results, model=answering.model, model_version=answering.version)

    return router
