"""Dependencies injected into the routes."""

from __future__ import annotations

from fastapi import Request

from app.engine import InferenceEngine
from app.metrics import Metrics
from app.registry import ModelRegistry


def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def get_engine(request: Request) -> InferenceEngine:
    return request.app.state.engine


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics
