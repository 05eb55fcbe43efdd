"""Fuzzing in the suite: a few hundred generated and mutated boards, and the schema property.

The full run (10,000+ examples, isolated, timed) is ``benchmarks/fuzz.py``; here the
same generators run through hypothesis with a bounded number of examples.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from composer.errors import ComposerError
from composer.storyboard import loads
from composer.testing.fuzz import EXAMPLES_DIR, boards, documents, run_one

jsonschema = pytest.importorskip("jsonschema")

# No deadline: speed is measured by benchmarks/fuzz.py, not asserted here (a loaded machine would flake).
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


@FUZZ
@given(boards())
def test_every_input_ends_in_a_verdict_with_a_place(mutant):
    outcome = run_one(mutant.data, touched_line=mutant.line)
    assert outcome.kind != "uncaught", outcome.message
    if outcome.kind == "at_1_1":
        # 1:1 only where the cause is there (an empty or non-mapping file, a first-line mistake)
        assert outcome.cause_at_1_1, outcome.message


@pytest.fixture(scope="module")
def schema() -> dict:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "composer", "schema"], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(root)})
    return json.loads(proc.stdout)


def _json_data(text: str):
    from ruamel.yaml import YAML

    def plain(node):
        if isinstance(node, dict):
            return {str(k): plain(v) for k, v in node.items()}
        if isinstance(node, list):
            return [plain(v) for v in node]
        return node

    return plain(YAML(typ="safe", pure=True).load(text))


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES_DIR.glob("*.yaml")))
def test_shipped_examples_validate_against_the_schema(schema, name):
    # storyboards/vertical.yaml's `audio: audio/harbour.wav` used to be refused
    data = _json_data((EXAMPLES_DIR / name).read_text())
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(data)]
    assert errors == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(documents())
def test_what_the_loader_accepts_the_schema_accepts(schema, pair):
    _, text = pair
    try:
        loads(text, base_dir=EXAMPLES_DIR)
    except ComposerError:
        return
    data = _json_data(text)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft202012Validator(schema).iter_errors(data)]
    assert errors == [], text


def test_the_schema_refuses_what_the_loader_refuses_by_type(schema):
    # the other direction on a few plain type errors: the schema is not just `{}`
    validator = jsonschema.Draft202012Validator(schema)
    base = {"version": 1, "scenes": [{"id": "a", "duration": "2s", "prompt": "x"}]}
    assert validator.is_valid(base)
    for bad in ({"output": {"fps": "24"}}, {"scenes": []}, {"audio": 3}, {"extra": 1}):
        assert not validator.is_valid({**base, **bad}), bad
