"""Read a storyboard file (YAML 1.2) into a validated ``Storyboard``.

Every problem is reported as ``file:line:col: message``, all of them at once where
possible: pydantic's errors are mapped back to the YAML nodes they came from.
Hostile input is bounded before it costs anything: file size, nesting depth and
alias expansion are limited while the YAML is composed (``storyboard.limits``).
"""
from __future__ import annotations

import difflib
import io
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from ..errors import Location, Problem, StoryboardError
from .checks import check_storyboard
from .limits import Limits
from .models import Storyboard

Loc = tuple[str | int, ...]

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


def load(source: str | Path, *, text: str | None = None, limits: Limits | None = None) -> Storyboard:
    """Load a storyboard from a path (or from ``text``, naming it ``source``).

    A string that contains a newline is taken as the YAML text itself. ``limits``
    defaults to ``Limits.from_env()``.
    """
    limits = limits or Limits.from_env()
    if text is None and isinstance(source, str) and "\n" in source:
        text, source = source, "<string>"
    name = str(source)
    if text is None:
        path = Path(source)
        text = _read_board(path, name, limits)
        base_dir = path.resolve().parent
    else:
        base_dir = Path(source).resolve().parent if name != "<string>" else Path.cwd()
    return loads(text, name=name, base_dir=base_dir, limits=limits)


def _fail(name: str, line: int, col: int, message: str) -> StoryboardError:
    return StoryboardError([Problem(Location(name, line, col), message)])


def _read_board(path: Path, name: str, limits: Limits) -> str:
    """The file's text; stat first so a FIFO or device is refused, never opened."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise _fail(name, 1, 1, "file not found") from None
    except OSError as exc:
        raise _fail(name, 1, 1, f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise _fail(name, 1, 1, "is a directory, not a storyboard file")
    if not stat.S_ISREG(st.st_mode):
        raise _fail(name, 1, 1, "is not a regular file (a pipe or device cannot be a storyboard)")
    if st.st_size > limits.max_bytes:
        raise _fail(name, 1, 1, f"file is {st.st_size} bytes; storyboards are limited to {limits.max_bytes} "
                                "(set COMPOSER_MAX_BOARD_BYTES to allow more)")
    try:
        with path.open("rb") as fh:
            data = fh.read(limits.max_bytes + 1)
    except OSError as exc:
        raise _fail(name, 1, 1, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limits.max_bytes:  # grew since the stat
        raise _fail(name, 1, 1, f"file is over {limits.max_bytes} bytes (set COMPOSER_MAX_BOARD_BYTES to allow more)")
    return _decode(data, name)


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        col = len(data[line_start:exc.start].decode("utf-8", "replace")) + 1
        raise _fail(name, line, col, f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} "
                                     "(save the file as UTF-8)") from None


def loads(text: str, *, name: str = "<string>", base_dir: Path | None = None, limits: Limits | None = None) -> Storyboard:
    """Parse and validate storyboard YAML text."""
    try:
        return _loads(text, name=name, base_dir=base_dir, limits=limits)
    except StoryboardError as exc:
        if all(_printable(p.message) == p.message for p in exc.problems):
            raise
        # A message quoting a lone surrogate ("\ud800" in the YAML) could not even be printed.
        raise StoryboardError([Problem(p.location, _printable(p.message)) for p in exc.problems]) from None


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _loads(text: str, *, name: str, base_dir: Path | None, limits: Limits | None) -> Storyboard:
    limits = limits or Limits.from_env()
    if not isinstance(text, str):
        raise TypeError(f"loads() takes the YAML text as str, not {type(text).__name__}")
    too_long = len(text) > limits.max_bytes or (  # a character is 1 to 4 bytes: encode only when it can matter
        len(text) * 4 > limits.max_bytes and len(text.encode("utf-8", "surrogatepass")) > limits.max_bytes)
    if too_long:
        raise _fail(name, 1, 1, f"storyboard text is over {limits.max_bytes} bytes "
                                "(set COMPOSER_MAX_BOARD_BYTES to allow more)")
    data = _parse_yaml(text, name, limits)
    if not isinstance(data, CommentedMap):
        raise StoryboardError([Problem(Location(name, 1, 1), "a storyboard must be a mapping with 'scenes'")])
    positions = _Positions(name, data)
    nulls = _null_params(data, positions)
    if nulls:
        raise StoryboardError(nulls)
    try:
        # Strict: YAML 1.2 already types values, so "24" or yes is the user's text, not a number or a
        # bool; this keeps the loader and the JSON Schema (which cannot coerce) in agreement.
        board = Storyboard.model_validate(_plain(data), strict=True)
    except ValidationError as exc:
        raise StoryboardError(_problems_from(exc, positions, data)) from None
    board.located(name, base_dir or Path.cwd())
    problems = check_storyboard(board, positions.at, limits=limits)
    if problems:
        raise StoryboardError(problems)
    return board


def _null_params(data: CommentedMap, positions: _Positions) -> list[Problem]:
    """``params: {x: null}`` would reach the endpoint's own validators as None: say what null means here."""
    places: list[Loc] = [("defaults", "params")]
    scenes = data.get("scenes")
    if isinstance(scenes, list):
        places += [("scenes", i, "params") for i in range(len(scenes))]
    problems = []
    for loc in places:
        node: Any = data
        for part in loc:
            node = _child(node, part)
        if isinstance(node, dict):
            for key, value in node.items():
                if value is None and isinstance(key, str):
                    what = f"{_path_text((*loc, key))} is null: leave the key out to use the endpoint's default"
                    problems.append(Problem(positions.at((*loc, key)), what))
    return problems


class _Refused(Exception):
    """A YAML shape refused while composing, with where it is."""

    def __init__(self, mark: Any, message: str):
        super().__init__(message)
        self.mark = mark
        self.message = message


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_TEXT_KEYS = {
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:bool": "a true/false value",
    "tag:yaml.org,2002:float": "a number with a fraction",
}


def _limited_composer(limits: Limits) -> type[Composer]:
    """ruamel's composer, counting as it goes: depth, values after alias expansion, and keys."""

    class LimitedComposer(Composer):
        def __init__(self, loader: Any = None) -> None:
            super().__init__(loader)
            self._sizes: dict[int, int] = {}
            self._total = 0
            self._depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.parser.peek_event()
            is_alias = isinstance(event, AliasEvent)
            tag = None if is_alias else getattr(event, "ctag", None)
            if tag is not None and str(tag) not in ("!", "tag:yaml.org,2002:str"):
                # ruamel would construct `!!int 3fps` (or `!custom x`) with an unmarked error, or an object
                raise _Refused(event.start_mark, f"YAML tag '{_short_tag(str(tag))}' is not used in storyboards: "
                                                 "write the plain value")
            if not is_alias:
                self._depth += 1
                if self._depth > limits.max_depth:
                    raise _Refused(event.start_mark, f"values nest more than {limits.max_depth} levels deep "
                                                     "(set COMPOSER_MAX_YAML_DEPTH to allow more)")
            node = super().compose_node(parent, index)
            if is_alias:
                self._add(self._sizes.get(id(node), 1), event.start_mark, alias=True)
                return node
            self._depth -= 1
            if isinstance(node, MappingNode):
                self._check_keys(node)
                size = 1 + sum(self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value)
            elif isinstance(node, SequenceNode):
                size = 1 + sum(self._sizes.get(id(v), 1) for v in node.value)
            else:
                size = 1
                if isinstance(node.value, str) and _SURROGATE.search(node.value):
                    # JSON writes 🎬 as "\ud83c\udfac": join such pairs; a lone half is no character at all
                    joined = node.value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
                    if _SURROGATE.search(joined) or "\ufffd" in joined.replace("\ufffd", "", node.value.count("\ufffd")):
                        raise _Refused(node.start_mark, "text holds a lone surrogate (an escape such as \\ud800): "
                                                        "that is no character")
                    node.value = joined
            self._sizes[id(node)] = size
            self._add(1, event.start_mark, alias=False)
            return node

        def _add(self, n: int, mark: Any, *, alias: bool) -> None:
            self._total += n
            if self._total > limits.max_nodes:
                why = "this alias expands the document" if alias else "the document holds"
                raise _Refused(mark, f"{why} to more than {limits.max_nodes} values "
                                     "(set COMPOSER_MAX_YAML_NODES to allow more)")

        def _check_keys(self, node: MappingNode) -> None:
            for key, _ in node.value:
                tag = str(key.tag) if key.tag is not None else ""
                if tag == "tag:yaml.org,2002:merge":
                    raise _Refused(key.start_mark, "merge keys ('<<') are not supported: write the keys out")
                if isinstance(key, (MappingNode, SequenceNode)):
                    raise _Refused(key.start_mark, "a key must be text, not a list or mapping")
                if tag in _NOT_TEXT_KEYS:
                    shown = key.value or "null"
                    kind = "" if tag.endswith(":null") else f" ({_NOT_TEXT_KEYS[tag]})"
                    raise _Refused(key.start_mark,
                                   f"key {shown} is not a string{kind}; quote it ('{shown}') if it is meant as text")

    return LimitedComposer


def _parse_yaml(text: str, name: str, limits: Limits) -> Any:
    yaml = YAML(typ="rt")
    yaml.version = (1, 2)
    yaml.allow_duplicate_keys = False
    yaml.Composer = _limited_composer(limits)
    try:
        return yaml.load(io.StringIO(text))
    except _Refused as exc:
        line, col = (exc.mark.line + 1, exc.mark.column + 1) if exc.mark else (1, 1)
        raise _fail(name, line, col, exc.message) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = (exc.problem or "").strip() or "invalid YAML"
        if "duplicate key" in str(exc):
            what = "duplicate key " + str(exc).split("duplicate key", 1)[1].split("\n", 1)[0].strip()
        raise StoryboardError([Problem(Location(name, line, col), f"YAML syntax error: {what}")]) from None
    except ReaderError as exc:
        line, col = _line_col(text, exc.position if isinstance(exc.position, int) else 0)
        char = exc.character
        what = f"character U+{char:04X} is not allowed in YAML" if isinstance(char, int) else str(exc.reason)
        raise _fail(name, line, col, f"{what} (control characters cannot appear in a storyboard)") from None
    except RecursionError:
        raise _fail(name, 1, 1, "values nest too deeply") from None
    except Exception as exc:  # noqa: BLE001 - ruamel raises a few unmarked errors too
        raise StoryboardError([Problem(Location(name, 1, 1), f"YAML error: {exc}")]) from None


def _line_col(text: str, index: int) -> tuple[int, int]:
    index = max(0, min(index, len(text)))
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _plain(node: Any) -> Any:
    """ruamel's commented containers as plain dicts/lists (pydantic wants those)."""
    if isinstance(node, dict):
        # int keys stay ints (scene seeds are keyed by segment number); the composer refused other non-text keys
        return {(k if isinstance(k, int) and not isinstance(k, bool) else str(k)): _plain(v) for k, v in node.items()}
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
        line, col = (node.lc.line, node.lc.col) if node.lc.line is not None else (0, 0)
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


_MISSING = object()


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part, _MISSING if part not in node else None)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _MISSING


def _clean_loc(loc: Loc, data: Any = _MISSING) -> Loc:
    """pydantic's loc without the union member tags it adds ("Crossfade", "literal['cut','continue']").

    With ``data``, a part is kept when the document has it there (so a user's key
    "Scenes" is not mistaken for a tag); the last part may be a missing key.
    """
    if data is _MISSING:
        return tuple(p for p in loc if isinstance(p, int) or ("[" not in p and not p[:1].isupper()))
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        child = _child(node, part)
        if child is not _MISSING:
            out.append(part)
            node = child
        elif i == len(loc) - 1 and isinstance(part, str) and "[" not in part and not part[:1].isupper():
            out.append(part)  # a missing key, named by its field
        elif isinstance(part, str) and ("[" in part or part[:1].isupper()):
            continue
        else:
            out.append(part)
    return tuple(out)


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


def _message(err: Mapping[str, Any], loc: Loc) -> str:
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
    plain = _plain(data)
    for err in exc.errors(include_url=False):
        raw = tuple(err["loc"])
        loc = _clean_loc(raw, plain)
        if err["type"] == "literal_error" and loc and loc[-1] == "transition":
            msg = f"must be 'cut', 'continue' or {{crossfade: <time>}} (got {err.get('input')!r})"
            err = {**err, "type": "value_error", "msg": msg, "ctx": {}}
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
        if rest and field and (msg.startswith((field + " ", field + ":"))):
            msg = _path_text(rest) + msg[len(field):]
        elif rest[:-1]:
            msg = f"{_path_text(rest[:-1])}: {msg}"
        problems.append(Problem(where, f"{label}: {msg}" if label else msg))
        seen[loc] = len(problems) - 1
    problems.sort(key=lambda p: (p.location.line, p.location.col))
    return problems
