"""Lint and type checks as tests, so CI's plain ``pytest`` runs ruff and mypy too.

Both read their configuration from pyproject.toml; a failure shows the tool's own report.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.timeout(600)
def test_ruff_is_clean() -> None:
    proc = _run("ruff", "check", "--no-cache", "composer", "tests", "benchmarks")
    assert proc.returncode == 0, f"ruff check found problems:\n{proc.stdout}{proc.stderr}"


@pytest.mark.timeout(600)
def test_mypy_is_clean() -> None:
    proc = _run("mypy", "composer")
    assert proc.returncode == 0, f"mypy found problems:\n{proc.stdout}{proc.stderr}"
