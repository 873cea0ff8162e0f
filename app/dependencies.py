"""Dependencies injected into the routes.

They are ``async`` so FastAPI calls them on the event loop instead of sending each one to
its thread pool (a thread hop per request for a dictionary lookup).
"""

from __future__ import annotations

from fastapi import Request

from app.engine import InferenceEngine
from app.metrics import Metrics
from app.registry import ModelRegistry
from app.upload_work import UploadWork


async def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def get_engine(request: Request) -> InferenceEngine:
    return request.app.state.engine


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_upload_work(request: Request) -> UploadWork:
    return request.app.state.upload_work
