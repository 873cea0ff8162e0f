"""Whole-API fuzzing: schemathesis generates valid and invalid requests for every operation in the
app's OpenAPI schema and checks that none gets a 5xx and every response matches its schema.

The requests go to the app with the bundled models loaded (the session's ``client``); the
number of examples per operation is bounded so the suite stays fast (``FUZZ_EXAMPLES=300`` for a
deeper run).
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, assume, settings
from schemathesis.checks import positive_data_acceptance

from app.main import app

schema = schemathesis.openapi.from_dict(app.openapi())

# Operations whose schema-valid requests may still get a 422, for rules JSON Schema cannot state.
# Every other operation must accept whatever its schema allows.
RULES_BEYOND_THE_SCHEMA = {
    "/v1/spectra": "wavelengths strictly increasing and overlapping the model grid; at most half the pixels masked",
    "/v1/headline": "num_candidates <= beam_width",
    "/v1/spectra/fits": "each file a FITS spectrum in a layout the service reads",
}


@schema.parametrize()
@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 30)), deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, client):
    request = client.build_request(**case.as_transport_kwargs())
    try:
        request.read()  # materialise a multipart body, so the checks can read it back after sending
    except (AttributeError, TypeError):
        assume(False)  # schemathesis made a file part that is no file (an integer): not a request anyone can send
    response = client.send(request)
    excluded = [positive_data_acceptance] if case.operation.path in RULES_BEYOND_THE_SCHEMA else []
    case.validate_response(response, excluded_checks=excluded)
