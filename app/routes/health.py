"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.access import AccessRoute, require
from app.dependencies import get_metrics, get_registry
from app.errors import ACCESS_ERRORS, ErrorResponse, error_body, public_load_errors
from app.metrics import Metrics
from app.registry import ModelRegistry

# Who may call: the probes, anyone (orchestrators call them); /metrics, anyone without a keys
# file and keys with `metrics` with one.
router = APIRouter(tags=["service"], route_class=AccessRoute)


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Every model on disk is loaded and serving")
def readyz(registry: ModelRegistry = Depends(get_registry)) -> JSONResponse:
    loaded = {m["model"]: m["serving_version"] for m in registry.models() if m["serving_version"] is not None}
    errors = public_load_errors(registry)
    missing = [model for model in registry.discover() if model not in loaded]
    if loaded and not missing:
        return JSONResponse({"status": "ready", "models": loaded})
    message = "models not loaded: " + (", ".join(missing) or "none on disk")
    body = error_body("not_ready", message)
    body["models"], body["load_errors"] = loaded, errors
    return JSONResponse(body, status_code=503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    dependencies=[Depends(require("metrics"))],
    responses={status: {"model": ErrorResponse, "description": text} for status, text in ACCESS_ERRORS.items()},
)
async def metrics(metrics: Metrics = Depends(get_metrics)) -> Response:
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
