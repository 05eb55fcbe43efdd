"""CLI commands for the fal backend: ``generate`` (one request) and ``doctor``."""
from __future__ import annotations
