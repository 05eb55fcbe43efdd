"""Read a storyboard file (YAML 1.2) into a validated ``Storyboard``.

Every problem is reported as ``file:line:col: message``, all of them at once where
possible: pydantic's errors are mapped back to the YAML nodes they came from.
"""
from __future__ import annotations

import difflib
import io
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from ..errors import Location, Problem, StoryboardError
from .checks import check_storyboard
from .models import Storyboard

Loc = tuple[Union[str, int], ...]

# Where a user should set what the planner owns instead of `params`.
_OWNED_HINT = {
    "prompt": "write it as the scene's prompt (or a beat)",
    "num_frames": "the planner sets it from durations and defaults.segment.frames",
    "frame_rate": "set output.fps",
    "resolution": "set output.resolution",
    "aspect_ratio": "set output.aspect_ratio",
    "images": "use the scene's keyframes",
    "videos": "the planner conditions each segment on the previous one",
    "reverse_video": "composer does not reverse segments",
}


def load(source: Union[str, Path], *, text: str | None = None) -> Storyboard:
    """Load a storyboard from a path (or from ``text``, naming it ``source``).

    A string that contains a newline is taken as the YAML text itself.
    """
    if text is None and isinstance(source, str) and "\n" in source:
        text, source = source, "<string>"
    name = str(source)
    if text is None:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise StoryboardError([Problem(Location(name, 1, 1), "file not found")]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise StoryboardError([Problem(Location(name, 1, 1), f"cannot read: {exc}")]) from None
        base_dir = path.resolve().parent
    else:
        base_dir = Path(source).resolve().parent if name != "<string>" else Path.cwd()
    return loads(text, name=name, base_dir=base_dir)


def loads(text: str, *, name: str = "<string>", base_dir: Path | None = None) -> Storyboard:
    """Parse and validate storyboard YAML text."""
    data = _parse_yaml(text, name)
    if not isinstance(data, CommentedMap):
        raise StoryboardError([Problem(Location(name, 1, 1), "a storyboard must be a mapping with 'scenes'")])
    positions = _Positions(name, data)
    try:
        board = Storyboard.model_validate(_plain(data))
    except ValidationError as exc:
        raise StoryboardError(_problems_from(exc, positions, data)) from None
    board.located(name, base_dir or Path.cwd())
    problems = check_storyboard(board, positions.at)
    if problems:
        raise StoryboardError(problems)
    return board


def _parse_yaml(text: str, name: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.version = (1, 2)
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = (exc.problem or "").strip() or "invalid YAML"
        if "duplicate key" in str(exc):
            what = "duplicate key " + str(exc).split("duplicate key", 1)[1].split("\n", 1)[0].strip()
        raise StoryboardError([Problem(Location(name, line, col), f"YAML syntax error: {what}")]) from None
    except Exception as exc:  # ruamel raises a few unmarked errors too
        raise StoryboardError([Problem(Location(name, 1, 1), f"YAML error: {exc}")]) from None


def _plain(node: Any) -> Any:
    """ruamel's commented containers as plain dicts/lists (pydantic wants those)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


class _Positions:
    """Maps a path of keys/indices in the YAML document to its line and column."""

    def __init__(self, name: str, root: CommentedMap):
        self.name = name
        self.root = root

    def at(self, loc: Loc, *, key: bool = False) -> Location:
        node: Any = self.root
        line, col = 0, 0
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            if isinstance(node, CommentedMap) and part in node:
                line, col = node.lc.key(part) if (key and last) else node.lc.value(part)
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line, col = node.lc.item(part)
                node = node[part]
            else:
                if hasattr(node, "lc"):
                    line, col = node.lc.line, node.lc.col
                break
        return Location(self.name, line + 1, col + 1)


def _clean_loc(loc: Loc) -> Loc:
    # pydantic adds union member tags ("Crossfade", "literal['cut','continue']") to locs
    return tuple(p for p in loc if isinstance(p, int) or ("[" not in p and not p[:1].isupper()))


def _context(loc: Loc, data: Any) -> tuple[str, Loc]:
    """A readable prefix ("scene 'dock'") and the rest of the path."""
    if len(loc) >= 2 and loc[0] == "scenes" and isinstance(loc[1], int):
        scenes = data.get("scenes") if isinstance(data, dict) else None
        sid = None
        if isinstance(scenes, list) and loc[1] < len(scenes) and isinstance(scenes[loc[1]], dict):
            sid = scenes[loc[1]].get("id")
        label = f"scene {sid!r}" if isinstance(sid, str) else f"scene #{loc[1] + 1}"
        return label, loc[2:]
    return "", loc


def _path_text(loc: Loc) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _fields_at(loc: Loc) -> list[str]:
    """Field names allowed in the mapping at ``loc`` (for did-you-mean)."""
    model: Any = Storyboard
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return []
        model = _model_in(fields[part].annotation)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _message(err: dict[str, Any], loc: Loc) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    field = str(loc[-1]) if loc and isinstance(loc[-1], str) else "value"
    got = err.get("input")
    if kind == "extra_forbidden":
        parent = loc[:-1]
        if parent and parent[-1] == "params" and field in _OWNED_HINT:
            return f"'{field}' cannot be set in params: {_OWNED_HINT[field]}"
        allowed = _fields_at(parent)
        close = difflib.get_close_matches(field, allowed, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else (f" (expected one of: {', '.join(allowed)})" if allowed else "")
        return f"unknown key '{field}'{hint}"
    if kind == "missing":
        return f"missing required key '{field}'"
    limits = {
        "greater_than": ">",
        "greater_than_equal": "≥",
        "less_than": "<",
        "less_than_equal": "≤",
    }
    if kind in limits:
        bound = next(iter(ctx.values()))
        if field in ("duration",) and kind.startswith("greater"):
            return f"{field} must be > 0"
        return f"{field} must be {limits[kind]} {bound} (got {got!r})"
    if kind == "literal_error":
        return f"{field} must be one of {ctx.get('expected')} (got {got!r})"
    if kind == "multiple_of":
        return f"{field} must be a multiple of {ctx.get('multiple_of')} (got {got!r})"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{field} must be a whole number (got {got!r})"
    if kind in ("float_type", "float_parsing"):
        return f"{field} must be a number (got {got!r})"
    if kind in ("bool_type", "bool_parsing"):
        return f"{field} must be true or false (got {got!r})"
    if kind in ("string_type",):
        return f"{field} must be text (got {got!r})"
    if kind == "string_too_short":
        return f"{field} must not be empty"
    if kind == "too_short":
        return f"{field} must have at least {ctx.get('min_length', 1)} item(s)"
    if kind == "string_pattern_mismatch" and field == "id":
        return f"id {got!r} must start with a letter or digit and hold only letters, digits, '-', '_' or '.'"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{field} must be a mapping (got {got!r})"
    if kind == "list_type":
        return f"{field} must be a list (got {got!r})"
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return f"{field} {msg}" if msg.startswith("must") else f"{field}: {msg}"


def _problems_from(exc: ValidationError, positions: _Positions, data: Any) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[Loc, int] = {}
    for err in exc.errors(include_url=False):
        raw = tuple(err["loc"])
        loc = _clean_loc(raw)
        if err["type"] == "literal_error" and loc and loc[-1] == "transition":
            err = {**err, "type": "value_error", "msg": f"must be 'cut', 'continue' or {{crossfade: <time>}} (got {err.get('input')!r})", "ctx": {}}
        # A union reports one error per member; keep the most specific per place.
        if loc in seen and raw != loc:
            continue
        if any(s[: len(loc)] == loc and len(s) > len(loc) for s in seen) and raw != loc:
            continue
        key = err["type"] in ("extra_forbidden",)
        where_loc = loc if err["type"] != "missing" else loc[:-1]
        where = positions.at(where_loc, key=key)
        label, rest = _context(loc, data)
        msg = _message(err, loc)
        field = str(loc[-1]) if loc else ""
        if rest and field and (msg.startswith(field + " ") or msg.startswith(field + ":")):
            msg = _path_text(rest) + msg[len(field):]
        elif rest[:-1]:
            msg = f"{_path_text(rest[:-1])}: {msg}"
        problems.append(Problem(where, f"{label}: {msg}" if label else msg))
        seen[loc] = len(problems) - 1
    problems.sort(key=lambda p: (p.location.line, p.location.col))
    return problems
