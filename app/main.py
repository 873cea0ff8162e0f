"""Builds the FastAPI application: ``uvicorn app.main:app``."""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.middleware.cors import CORSMiddleware  # noqa: E402
from starlette.concurrency import run_in_threadpool  # noqa: E402

from app.access import AccessControl  # noqa: E402
from app.batching import Arrivals  # noqa: E402
from app.engine import InferenceEngine  # noqa: E402
from app.errors import install_error_handlers  # noqa: E402
from app.logging import configure_logging  # noqa: E402
from app.metrics import Metrics  # noqa: E402
from app.middleware import BodySizeLimitMiddleware, RequestContextMiddleware, SecurityHeadersMiddleware  # noqa: E402
from app.registry import ModelRegistry, settle_heap  # noqa: E402
from app.routes import demo, headline, health, models, ner, qa, spectra  # noqa: E402
from app.settings import Settings, get_settings  # noqa: E402
from app.tfserving import TFServingClient  # noqa: E402
from app.upload_work import UploadWork  # noqa: E402

TASK_ROUTES = (ner, qa, spectra, headline)  # each has TASK and build_router(settings); warm_up() optional


log = logging.getLogger("app.main")


def configure_tensorflow(intra_op_threads: int) -> None:
    """Threads per TensorFlow op (0: TensorFlow's choice). Only takes effect before TensorFlow's
    runtime starts, i.e. in a fresh server process; afterwards (tests that build several apps)
    the running setting stays."""
    if not intra_op_threads:
        return
    # The variable sizes the threadpools the kernels use (read when the runtime starts); the
    # config call alone left them at one thread per core (measured: no change in CPU per request).
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(intra_op_threads)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
    except RuntimeError:
        log.info("TensorFlow is already running; intra-op threads stay at %s", tf.config.threading.get_intra_op_parallelism_threads())


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    configure_tensorflow(settings.tf_intra_op_threads)
    tfserving = (
        TFServingClient(settings.tfserving_url, settings.tfserving_timeout_s, settings.tfserving_retries)
        if "tfserving" in settings.backends.values()
        else None
    )
    metrics = Metrics()
    registry = ModelRegistry(
        settings.model_root, settings.backends, tfserving, serve_versions=settings.serve_versions,
        memory_limit_mb=settings.memory_limit_mb, observe=metrics.observe_model_request,
    )
    arrivals = Arrivals()  # the middleware counts requests in the server; the batchers read it
    engine = InferenceEngine(registry, settings.batching, settings.request_timeout_s, metrics, arrivals)
    for module in TASK_ROUTES:
        engine.register(module.TASK)
    metrics.watch(registry, engine.queue_depths)
    upload_work = UploadWork(settings.upload_workers, settings.upload_queue, settings.request_timeout_s)
    access = AccessControl(settings)
    if access.open:
        log.warning("no API keys file (APP_API_KEYS_FILE): predictions are open to anyone who can connect, admin endpoints closed")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(registry.load_all)  # warm-up included
        for module in TASK_ROUTES:  # and the Python side of preprocessing (jieba's dictionary)
            if hasattr(module, "warm_up"):
                await run_in_threadpool(module.warm_up)
        # FastAPI builds a router's request and response models on its first request (0.2 s with
        # the event loop held, measured for the spectra routes); building the schema builds them now.
        app.openapi()
        settle_heap()
        await engine.start()
        yield
        # uvicorn stops taking connections and waits for open requests before this
        # point; stopping the engine then answers anything still queued.
        await engine.stop()
        upload_work.close()
        if tfserving is not None:
            tfserving.close()

    app = FastAPI(
        title="Model serving",
        version="0.1.0",
        description="Chinese NER, reading comprehension (QA), spectrum classification and headline generation served from TensorFlow SavedModels.",
        lifespan=lifespan,
        # Swagger UI and ReDoc load their scripts from a CDN: a deployment turns them off
        # (APP_DOCS=false); /openapi.json stays, for clients and code generators.
        docs_url="/docs" if settings.docs else None,
        redoc_url="/redoc" if settings.docs else None,
    )
    app.state.registry = registry
    app.state.engine = engine
    app.state.upload_work = upload_work
    app.state.metrics = metrics
    app.state.settings = settings
    app.state.access = access
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    if settings.cors_origins:  # none by default: browsers on other origins may not call the API
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "X-Request-ID"],
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, arrivals=arrivals)
    app.include_router(health.router)
    app.include_router(models.router)
    for module in TASK_ROUTES:  # the request limits are this app's settings
        app.include_router(module.build_router(settings))
    app.include_router(demo.router)
    app.mount("/demo", demo.static_files, name="demo")
    return app


app = create_app()
