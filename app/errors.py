"""One JSON error shape for every 4xx/5xx: ``{"error": {"code", "message", "fields": [...]}}``."""

from __future__ import annotations

import logging
import re
from typing import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.batching import Closed, DeadlineExceeded, QueueFull
from app.engine import ClientDisconnected
from app.registry import ModelRegistry, ModelUnavailable, NotServed, Refused
from app.tfserving import TFServingError

log = logging.getLogger("app.errors")


BODY_FIELD = {"field": "body", "message": "request body too large"}
SLOW_BODY_FIELD = {"field": "body", "message": "not received in time"}
INVALID_JSON_FIELD = {"field": "body", "message": "not valid JSON"}


class ErrorField(BaseModel):
    field: str = Field(description="dotted path of the offending field, e.g. `texts.3` or `body`")
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. `invalid_request`, `overloaded`")
    message: str
    fields: list[ErrorField]


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx response."""

    error: ErrorDetail


ACCESS_ERRORS = {
    401: "no API key, or an unknown one (when the service has keys configured); see `WWW-Authenticate`",
    403: "the key lacks the scope this endpoint needs",
    429: "over the caller's rate limit, or too many failed authentications from this address (see `Retry-After`)",
}


def documented_errors(descriptions: dict[int, str]) -> dict:
    """OpenAPI ``responses`` entries for the given status codes plus the errors any request
    with a body can get (malformed JSON, a body over the size limit or too slow, a failed
    validation, and the access errors)."""
    common = {
        400: "the body is not valid JSON",
        408: "the body did not arrive within `APP_BODY_TIMEOUT_S`",
        413: "the body is larger than `APP_MAX_BODY_BYTES`",
        422: "invalid request; `error.fields` names each offending field",
        **ACCESS_ERRORS,
    }
    return {status: {"model": ErrorResponse, "description": text} for status, text in {**common, **descriptions}.items()}


def error_responses(model: str, invalid: str = "invalid request; `error.fields` names each offending field") -> dict:
    """The OpenAPI ``responses`` entries for the errors every task route can give."""
    return documented_errors({
        404: "the `model`, `version` or `version_label` named is not loaded (the message says what is)",
        422: invalid,
        502: "the model's TensorFlow Serving backend failed or could not be reached (backend tfserving only)",
        503: f"no {model} model is loaded, or its queue is full (see `Retry-After`)",
        504: "no answer within the request timeout",
    })


_PATH = re.compile(r"""(?:[A-Za-z]:)?(?:[/\\][^\s'"/\\:]+){2,}[/\\]?""")


def without_paths(text: str) -> str:
    """``text`` with filesystem paths replaced by ``<path>``: messages that reach callers (load
    failures, a missing version) must not map the server's disk."""
    return _PATH.sub("<path>", text)


def public_load_errors(registry: ModelRegistry) -> dict[str, str]:
    """The registry's load failures per model, as callers may see them (``/readyz``, ``/v1/models``)."""
    return {task: without_paths(error) for task, error in registry.errors().items()}


def error_body(code: str, message: str, fields: list[dict] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or []}}


def _field_name(loc: tuple) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def _invalid_json(message: str) -> JSONResponse:
    return JSONResponse(status_code=400, content=error_body("invalid_json", message, [INVALID_JSON_FIELD]))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    fields = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return _invalid_json(f"request body is not valid JSON: {err.get('ctx', {}).get('error', err['msg'])}")
        message = err["msg"].removeprefix("Value error, ")
        if tuple(err["loc"]) == ("body",) and isinstance(err.get("input"), (bytes, str)):
            # A JSON endpoint got a body it did not parse as JSON: the content type was not JSON
            # (e.g. curl -d without -H). Not guessed: a JSON API that takes form posts can be
            # driven by any web page a local user visits (the reason Elasticsearch stopped).
            content_type = request.headers.get("content-type") or "none"
            message = f"must be JSON sent with 'Content-Type: application/json' (got {content_type})"
        fields.append({"field": _field_name(tuple(err["loc"])), "message": message})
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return JSONResponse(status_code=422, content=error_body("invalid_request", summary, fields))


def _unparsed_body(exc: StarletteHTTPException) -> str | None:
    """Why FastAPI could not parse a JSON body, for the errors it reports only as a bare 400
    ("There was an error parsing the body"): bytes that are not UTF-8, or nesting too deep for
    the parser."""
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return f"request body is not valid UTF-8 (byte {cause.start})"
    if isinstance(cause, RecursionError):
        return "request body is nested too deeply to parse"
    return None


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    unparsed = _unparsed_body(exc) if exc.status_code == 400 else None
    if unparsed:
        return _invalid_json(unparsed)
    code = {
        401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
        413: "body_too_large", 429: "rate_limited", 503: "unavailable",
    }.get(
        exc.status_code, "http_error"
    )
    fields = {413: [BODY_FIELD], 408: [SLOW_BODY_FIELD]}.get(exc.status_code, [])
    return JSONResponse(
        status_code=exc.status_code, content=error_body(code, str(exc.detail), fields), headers=exc.headers
    )


def _engine_error(status: int, code: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, QueueFull) else None
        return JSONResponse(status_code=status, content=error_body(code, str(exc)), headers=headers)

    return handler


# 499: nginx's "client closed request"; nobody reads it, but the access log and metrics do.
ENGINE_ERRORS = {
    QueueFull: (503, "overloaded"),
    Closed: (503, "shutting_down"),
    ModelUnavailable: (503, "unavailable"),
    NotServed: (404, "not_served"),
    Refused: (409, "refused"),
    DeadlineExceeded: (504, "deadline_exceeded"),
    TFServingError: (502, "model_server_error"),
    ClientDisconnected: (499, "client_closed_request"),
}


async def _unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    log.exception("unhandled error", extra={"request_id": request_id, "path": request.url.path})
    # Starlette sends this from outside every middleware, so the id header is added here.
    return JSONResponse(
        status_code=500,
        content=error_body("internal_error", f"internal error (request id {request_id})"),
        headers={"X-Request-ID": request_id} if request_id else None,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for exc_type, (status, code) in ENGINE_ERRORS.items():
        app.add_exception_handler(exc_type, _engine_error(status, code))
    app.add_exception_handler(Exception, _unhandled_error)
