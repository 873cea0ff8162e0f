"""The model catalogue and hot reload."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from app.dependencies import get_metrics, get_registry
from app.errors import ErrorResponse, documented_errors, error_body
from app.metrics import Metrics
from app.registry import ModelRegistry, settle_heap
from app.validation import integer

router = APIRouter(tags=["models"])
log = logging.getLogger("app.models")


@router.get("/v1/models", summary="Loaded models: task, version, test metrics and signature")
def list_models(registry: ModelRegistry = Depends(get_registry)) -> dict[str, Any]:
    return {"models": [m.describe() for m in registry.loaded()], "load_errors": registry.errors()}


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
        **documented_errors({404: "no such task or version on disk"}),
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
):
    if task not in registry.discover():
        raise HTTPException(404, f"no model versions of task {task!r} on disk")
    previous = registry.get(task)
    version = body.version if body else None
    try:
        model = await run_in_threadpool(registry.load, task, version)
    except FileNotFoundError as exc:
        metrics.reloads.labels(task, "not_found").inc()
        raise HTTPException(404, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - any failure leaves the old version serving
        metrics.reloads.labels(task, "failed").inc()
        log.exception("reload failed", extra={"task": task, "version": version})
        serving = registry.get(task)
        content = error_body("reload_failed", f"version {version or 'latest'} of {task} failed to load: {type(exc).__name__}: {exc}")
        content["serving_version"] = serving.version if serving else None
        return JSONResponse(status_code=409, content=content)
    metrics.reloads.labels(task, "succeeded").inc()
    await run_in_threadpool(settle_heap)
    return ReloadResponse(task=task, version=model.version, previous_version=previous.version if previous else None)
