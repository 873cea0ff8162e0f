from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"
BUNDLED_MODELS = REPO / "models"


def bundled_version(task: str) -> Path:
    """The directory of the bundled model that serves ``task`` (its highest version)."""
    from app import model_store

    return model_store.resolve_version(BUNDLED_MODELS / task)


def wait_until(condition, timeout: float) -> None:
    """Poll ``condition()`` (e.g. a server answering) until it holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition did not hold within {timeout} s")
        time.sleep(0.1)


async def until(condition, polls: int = 30_000) -> None:
    """Yield to the event loop until ``condition()`` holds (another thread or task makes it true)."""
    for _ in range(polls):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


def system_tool(name: str, package: str) -> str:
    """The path of a program from a Debian package, or skip the test without it; with
    ``REQUIRE_SYSTEM_PACKAGES=1`` (set by ``.ci/run``, which installs them) a missing one fails."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path:
        return path
    if os.environ.get("REQUIRE_SYSTEM_PACKAGES") == "1":
        pytest.fail(f"REQUIRE_SYSTEM_PACKAGES=1 but {name} is missing (apt-get install {package})")
    pytest.skip(f"{name} is not installed (apt-get install {package}); .ci/run installs it")


def write_keys_file(path: Path, scopes: dict[str, list[str]], rate_limits: dict[str, str] | None = None) -> dict[str, str]:
    """A keys file at ``path`` with one key per id in ``scopes``; returns id → the key itself."""
    from app.keys import ApiKey, hash_key, write_keys

    secrets = {key_id: f"msk_test-{key_id}-0123456789abcdef" for key_id in scopes}
    write_keys(path, [
        ApiKey(key_id, hash_key(secrets[key_id]), frozenset(key_scopes), (rate_limits or {}).get(key_id))
        for key_id, key_scopes in scopes.items()
    ])
    return secrets


def shared_data(task: str) -> Path:
    """``../shared/data/<task>``, or skip the test when this checkout has no shared data beside it."""
    path = SHARED_DATA / task
    if not path.is_dir():
        pytest.skip(f"{path} is absent (data-dependent test)")
    return path


def _train(tmp_path_factory, task: str, data_dir: Path, *options: str) -> Path:
    """A run directory with ``task`` trained on ``data_dir`` by the real CLI."""
    from training.__main__ import main

    run_dir = tmp_path_factory.mktemp(f"{task}_run")
    main([task, "train", "--data-dir", str(data_dir), "--run-dir", str(run_dir), "--quiet", *options])
    return run_dir


def _export(tmp_path_factory, task: str, data_dir: Path, run_dir: Path, *options: str) -> Path:
    """A model store holding ``run_dir`` exported by the real CLI as ``<task>/1``."""
    from training.__main__ import main

    root = tmp_path_factory.mktemp(f"{task}_models")
    main([task, "export", "--data-dir", str(data_dir), "--run-dir", str(run_dir), "--model-root", str(root), *options])
    return root


@pytest.fixture(scope="session")
def tiny_ner_run(tmp_path_factory) -> Path:
    """A tiny NER model trained for a few epochs on the hand-written fixture corpus."""
    return _train(
        tmp_path_factory, "ner", FIXTURES / "ner", "--epochs", "2", "--held-out", "4", "--hidden", "8", "--char-dim", "8",
        "--bigram-dim", "4", "--min-char-count", "1", "--min-bigram-count", "1", "--lexicon-max-word-length", "3",
    )


@pytest.fixture(scope="session")
def tiny_ner_store(tiny_ner_run, tmp_path_factory) -> Path:
    """A model store holding the tiny NER model exported as ``ner/1``."""
    return _export(tmp_path_factory, "ner", FIXTURES / "ner", tiny_ner_run)


@pytest.fixture(scope="session")
def client():
    """The service over the bundled models, lifespan included (models load on entry)."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    with TestClient(create_app(Settings(model_root=BUNDLED_MODELS))) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def spectra_data(tmp_path_factory) -> Path:
    """Made-up templates and "real" stars in the layout of ``../shared/data/spectra``."""
    from tests.fixtures.spectra_templates import write_spectra_data

    return write_spectra_data(tmp_path_factory.mktemp("spectra_data"))


@pytest.fixture(scope="session")
def spectra_cache(tmp_path_factory) -> Path:
    """Where the tiny spectra runs cache their simulated splits."""
    return tmp_path_factory.mktemp("spectra_cache")


@pytest.fixture(scope="session")
def tiny_spectra_run(spectra_data, spectra_cache, tmp_path_factory) -> Path:
    return _train(
        tmp_path_factory, "spectra", spectra_data, "--epochs", "2", "--cache-dir", str(spectra_cache),
        "--train-per-class", "24", "--dev-per-class", "8", "--batch-size", "32",
    )


@pytest.fixture(scope="session")
def tiny_spectra_store(spectra_data, spectra_cache, tiny_spectra_run, tmp_path_factory) -> Path:
    return _export(
        tmp_path_factory, "spectra", spectra_data, tiny_spectra_run, "--test-per-class", "8", "--cache-dir", str(spectra_cache)
    )


@pytest.fixture(scope="session")
def spectra_client(tiny_spectra_store):
    """The service over the tiny spectra model: input checks do not depend on the weights."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    with TestClient(create_app(Settings(model_root=tiny_spectra_store))) as client:
        yield client


@pytest.fixture(scope="session")
def qa_data(tmp_path_factory) -> Path:
    """Hand-written passages and questions in the layout of ``../shared/data/qa``."""
    from tests.fixtures.qa_corpus import write_qa_data

    return write_qa_data(tmp_path_factory.mktemp("qa_data"))


@pytest.fixture(scope="session")
def tiny_qa_run(qa_data, tmp_path_factory) -> Path:
    """A tiny DGCNN reader trained for two epochs on the fixture corpus."""
    return _train(
        tmp_path_factory, "qa", qa_data, "--epochs", "2", "--hidden", "16", "--word-dim", "8", "--dilations", "1,2",
        "--window-chars", "24", "--window-stride", "12", "--max-answer-chars", "12", "--min-char-count", "1",
        "--min-word-count", "1", "--batch-size", "8", "--span-loss", "softmax", "--word2vec-epochs", "2",
    )


@pytest.fixture(scope="session")
def tiny_qa_store(qa_data, tiny_qa_run, tmp_path_factory) -> Path:
    return _export(tmp_path_factory, "qa", qa_data, tiny_qa_run)


@pytest.fixture(scope="session")
def headline_data(tmp_path_factory) -> Path:
    """Made-up abstract/title pairs in the layout of ``../shared/data/headline``."""
    from tests.fixtures.headline_corpus import write_headline_data

    return write_headline_data(tmp_path_factory.mktemp("shared_data") / "headline")


TINY_HEADLINE_OPTIONS = [
    "--corpus", "papers_news", "--held-out", "6", "--batch-size", "8",
    "--embedding-dim", "16", "--encoder-units", "16", "--decoder-units", "32", "--min-char-count", "1",
]


@pytest.fixture(scope="session")
def tiny_headline_run(headline_data, tmp_path_factory) -> Path:
    """A tiny seq2seq trained for two epochs on the fixture's paper and news pairs."""
    return _train(tmp_path_factory, "headline", headline_data, "--epochs", "2", *TINY_HEADLINE_OPTIONS)


@pytest.fixture(scope="session")
def tiny_headline_store(headline_data, tiny_headline_run, tmp_path_factory) -> Path:
    return _export(tmp_path_factory, "headline", headline_data, tiny_headline_run, "--beam-width", "3", "--max-length", "20")
