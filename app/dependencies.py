"""Dependencies injected into the routes."""

from __future__ import annotations

from typing import Callable

from fastapi import HTTPException, Request

from app.registry import LoadedModel, ModelRegistry


def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def serving_model(task: str) -> Callable[[Request], LoadedModel]:
    """A dependency yielding the model now serving ``task``, or 503 when none is loaded."""

    def dependency(request: Request) -> LoadedModel:
        model = get_registry(request).get(task)
        if model is None:
            raise HTTPException(503, f"no {task} model is loaded")
        return model

    return dependency
