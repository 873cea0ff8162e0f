"""The model catalogue and hot reload."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from app.access import AccessRoute, Caller, audit_log, require
from app.dependencies import get_metrics, get_registry
from app.errors import ACCESS_ERRORS, ErrorResponse, documented_errors, error_body, public_load_errors, without_paths
from app.metrics import Metrics
from app.registry import ModelRegistry, settle_heap
from app.validation import integer

router = APIRouter(tags=["models"], route_class=AccessRoute)
log = logging.getLogger("app.models")


class ModelInfo(BaseModel):
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


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    load_errors: dict[str, str] = Field(description="per task, why its model on disk is not serving")


# Who may call: anyone without a keys file; with one, any valid key.
@router.get(
    "/v1/models",
    summary="Loaded models: task, version, test metrics and signature",
    dependencies=[Depends(require(None))],
    response_model=ModelsResponse,
    responses={status: {"model": ErrorResponse, "description": text} for status, text in ACCESS_ERRORS.items()},
)
def list_models(registry: ModelRegistry = Depends(get_registry)) -> ModelsResponse:
    return ModelsResponse(
        models=[ModelInfo(**m.describe()) for m in registry.loaded()], load_errors=public_load_errors(registry)
    )


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}, {"version": 2}]})

    version: integer(gt=0) | None = Field(None, description="version to serve; default: the highest on disk")


class ReloadFailure(ErrorResponse):
    serving_version: int | None = Field(description="the version still serving")


class ReloadResponse(BaseModel):
    task: str
    version: int = Field(description="the version now serving")
    previous_version: int | None


@router.post(
    "/v1/models/{task}/reload",
    summary="Load a version beside the serving one and switch to it if it passes a smoke check",
    response_model=ReloadResponse,
    responses={
        **documented_errors({
            403: "the key lacks the `admin` scope, or no keys are configured (admin endpoints are then closed)",
            404: "no such task or version on disk",
        }),
        409: {
            "model": ReloadFailure,
            "description": "the version failed to load or to answer its warm-up inputs; the old one still serves",
        },
    },
)
async def reload(
    task: str,
    body: ReloadRequest | None = Body(None),
    registry: ModelRegistry = Depends(get_registry),
    metrics: Metrics = Depends(get_metrics),
    caller: Caller = Depends(require("admin")),  # who may call: keys with `admin`
):
    version = body.version if body else None
    audit = {"key_id": caller.key_id, "address": caller.address, "action": "reload", "task": task, "version": version}
    if task not in registry.discover():
        audit_log.info("admin action", extra={**audit, "outcome": "not_found"})
        raise HTTPException(404, f"no model versions of task {task!r} on disk")
    previous = registry.get(task)
    try:
        model = await run_in_threadpool(registry.load, task, version)
    except FileNotFoundError as exc:
        metrics.reloads.labels(task, "not_found").inc()
        audit_log.info("admin action", extra={**audit, "outcome": "not_found"})
        raise HTTPException(404, without_paths(str(exc))) from None
    except Exception as exc:  # noqa: BLE001 - any failure leaves the old version serving
        metrics.reloads.labels(task, "failed").inc()
        log.exception("reload failed", extra={"task": task, "version": version})
        audit_log.info("admin action", extra={**audit, "outcome": "failed"})
        serving = registry.get(task)
        reason = without_paths(f"{type(exc).__name__}: {exc}")
        content = error_body("reload_failed", f"version {version or 'latest'} of {task} failed to load: {reason}")
        content["serving_version"] = serving.version if serving else None
        return JSONResponse(status_code=409, content=content)
    metrics.reloads.labels(task, "succeeded").inc()
    audit_log.info("admin action", extra={**audit, "version": model.version, "outcome": "succeeded"})
    await run_in_threadpool(settle_heap)
    return ReloadResponse(task=task, version=model.version, previous_version=previous.version if previous else None)
