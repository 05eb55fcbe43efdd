"""The emulator's judge of a request body: fal's published input schema (JSON Schema data in
this package) plus LTX's frame-grid rules, written from the reference and not from composer's
own request model, so the emulator can catch composer being wrong.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from .state import _short

_STEP_TOLERANCE = 1e-6


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """fal's input schema for the multiconditioning endpoint (``fal-input-schema.json``)."""
    return json.loads(resources.files(__package__).joinpath("fal-input-schema.json").read_text("utf-8"))


@lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    # Local "#/$defs/..." refs resolve against the root document itself; nothing is fetched.
    cls = jsonschema.validators.validator_for(schema())
    return cls(schema())


_TYPES = {"integer": ("int_type", "a valid integer"), "string": ("string_type", "a valid string"),
          "number": ("float_type", "a valid number"), "boolean": ("bool_type", "a valid boolean"),
          "array": ("list_type", "a valid list"), "object": ("dict_type", "a valid dictionary")}


def _items(err: Any) -> list[dict[str, Any]]:
    """One jsonschema error as FastAPI-style detail items (what fal answers with)."""
    loc: list[Any] = ["body", *err.absolute_path]
    kind, value = str(err.validator), err.validator_value
    if kind == "required":
        present = err.instance if isinstance(err.instance, dict) else {}
        return [{"loc": [*loc, name], "msg": "Field required", "type": "missing"}
                for name in value if name not in present]
    if kind == "additionalProperties":
        known = err.schema.get("properties", {})
        return [{"loc": [*loc, name], "msg": "Extra inputs are not permitted", "type": "extra_forbidden",
                 "input": _short(err.instance[name])} for name in err.instance if name not in known]
    if kind == "type":
        type_, words = _TYPES.get(value, (f"{value}_type", f"a valid {value}"))
        msg = f"Input should be {words}"
    elif kind == "enum":
        type_, msg = "literal_error", "Input should be " + " or ".join(repr(x) for x in value)
    elif kind == "minimum":
        type_, msg = "greater_than_equal", f"Input should be greater than or equal to {value}"
    elif kind == "maximum":
        type_, msg = "less_than_equal", f"Input should be less than or equal to {value}"
    elif kind == "multipleOf":
        type_, msg = "multiple_of", f"Input should be a multiple of {value}"
    else:
        type_, msg = kind, err.message
    return [{"loc": loc, "msg": msg, "type": type_, "input": _short(err.instance)}]


def _schema_errors(body: Any) -> list[dict[str, Any]]:
    errors = sorted(_validator().iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))
    return [item for err in errors for item in _items(err)]


def _step_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    # x-step: 0.05 steps, checked with a tolerance (JSON Schema's multipleOf misjudges 0.15).
    detail = []
    for name, spec in schema()["properties"].items():
        step = spec.get("x-step")
        value = body.get(name)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if step and numeric and abs(value / step - round(value / step)) > _STEP_TOLERANCE:
            detail.append({"loc": ["body", name], "msg": f"Input should be a multiple of {step}",
                           "type": "multiple_of", "input": value})
    return detail


def ltx_rules(body: dict[str, Any]) -> list[dict[str, Any]]:
    """LTX's rules beyond the schema (reference: x-ltx-rules, conditioning-and-peers.md).

    A video's own length is only known once it is downloaded (``max_num_frames`` is an upper
    bound, not its length), so "start + length <= num_frames" is checked here only as far as
    the start: a conditioning item must begin inside the output.
    """
    defaults = schema()["properties"]
    n = body.get("num_frames", defaults["num_frames"]["default"])
    detail: list[dict[str, Any]] = []

    def bad(loc: list[Any], msg: str, value: Any) -> None:
        detail.append({"loc": ["body", *loc], "msg": msg, "type": "value_error", "input": value})

    if (n - 1) % 8:
        bad(["num_frames"], f"num_frames={n} is not 8k+1 (the model works on 8-frame latent chunks)", n)
    for group in ("images", "videos"):
        for i, item in enumerate(body.get(group) or []):
            start = item.get("start_frame_num", 0)
            if start >= n:
                bad([group, i, "start_frame_num"], f"{group}[{i}].start_frame_num={start} is past the last "
                                                   f"frame ({n - 1})", start)
    return detail


def conditioning_frames(start: int, length: int, num_frames: int) -> int:
    """How many frames of a conditioning video of ``length`` frames at ``start`` LTX uses: trimmed
    to end inside the output, then to 8k+1 (``trim_conditioning_sequence`` in LTX-Video's
    ``pipeline_ltx_video.py``); 0 when none fit. Those frames replace the generated ones in place
    from ``start`` on, blended by the item's strength, at any start on the 8-frame grid."""
    count = min(length, num_frames - start)
    return (count - 1) // 8 * 8 + 1 if count >= 1 else 0


def validate_input(body: Any) -> list[dict[str, Any]]:
    """The endpoint's 422 detail for ``body`` (empty when it is acceptable)."""
    if not isinstance(body, dict):
        return [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]
    detail = _schema_errors(body)
    if detail:
        return detail
    return _step_errors(body) or ltx_rules(body)
