"""The model catalogue, and the admin actions on it: reload, load and unload a version beside the
others, move a label, split traffic (docs/serving.md, Versions)."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator

from fastapi import APIRouter, Body, Depends, HTTPException, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from app.access import AccessRoute, Caller, audit_log, require
from app.dependencies import get_metrics, get_registry
from app.errors import ACCESS_ERRORS, ErrorResponse, documented_errors, error_body, public_load_errors, without_paths
from app.metrics import Metrics
from app.model_store import NAME_PATTERN
from app.registry import ModelRegistry, NotServed, Refused, settle_heap
from app.validation import integer

router = APIRouter(tags=["models"], route_class=AccessRoute)
log = logging.getLogger("app.models")

ModelName = Path(pattern=NAME_PATTERN, description="a model of the store (`GET /v1/models`)")
# Who may call the admin actions below: keys with `admin`; without a keys file, no one.
ADMIN = "the key lacks the `admin` scope, or no keys are configured (admin endpoints are then closed)"


class ModelInfo(BaseModel):
    model: str = Field(description="the model's name in the store (a task's default model is named after it)")
    task: str
    version: int
    metrics: dict[str, Any] = Field(description="the version's test-split figures, as its manifest records them")
    signature: dict[str, Any] = Field(description="the SavedModel's inputs and outputs")
    created: str | None = Field(description="when the version was exported (ISO 8601)")
    backend: str = Field(description="`inprocess` or `tfserving`")
    calibration: dict[str, Any] | None = Field(
        None, description="how the model's scores become probabilities, and its default answer threshold (QA)"
    )
    decoding: dict[str, Any] | None = Field(
        None, description="how the answer is chosen among the decoded spans (QA: `nested_answer_ratio`)"
    )


class ServedModelInfo(BaseModel):
    model: str
    task: str
    default: bool = Field(description="whether it answers the task's requests that name no model")
    serving_version: int | None = Field(description="what answers callers that name no version, without a traffic split")
    loaded_versions: list[int]
    labels: dict[str, int] = Field(description="label → version, as the model store holds them")
    traffic: dict[str, int] = Field(description="version → weight of the traffic split ({}: none)")


class ModelsResponse(BaseModel):
    models: list[ModelInfo] = Field(description="every loaded version")
    served: list[ServedModelInfo] = Field(description="per model: its versions, labels and traffic split")
    load_errors: dict[str, str] = Field(description="per model, why a version of it on disk failed to load")


# Who may call: anyone without a keys file; with one, any valid key.
@router.get(
    "/v1/models",
    summary="Loaded models: their versions, labels, traffic split, test metrics and signatures",
    dependencies=[Depends(require(None))],
    response_model=ModelsResponse,
    responses={status: {"model": ErrorResponse, "description": text} for status, text in ACCESS_ERRORS.items()},
)
def list_models(registry: ModelRegistry = Depends(get_registry)) -> ModelsResponse:
    return ModelsResponse(
        models=[ModelInfo(**m.describe()) for m in registry.loaded()],
        served=[ServedModelInfo(**m) for m in registry.models()],
        load_errors=public_load_errors(registry),
    )


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}, {"version": 2}]})

    version: integer(gt=0) | None = Field(None, description="version to serve; default: the highest on disk")


class LoadFailure(ErrorResponse):
    serving_version: int | None = Field(description="the version still serving")


class ReloadResponse(BaseModel):
    model: str
    task: str
    version: int = Field(description="the version now serving")
    previous_version: int | None


class VersionResponse(BaseModel):
    model: str
    version: int
    loaded: bool = Field(description="whether the version is loaded now")
    still_in_flight: int = Field(0, description="unload: requests still holding the version when the wait ended")


LOAD_ERRORS = {
    **documented_errors({403: ADMIN, 404: "no such model or version on disk"}),
    409: {
        "model": LoadFailure,
        "description": "the version failed to load or to answer its warm-up inputs, or loading it would pass "
        "`APP_MEMORY_LIMIT_MB` (the message gives the estimate); what served before still serves",
    },
}


def _audit_fields(caller: Caller, action: str, **details) -> dict:
    """What the audit log records of an admin action: who, from where, what."""
    return {"key_id": caller.key_id, "address": caller.address, "action": action, **details}


async def _load(
    action: str, model: str, version: int | None, registry: ModelRegistry, metrics: Metrics, caller: Caller, beside: bool
):
    """Reload (``beside=False``: the version serves) or load beside, audited; a failure is a 409
    with the version still serving."""
    audit = _audit_fields(caller, action, model=model, version=version)
    task = registry.discover().get(model)  # each call reads the store's manifests: once
    if task is None:
        audit_log.info("admin action", extra={**audit, "outcome": "not_found"})
        raise HTTPException(404, f"no versions of model {model!r} on disk")
    try:
        loaded = await run_in_threadpool(registry.add if beside else registry.load, model, version)
    except FileNotFoundError as exc:
        metrics.reloads.labels(task, "not_found").inc()
        audit_log.info("admin action", extra={**audit, "outcome": "not_found"})
        raise HTTPException(404, without_paths(str(exc))) from None
    except Exception as exc:  # noqa: BLE001 - any failure leaves what served before serving
        metrics.reloads.labels(task, "failed").inc()
        if not isinstance(exc, Refused):
            log.exception("load failed", extra={"model": model, "version": version})
        audit_log.info("admin action", extra={**audit, "outcome": "failed"})
        serving = registry.get(model)
        reason = str(exc) if isinstance(exc, Refused) else without_paths(f"{type(exc).__name__}: {exc}")
        content = error_body(f"{action}_failed", f"version {version or 'latest'} of {model} was not loaded: {reason}")
        content["serving_version"] = serving.version if serving else None
        return JSONResponse(status_code=409, content=content)
    metrics.reloads.labels(task, "succeeded").inc()
    audit_log.info("admin action", extra={**audit, "version": loaded.version, "outcome": "succeeded"})
    await run_in_threadpool(settle_heap)
    return loaded


@router.post(
    "/v1/models/{model}/reload",
    summary="Load a version beside the serving one and switch to it if it passes a smoke check",
    response_model=ReloadResponse,
    responses=LOAD_ERRORS,
)
async def reload(
    model: str = ModelName,
    body: ReloadRequest | None = Body(None),
    registry: ModelRegistry = Depends(get_registry),
    metrics: Metrics = Depends(get_metrics),
    caller: Caller = Depends(require("admin")),  # who may call: keys with `admin`
):
    previous = registry.get(model)
    loaded = await _load("reload", model, body.version if body else None, registry, metrics, caller, beside=False)
    if isinstance(loaded, JSONResponse):
        return loaded
    return ReloadResponse(model=model, task=loaded.task, version=loaded.version, previous_version=previous.version if previous else None)


@router.post(
    "/v1/models/{model}/versions/{version}/load",
    summary="Load a version beside the loaded ones (requests reach it by naming it, a label or the traffic split)",
    response_model=VersionResponse,
    responses=LOAD_ERRORS,
)
async def load_version(
    version: int = Path(gt=0),
    model: str = ModelName,
    registry: ModelRegistry = Depends(get_registry),
    metrics: Metrics = Depends(get_metrics),
    caller: Caller = Depends(require("admin")),  # who may call: keys with `admin`
):
    loaded = await _load("load", model, version, registry, metrics, caller, beside=True)
    if isinstance(loaded, JSONResponse):
        return loaded
    return VersionResponse(model=model, version=version, loaded=True)


def _admin_errors(conflict: str, missing: str) -> dict:
    return documented_errors({403: ADMIN, 404: missing, 409: conflict})


@contextmanager
def _audited(caller: Caller, action: str, **details) -> Iterator[dict]:
    """Write the admin action and its outcome to the audit log (the block may add details to the
    dict it gets); a missing version becomes a 404, refusals pass on to their handlers."""
    audit = _audit_fields(caller, action, **details)
    try:
        yield audit
    except FileNotFoundError as exc:
        audit_log.info("admin action", extra={**audit, "outcome": "not_found"})
        raise HTTPException(404, without_paths(str(exc))) from None
    except (NotServed, Refused):
        audit_log.info("admin action", extra={**audit, "outcome": "refused"})
        raise
    audit_log.info("admin action", extra={**audit, "outcome": "succeeded"})


@router.post(
    "/v1/models/{model}/versions/{version}/unload",
    summary="Stop answering with a version, and release it once its requests finish",
    response_model=VersionResponse,
    responses=_admin_errors(
        "the only loaded version of the model, or one the traffic split sends callers to", "the version is not loaded"
    ),
)
async def unload_version(
    version: int = Path(gt=0),
    model: str = ModelName,
    registry: ModelRegistry = Depends(get_registry),
    caller: Caller = Depends(require("admin")),  # who may call: keys with `admin`
) -> VersionResponse:
    with _audited(caller, "unload", model=model, version=version) as audit:
        audit["still_in_flight"] = remaining = await run_in_threadpool(registry.unload, model, version)
    await run_in_threadpool(settle_heap)
    return VersionResponse(model=model, version=version, loaded=False, still_in_flight=remaining)


class LabelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": 6}]})

    version: integer(gt=0) = Field(description="a version of the model in the store (loaded or not)")


class LabelsResponse(BaseModel):
    model: str
    labels: dict[str, int]


@router.put(
    "/v1/models/{model}/labels/{label}",
    summary="Point a label (e.g. `stable`) at a version; kept in the model store, so replicas and restarts agree",
    response_model=LabelsResponse,
    responses=_admin_errors("the model store is not writable here", "no such model loaded, or no such version on disk"),
)
async def set_label(
    body: LabelRequest,
    label: str = Path(pattern=NAME_PATTERN),
    model: str = ModelName,
    registry: ModelRegistry = Depends(get_registry),
    caller: Caller = Depends(require("admin")),  # who may call: keys with `admin`
) -> LabelsResponse:
    with _audited(caller, "label", model=model, label=label, version=body.version):
        labels = await run_in_threadpool(registry.set_label, model, label, body.version)
    return LabelsResponse(model=model, labels=labels)


class TrafficRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"weights": {"5": 90, "6": 10}}, {"weights": {}}]}
    )

    weights: dict[int, integer(ge=0, le=1_000_000)] = Field(
        max_length=64, description="version → weight among the loaded versions; {} ends the split",
        json_schema_extra={"propertyNames": {"pattern": "^[1-9][0-9]{0,8}$"}},
    )


class TrafficResponse(BaseModel):
    model: str
    weights: dict[str, int]


@router.put(
    "/v1/models/{model}/traffic",
    summary="Split the callers that name no version between loaded versions by weight, sticky per caller",
    response_model=TrafficResponse,
    responses=_admin_errors("a weighted version is not loaded, or every weight is 0", "no such model loaded"),
)
async def set_traffic(
    body: TrafficRequest,
    model: str = ModelName,
    registry: ModelRegistry = Depends(get_registry),
    caller: Caller = Depends(require("admin")),  # who may call: keys with `admin`
) -> TrafficResponse:
    with _audited(caller, "traffic", model=model, weights={str(v): w for v, w in body.weights.items()}):
        weights = registry.set_traffic(model, body.weights)
    return TrafficResponse(model=model, weights={str(v): w for v, w in weights.items()})
