"""Python client for the model-serving API (NER, reading comprehension, headlines, spectra).

>>> from model_serving_client import Client
>>> with Client("http://127.0.0.1:8000") as client:
...     client.ner("李鹏在北京").entities
"""

from model_serving_client._client import AsyncClient, Client
from model_serving_client._core import encode_flux
from model_serving_client.errors import (
    APIError, AuthenticationFailed, BadRequest, ConnectionFailed, GatewayTimeout, InvalidRequest, NotFound,
    PermissionDenied, RateLimited, ReloadFailed, RequestTimedOut, RequestTooLarge, ServerError, ServiceUnavailable,
    ServingError,
)

__version__ = "0.1.0"
__all__ = [
    "APIError", "AsyncClient", "AuthenticationFailed", "BadRequest", "Client", "ConnectionFailed", "GatewayTimeout",
    "InvalidRequest", "NotFound", "PermissionDenied", "RateLimited", "ReloadFailed", "RequestTimedOut",
    "RequestTooLarge", "ServerError", "ServiceUnavailable", "ServingError", "encode_flux",
]
