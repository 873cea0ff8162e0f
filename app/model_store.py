"""The on-disk model store: ``<root>/<model>/<version>/`` with a SavedModel and ``manifest.json``,
and ``<root>/<model>/labels.json`` naming versions (``{"stable": 5}``).

Versions are positive integers, the layout TensorFlow Serving loads. A model's task is the
``task`` its manifests name (``models/ner-fine/1`` answers ``ner``); a model named after its task
is that task's default. The service's registry reads the store; ``python -m training <task>
export`` writes versions (``training/publishing.py``) and the admin API writes labels, so every
replica reading one store agrees on them and a restart keeps them.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
LABELS = "labels.json"
# Model names and labels: what may appear in a URL path and a directory name.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


def versions(model_dir: Path) -> list[int]:
    """Complete versions under ``model_dir`` (those with a ``saved_model.pb``), ascending."""
    if not model_dir.is_dir():
        return []
    return sorted(
        int(p.name) for p in model_dir.iterdir() if p.name.isdigit() and int(p.name) > 0 and (p / "saved_model.pb").is_file()
    )


def resolve_version(model_dir: Path, version: int | None = None) -> Path:
    """The directory of ``version``, or of the highest version when it is ``None``."""
    present = versions(model_dir)
    if not present:
        raise FileNotFoundError(f"no model versions under {model_dir}")
    if version is None:
        version = present[-1]
    if version not in present:
        raise FileNotFoundError(f"version {version} not found under {model_dir} (have {present})")
    return model_dir / str(version)


def read_manifest(version_dir: Path) -> dict[str, Any]:
    path = version_dir / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def models(root: Path, tasks: set[str]) -> dict[str, str]:
    """Each model in the store with a version, and the task it answers (its newest manifest's
    ``task``, else its own name), for the ``tasks`` there is a runtime for."""
    found = {}
    if not root.is_dir():
        return found
    for model_dir in sorted(root.iterdir()):
        present = versions(model_dir)
        if not present or not re.match(NAME_PATTERN, model_dir.name):
            continue
        try:
            task = read_manifest(model_dir / str(present[-1])).get("task", model_dir.name)
        except (OSError, ValueError):  # a broken manifest fails that version's load, reported there
            task = model_dir.name
        if task in tasks:
            found[model_dir.name] = task
    return found


def version_bytes(version_dir: Path) -> int:
    """What a version occupies on disk."""
    return sum(p.stat().st_size for p in version_dir.rglob("*") if p.is_file())


class Labels:
    """A model's ``labels.json``, read again only when the file changes (another replica, or an
    admin, moved a label)."""

    def __init__(self, model_dir: Path):
        self.path = model_dir / LABELS
        self._seen: tuple[int, int] | None = None
        self._labels: dict[str, int] = {}

    def read(self) -> dict[str, int]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._seen, self._labels = None, {}
            return {}
        if (stat.st_mtime_ns, stat.st_size) != self._seen:
            labels = json.loads(self.path.read_text())
            self._labels = {str(k): int(v) for k, v in labels.items()}
            self._seen = (stat.st_mtime_ns, stat.st_size)
        return dict(self._labels)

    def set(self, label: str, version: int) -> dict[str, int]:
        """Point ``label`` at ``version``; written whole and renamed into place, so a reader never
        sees half a file."""
        labels = {**self.read(), label: version}
        handle, staging = tempfile.mkstemp(dir=self.path.parent, prefix=".labels-", suffix=".json")
        try:
            with os.fdopen(handle, "w") as f:
                json.dump(labels, f, indent=2, sort_keys=True)
            os.replace(staging, self.path)
        finally:
            Path(staging).unlink(missing_ok=True)
        return self.read()
