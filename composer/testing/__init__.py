"""Test helpers other suites can reuse: a fal-compatible emulator and pytest fixtures.

``from composer.testing import FalEmulator`` (imported lazily, so that
``python -m composer.testing.fal`` runs cleanly). Fixtures live in
``composer.testing.fixtures``; enable them with
``pytest_plugins = ["composer.testing.fixtures"]`` in a root conftest.py, or import
the fixture names into a test module.
"""
from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_KEY", "FalEmulator", "Fault", "JobFault"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import fal

        return getattr(fal, name)
    raise AttributeError(f"module 'composer.testing' has no attribute {name!r}")
