from __future__ import annotations

import asyncio
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"
BUNDLED_MODELS = REPO / "models"


def bundled_version(task: str) -> Path:
    """The directory of the bundled model that serves ``task`` (its highest version)."""
    from training import model_store

    return model_store.resolve_version(BUNDLED_MODELS / task)


async def until(condition, polls: int = 30_000) -> None:
    """Yield to the event loop until ``condition()`` holds (another thread or task makes it true)."""
    for _ in range(polls):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


def shared_data(task: str) -> Path:
    """``../shared/data/<task>``, or skip the test when this checkout has no shared data beside it."""
    path = SHARED_DATA / task
    if not path.is_dir():
        pytest.skip(f"{path} is absent (data-dependent test)")
    return path


@pytest.fixture(scope="session")
def tiny_ner_run(tmp_path_factory) -> Path:
    """A tiny NER model trained for a few epochs on the hand-written fixture corpus."""
    from training.__main__ import main

    run_dir = tmp_path_factory.mktemp("ner_run")
    main([
        "ner", "train", "--data-dir", str(FIXTURES / "ner"), "--run-dir", str(run_dir),
        "--epochs", "2", "--held-out", "4", "--quiet", "--hidden", "8", "--char-dim", "8",
        "--bigram-dim", "4", "--min-char-count", "1", "--min-bigram-count", "1", "--lexicon-max-word-length", "3",
    ])
    return run_dir


@pytest.fixture(scope="session")
def tiny_ner_store(tiny_ner_run, tmp_path_factory) -> Path:
    """A model store holding the tiny NER model exported as ``ner/1``."""
    from training.__main__ import main

    root = tmp_path_factory.mktemp("models")
    main(["ner", "export", "--data-dir", str(FIXTURES / "ner"), "--run-dir", str(tiny_ner_run), "--model-root", str(root)])
    return root


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
def tiny_spectra_run(spectra_data, tmp_path_factory) -> Path:
    from training.__main__ import main

    run_dir = tmp_path_factory.mktemp("spectra_run")
    main([
        "spectra", "train", "--data-dir", str(spectra_data), "--run-dir", str(run_dir), "--epochs", "2",
        "--cache-dir", str(run_dir / "data"),
        "--train-per-class", "24", "--dev-per-class", "8", "--batch-size", "32", "--quiet",
    ])
    return run_dir


@pytest.fixture(scope="session")
def tiny_spectra_store(spectra_data, tiny_spectra_run, tmp_path_factory) -> Path:
    from training.__main__ import main

    root = tmp_path_factory.mktemp("spectra_models")
    main([
        "spectra", "export", "--data-dir", str(spectra_data), "--run-dir", str(tiny_spectra_run),
        "--model-root", str(root), "--test-per-class", "8", "--cache-dir", str(tiny_spectra_run / "data"),
    ])
    return root


@pytest.fixture(scope="session")
def qa_data(tmp_path_factory) -> Path:
    """Hand-written passages and questions in the layout of ``../shared/data/qa``."""
    from tests.fixtures.qa_corpus import write_qa_data

    return write_qa_data(tmp_path_factory.mktemp("qa_data"))


@pytest.fixture(scope="session")
def tiny_qa_run(qa_data, tmp_path_factory) -> Path:
    """A tiny DGCNN reader trained for two epochs on the fixture corpus."""
    from training.__main__ import main

    run_dir = tmp_path_factory.mktemp("qa_run")
    main([
        "qa", "train", "--data-dir", str(qa_data), "--run-dir", str(run_dir), "--epochs", "2", "--quiet",
        "--hidden", "16", "--word-dim", "8", "--dilations", "1,2", "--window-chars", "24", "--window-stride", "12",
        "--max-answer-chars", "12", "--min-char-count", "1", "--min-word-count", "1", "--batch-size", "8",
    ])
    return run_dir


@pytest.fixture(scope="session")
def tiny_qa_store(qa_data, tiny_qa_run, tmp_path_factory) -> Path:
    from training.__main__ import main

    root = tmp_path_factory.mktemp("qa_models")
    main(["qa", "export", "--data-dir", str(qa_data), "--run-dir", str(tiny_qa_run), "--model-root", str(root)])
    return root
