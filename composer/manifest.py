"""The render manifest written next to every output (``film.manifest.json``):
what was rendered from what, per segment its request, cache key, timings, cost,
colour transform and measured seam jump. Never a secret.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .version import __version__
from .atomic import atomic_write_text

SECRET_ENV = ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET")


def manifest_path_for(output: Path) -> Path:
    output = Path(output)
    return output.with_name(output.stem + ".manifest.json")


def scrub(text: str) -> str:
    """Remove any secret value from the environment that slipped into ``text``."""
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def write_manifest(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as JSON atomically, with secrets scrubbed."""
    body = scrub(json.dumps({"composer_version": __version__, **data}, indent=2, ensure_ascii=False, default=str))
    atomic_write_text(path, body + "\n")
    return path
