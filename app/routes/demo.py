"""The demo page at ``/``: static HTML and JavaScript calling the task endpoints (no build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"

router = APIRouter()


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(DEMO_DIR / "index.html")


# Scripts, styles and the example spectra, under /demo/.
static_files = StaticFiles(directory=DEMO_DIR)
