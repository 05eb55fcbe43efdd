"""The storyboard language as a JSON Schema, for editors' validation and completion.

pydantic's export describes the models; this adds what the loader accepts before
the models see it (the ``audio: path`` shorthand), so every board ``load``
accepts also validates against the schema (a property test holds them together).
"""
from __future__ import annotations

import copy
from typing import Any

from .models import Storyboard

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def storyboard_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a storyboard file."""
    doc = copy.deepcopy(Storyboard.model_json_schema())
    audio = doc["properties"]["audio"]
    # Storyboard._audio_shorthand turns `audio: some.wav` into {file: some.wav}.
    shorthand = {"type": "string", "description": "Shorthand for {file: <path>}."}
    if shorthand not in audio.get("anyOf", []):
        audio.setdefault("anyOf", []).insert(0, shorthand)
    return {"$schema": DIALECT, **doc, "title": "composer storyboard"}
