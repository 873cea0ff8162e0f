"""Model discovery and loading from a model store on disk."""

from __future__ import annotations

import gc
import json
import shutil

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.registry import ModelRegistry
from app.settings import Settings
from app.tasks.spec import SpecError
from tests.conftest import bundled_version, write_keys_file


def test_loads_the_highest_complete_version(tiny_ner_store, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(tiny_ner_store / "ner" / "1", root / "ner" / "3")
    shutil.copytree(tiny_ner_store / "ner" / "1", root / "ner" / "7")
    (root / "ner" / "9").mkdir()  # incomplete: no saved_model.pb
    (root / "ner" / ".staging-x").mkdir()
    registry = ModelRegistry(root)
    registry.load_all()
    (model,) = registry.loaded()
    assert (model.task, model.version) == ("ner", 7)
    assert model.describe()["metrics"]
    assert registry.errors() == {}


def test_a_corrupt_model_is_reported_and_does_not_stop_the_service(tiny_ner_store, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(tiny_ner_store / "ner" / "1", root / "ner" / "1")
    (root / "ner" / "1" / "saved_model.pb").write_bytes(b"not a saved model")
    with TestClient(create_app(Settings(model_root=root))) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "ner" in ready.json()["load_errors"]
        response = client.post("/v1/ner", json={"text": "李鹏"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"


def test_an_empty_store_is_not_ready(tmp_path):
    with TestClient(create_app(Settings(model_root=tmp_path))) as client:
        assert client.get("/readyz").status_code == 503
        assert client.get("/v1/models").json() == {"models": [], "served": [], "load_errors": {}}


def test_a_broken_newest_version_falls_back_to_the_previous_one(tiny_ner_store, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(tiny_ner_store / "ner" / "1", root / "ner" / "1")
    shutil.copytree(tiny_ner_store / "ner" / "1", root / "ner" / "2")
    for shard in (root / "ner" / "2" / "variables").glob("variables.data-*"):
        shard.write_bytes(b"half-copied")
    registry = ModelRegistry(root)
    registry.load_all()
    assert [m.version for m in registry.loaded()] == [1]
    assert registry.errors()["ner"].startswith("version 2: ")


def test_loaded_models_are_exempt_from_full_garbage_collections(tiny_ner_store, tmp_path):
    """Start-up and each reload freeze the heap: a full collection walking TensorFlow's objects
    stopped the server for 140–250 ms (measured)."""
    keys = write_keys_file(tmp_path / "keys.yaml", {"admin": ["admin"]})
    gc.unfreeze()
    with TestClient(create_app(Settings(model_root=tiny_ner_store, api_keys_file=tmp_path / "keys.yaml"))) as client:
        started = gc.get_freeze_count()
        gc.unfreeze()
        assert client.post("/v1/models/ner/reload", headers={"X-API-Key": keys["admin"]}).status_code == 200
        reloaded = gc.get_freeze_count()
    assert started > 0 and reloaded > 0


def test_a_manifest_that_breaks_its_spec_is_refused_naming_the_field(tmp_path):
    """The spec is the contract: a version whose manifest lacks what the pipeline reads never
    serves, and the version serving stays."""
    source = bundled_version("spectra")
    for version in (1, 2):
        target = tmp_path / "models" / "spectra" / str(version)
        target.mkdir(parents=True)
        for item in source.iterdir():
            if item.name != "manifest.json":
                (target / item.name).symlink_to(item)
        manifest = json.loads((source / "manifest.json").read_text())
        if version == 2:
            del manifest["grid"]["npix"]
        (target / "manifest.json").write_text(json.dumps(manifest))
    registry = ModelRegistry(tmp_path / "models")
    registry.load("spectra", 1)
    with pytest.raises(SpecError, match=r"grid\.npix: Field required"):
        registry.load("spectra", 2)
    assert registry.get("spectra").version == 1
