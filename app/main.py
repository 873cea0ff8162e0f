"""Builds the FastAPI application: ``uvicorn app.main:app``."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fastapi import FastAPI  # noqa: E402
from starlette.concurrency import run_in_threadpool  # noqa: E402

from app.errors import install_error_handlers  # noqa: E402
from app.logging import configure_logging  # noqa: E402
from app.middleware import BodySizeLimitMiddleware, RequestContextMiddleware  # noqa: E402
from app.registry import ModelRegistry  # noqa: E402
from app.routes import health, ner, spectra  # noqa: E402
from app.settings import Settings, get_settings  # noqa: E402


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    registry = ModelRegistry(settings.model_root)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(registry.load_all)
        yield

    app = FastAPI(
        title="Model serving",
        version="0.1.0",
        description="Chinese NER and spectrum classification (QA and headlines to come) served from TensorFlow SavedModels.",
        lifespan=lifespan,
    )
    app.state.registry = registry
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    app.include_router(ner.router)
    app.include_router(spectra.router)
    return app


app = create_app()
