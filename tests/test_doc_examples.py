"""The requests of the README and of docs/api.md, sent to the bundled models: each answer must be
the one printed under it (numbers to their printed precision), so a new version cannot leave stale
examples behind."""

from __future__ import annotations

import json
import math
import re
import shlex

import pytest

from tests.conftest import REPO

BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


PAGES = [REPO / "README.md", REPO / "docs" / "api.md"]


def examples(page) -> list[tuple[list[str], dict]]:
    """Each ``curl`` command of ``page`` with the JSON block right after it."""
    blocks = BLOCK.findall(page.read_text())
    pairs = []
    for (language, body), (next_language, answer) in zip(blocks, blocks[1:]):
        if language == "sh" and body.lstrip().startswith("curl") and next_language == "json":
            pairs.append((shlex.split(body.replace("\\\n", " ")), json.loads(answer)))
    return pairs


def request_path(argv: list[str]) -> str:
    """The path a ``curl`` command requests (``/v1/qa``)."""
    return "/" + next(a for a in argv if a.startswith("localhost:")).split("/", 1)[1]


def send(client, argv: list[str]):
    """The request a ``curl`` command makes (``-d`` JSON or ``-F files=@…``), sent to ``client``."""
    path = request_path(argv)
    options = dict(zip(argv, argv[1:]))  # each argument with the one after it
    if "-d" in options:
        return client.post(path, content=options["-d"], headers={"content-type": "application/json"})
    field, _, file = options["-F"].partition("=@")
    with open(REPO / file, "rb") as f:
        return client.post(path, files=[(field, (file.rsplit("/", 1)[-1], f.read()))])


def differences(printed, answered, where: str = "") -> list[str]:
    if isinstance(printed, dict) and isinstance(answered, dict):
        if printed.keys() != answered.keys():
            return [f"{where or '/'}: fields {sorted(printed)} printed, {sorted(answered)} answered"]
        return [d for key in printed for d in differences(printed[key], answered[key], f"{where}/{key}")]
    if isinstance(printed, list) and isinstance(answered, list) and len(printed) == len(answered):
        return [d for i, (p, a) in enumerate(zip(printed, answered)) for d in differences(p, a, f"{where}/{i}")]
    if isinstance(printed, float) and isinstance(answered, (int, float)) and not isinstance(answered, bool):
        # Printed to six decimals; a different CPU may round the last one or two otherwise.
        return [] if math.isclose(printed, answered, rel_tol=1e-3, abs_tol=1e-4) else [f"{where}: {printed} printed, {answered} answered"]
    return [] if printed == answered else [f"{where}: {printed!r} printed, {answered!r} answered"]


EXAMPLES = {page.relative_to(REPO).as_posix(): examples(page) for page in PAGES}


def test_the_readme_has_a_request_per_task():
    paths = {request_path(argv) for argv, _ in EXAMPLES["README.md"]}
    assert {"/v1/ner", "/v1/qa", "/v1/headline", "/v1/spectra/fits"} <= paths


@pytest.mark.parametrize(
    "argv, printed",
    [pytest.param(argv, printed, id=f"{page}#{i}") for page, pairs in EXAMPLES.items() for i, (argv, printed) in enumerate(pairs)],
)
def test_each_documented_request_answers_as_printed(client, argv, printed):
    response = send(client, argv)
    assert response.status_code == 200, response.text
    assert not differences(printed, response.json())
