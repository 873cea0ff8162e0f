"""Whole-API fuzzing: schemathesis generates valid and invalid requests for every operation in the
app's OpenAPI schema and checks that none gets a 5xx and every response matches its schema.

The requests go to the app with the bundled models loaded (the session's ``client``, no keys
configured), then to the same app with a keys file, as a caller holding a key with every scope;
the number of examples per operation is bounded so the suite stays fast (``FUZZ_EXAMPLES=300``
for a deeper run).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, settings
from schemathesis.checks import ignored_auth, negative_data_rejection, positive_data_acceptance

from app.main import app, create_app
from app.settings import Settings
from tests.conftest import BUNDLED_MODELS, write_keys_file

pytestmark = pytest.mark.slow  # the slow tier (`make test-slow`): fuzzing

schema = schemathesis.openapi.from_dict(app.openapi())

# Operations whose schema-valid requests may still get a 422, for rules JSON Schema cannot state.
# Every other operation must accept whatever its schema allows.
RULES_BEYOND_THE_SCHEMA = {
    "/v1/spectra": "wavelengths strictly increasing and overlapping the model grid; at most half the pixels masked",
    "/v1/headline": "num_candidates <= beam_width; text with at least one Chinese character",
    "/v1/spectra/fits": "each file a FITS spectrum in a layout the service reads",
}


EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 30))


@pytest.fixture(scope="module")
def keyed_client(tmp_path_factory):
    """The bundled models behind a keys file; the client sends a key with every scope."""
    from fastapi.testclient import TestClient

    path = tmp_path_factory.mktemp("keys") / "keys.yaml"
    keys = write_keys_file(path, {"fuzzer": ["predict", "admin", "metrics"]})
    # Schemathesis also sends made-up keys (its ignored-auth check): they must get 401, not the
    # 429 that repeated failures from one address earn.
    settings = Settings(model_root=BUNDLED_MODELS, api_keys_file=path, auth_failure_limit="100000/minute")
    with TestClient(create_app(settings)) as client:
        yield client, {"Authorization": f"Bearer {keys['fuzzer']}"}


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, client):
    # Without a keys file the service is open by design, though the schema declares the schemes
    # a keyed deployment enforces (tests/test_security.py checks they are enforced).
    _check(case, client, ignored_auth)


@schema.parametrize()
@settings(max_examples=max(1, EXAMPLES // 2), deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema_for_a_caller_with_a_key(case, keyed_client):
    client, auth = keyed_client
    case.headers = {**(case.headers or {}), **auth}
    # The ignored-auth check replays requests over the network, which this in-process app is not
    # on; tests/test_security.py tries the keys instead.
    _check(case, client, ignored_auth)


def _check(case, client, *skipped_checks) -> None:
    request = client.build_request(**case.as_transport_kwargs())
    try:
        request.read()  # materialise a multipart body, so the checks can read it back after sending
    except (AttributeError, TypeError):
        assume(False)  # schemathesis made a file part that is no file (an integer): not a request anyone can send
    response = client.send(request)
    excluded = [*skipped_checks, *([positive_data_acceptance] if case.operation.path in RULES_BEYOND_THE_SCHEMA else [])]
    if response.status_code == 413:  # a body over the size limit is rejected before it is parsed: a
        excluded.append(negative_data_rejection)  # right rejection, though not among the codes the check expects
    case.validate_response(response, excluded_checks=excluded)
