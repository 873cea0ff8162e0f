"""The on-disk model store: ``<root>/<task>/<version>/`` with a SavedModel and ``manifest.json``.

Versions are positive integers, the layout TensorFlow Serving loads. The service's registry reads
it; ``python -m training <task> export`` writes it (``training/publishing.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


def versions(task_dir: Path) -> list[int]:
    """Complete versions under ``task_dir`` (those with a ``saved_model.pb``), ascending."""
    if not task_dir.is_dir():
        return []
    return sorted(
        int(p.name) for p in task_dir.iterdir() if p.name.isdigit() and int(p.name) > 0 and (p / "saved_model.pb").is_file()
    )


def resolve_version(task_dir: Path, version: int | None = None) -> Path:
    """The directory of ``version``, or of the highest version when it is ``None``."""
    present = versions(task_dir)
    if not present:
        raise FileNotFoundError(f"no model versions under {task_dir}")
    if version is None:
        version = present[-1]
    if version not in present:
        raise FileNotFoundError(f"version {version} not found under {task_dir} (have {present})")
    return task_dir / str(version)


def read_manifest(version_dir: Path) -> dict[str, Any]:
    path = version_dir / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}
