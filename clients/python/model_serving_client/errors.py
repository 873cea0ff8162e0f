"""One exception class per kind of failure; each API error carries the service's ``code``,
``message`` and ``fields`` (``{"error": {"code", "message", "fields"}}`` on every 4xx/5xx)."""

from __future__ import annotations

from dataclasses import dataclass


class ServingError(Exception):
    """Anything this client raises."""


class ConnectionFailed(ServingError):
    """The service could not be reached, or the connection broke (after the retries)."""


@dataclass(frozen=True)
class ErrorField:
    field: str
    """Dotted path of the offending field, e.g. ``texts.3`` or ``files.0``."""
    message: str


class APIError(ServingError):
    """The service answered with an error status."""

    status: int = 0

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[ErrorField] | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.fields = fields or []
        self.request_id = request_id
        self.retry_after = retry_after


class BadRequest(APIError):
    """400: the body is not valid JSON (or not a valid form)."""


class AuthenticationFailed(APIError):
    """401: no API key, or an unknown one."""


class PermissionDenied(APIError):
    """403: the key lacks the scope the endpoint needs."""


class NotFound(APIError):
    """404: no such endpoint, task or model version."""


class RequestTimedOut(APIError):
    """408: the request body did not arrive in time."""


class ReloadFailed(APIError):
    """409: a model version failed to load (the previous one still serves), or an admin action
    was refused (unloading the only version, a traffic split over a version not loaded)."""


class RequestTooLarge(APIError):
    """413 or 431: the body or the headers are over the service's limit."""


class InvalidRequest(APIError):
    """422: a field is invalid; :attr:`fields` names each one."""


class RateLimited(APIError):
    """429: over the key's rate limit; :attr:`retry_after` says when to try again."""


class ServiceUnavailable(APIError):
    """503: no model for the task is loaded, or its queue is full (:attr:`retry_after`)."""


class GatewayTimeout(APIError):
    """504: the service did not answer within its request timeout."""


class ServerError(APIError):
    """Any other 5xx."""


ERRORS_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    408: RequestTimedOut,
    409: ReloadFailed,
    413: RequestTooLarge,
    422: InvalidRequest,
    429: RateLimited,
    431: RequestTooLarge,
    503: ServiceUnavailable,
    504: GatewayTimeout,
}


def error_class(status: int) -> type[APIError]:
    if status in ERRORS_BY_STATUS:
        return ERRORS_BY_STATUS[status]
    return ServerError if status >= 500 else APIError
