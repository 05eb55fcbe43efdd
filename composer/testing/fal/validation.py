"""Input validation of the fal emulator: the endpoint's 422 detail for a request body.

(Still composer's own request model; replaced by fal's schema in the next commit.)
"""
from __future__ import annotations

import re
from typing import Any

from .state import _short

_LOC_PART = re.compile(r"([A-Za-z_]+)(?:\[(\d+)\])?")


def _loc_from_problem(text: str) -> list[Any]:
    """``"images[0].start_frame_num=130 is past…"`` → ``["images", 0, "start_frame_num"]``."""
    head = text.split("=", 1)[0].split(" ", 1)[0]
    loc: list[Any] = []
    for part in head.split("."):
        m = _LOC_PART.fullmatch(part)
        if not m:
            return []
        loc.append(m.group(1))
        if m.group(2) is not None:
            loc.append(int(m.group(2)))
    return loc


def validate_input(body: Any) -> list[dict[str, Any]]:
    """The endpoint's 422 detail for ``body`` (empty when it is acceptable)."""
    from pydantic import ValidationError

    from ...request import GenerationRequest, ltx_rule_violations

    if not isinstance(body, dict):
        return [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]
    try:
        GenerationRequest.model_validate(body)
    except ValidationError as exc:
        detail = []
        for err in exc.errors(include_url=False):
            item = {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
            if "input" in err:
                item["input"] = _short(err["input"])
            if err.get("ctx"):
                item["ctx"] = _short(err["ctx"])
            detail.append(item)
        return detail
    return [
        {"loc": ["body", *_loc_from_problem(p)], "msg": p, "type": "value_error"} for p in ltx_rule_violations(body)
    ]
