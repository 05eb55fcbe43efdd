"""Write a ``Storyboard`` back out as storyboard YAML (the inverse of ``loads``).

``to_yaml(board)`` gives YAML 1.2 text that ``loads`` reads back to an equal
model: timecodes in their written form (``10s``, ``240f``), only what differs
from the language's defaults, ``params`` with only the fields that were set, and
every string that a YAML 1.1 tool would read as something else (``16:9`` is the
number 969 there, ``off`` is false) quoted.

One limit: a time held as a fraction of a second with no finite decimal form
(1/3 s, only possible for boards built in code) is written with six decimals,
which can move it by a fraction of a microsecond.
"""
from __future__ import annotations

import io
import re
from fractions import Fraction
from typing import Any

from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, FoldedScalarString, LiteralScalarString

from ..timecode import Timecode
from .models import Audio, Crossfade, EndpointParams, Scene, Storyboard

__all__ = ["timecode_text", "to_yaml", "yaml_string"]

_STR = "tag:yaml.org,2002:str"
_RESOLVERS = (VersionedResolver(version=(1, 1)), VersionedResolver(version=(1, 2)))

# Key order in the written file: how people write storyboards (the examples' order).
_ORDER: dict[type, tuple[str, ...]] = {
    Storyboard: ("version", "title", "output", "audio", "defaults", "scenes"),
    Scene: ("id", "duration", "transition", "prompt", "style", "keyframes", "beats", "params"),
}
# Small mappings written on one line ({at: 0s, image: a.png}), as in the examples.
_FLOW = {"output", "segment", "colour", "keyframes", "transition", "loras"}
_ALWAYS = {(Storyboard, "version")}  # written even when equal to the default


def to_yaml(board: Storyboard) -> str:
    """``board`` as storyboard YAML text that ``loads`` reads back to an equal model."""
    data = _model(board)
    yaml = YAML(typ="rt")
    yaml.version = None  # no %YAML directive: the loader reads storyboards as 1.2 anyway
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.allow_unicode = True
    out = io.StringIO()
    yaml.dump(data, out)
    return _spaced(out.getvalue())


def timecode_text(t: Timecode) -> str:
    """A timecode as the storyboard language writes it, exact where a decimal can be."""
    if t.seconds is None or t.seconds.denominator == 1:
        return str(t)
    exact = _decimal(t.seconds)
    return f"{exact}s" if exact is not None else str(t)


def yaml_string(text: str) -> Any:
    """``text`` as a YAML scalar that reads back as this string in YAML 1.1 and 1.2."""
    if "\n" in text and _literal_ok(text):
        return LiteralScalarString(text)
    if len(text) > _FOLD_AT and _fold_ok(text):
        folded = FoldedScalarString(text)
        folded.fold_pos = _fold_positions(text)
        return folded
    for resolver in _RESOLVERS:
        if resolver.resolve(ScalarNode, text, (True, False)) != _STR:
            return DoubleQuotedScalarString(text)
    if text != text.strip() or "\t" in text or "\r" in text or "\n" in text:
        return DoubleQuotedScalarString(text)
    return text


# --------------------------------------------------------------------------- internals


def _decimal(value: Fraction) -> str | None:
    """Exact decimal text of ``value``, or None when it has none."""
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1:
        return None
    places = max(twos, fives)
    scaled = abs(value.numerator) * (10**places // value.denominator)
    whole, frac = divmod(scaled, 10**places)
    sign = "-" if value < 0 else ""
    return f"{sign}{whole}.{str(frac).rjust(places, '0').rstrip('0')}" if places else f"{sign}{whole}"


_FOLD_AT = 76  # longer one-line strings (prompts) are written folded (>-) over lines of about this length


def _fold_ok(text: str) -> bool:
    """A ``>-`` block reads back as ``text``: single spaces only, nothing a fold would change."""
    return (
        text == text.strip()
        and "  " not in text
        and not any(ch in text for ch in "\n\r\t")
        and text.isprintable()
    )


def _fold_positions(text: str) -> list[int]:
    positions, line_start, last_space = [], 0, None
    for i, ch in enumerate(text):
        if ch == " ":
            if i - line_start > _FOLD_AT and last_space is not None:
                positions.append(last_space)
                line_start = last_space + 1
            last_space = i
    if len(text) - line_start > _FOLD_AT and last_space is not None and last_space > line_start:
        positions.append(last_space)
    return positions


def _literal_ok(text: str) -> bool:
    """A ``|`` block keeps ``text`` exactly (no tabs/CRs, no trailing or leading blanks that it would lose)."""
    if "\r" in text or "\t" in text or text.startswith((" ", "\n")):
        return False
    if text.endswith("\n\n") or any(line != line.rstrip() for line in text.split("\n")):
        return False
    return all(ch.isprintable() for ch in text.replace("\n", ""))


def _reference(m: BaseModel) -> BaseModel:
    """An instance of ``m``'s type holding only ``m``'s required fields: its other fields are the defaults."""
    cls = type(m)
    required = {name: getattr(m, name) for name, f in cls.model_fields.items() if f.is_required()}
    return cls.model_validate(required)


def _same(a: Any, b: Any) -> bool:
    return _jsonable(a) == _jsonable(b)


def _jsonable(v: Any) -> Any:
    if isinstance(v, BaseModel):
        return v.model_dump(mode="json")
    if isinstance(v, Timecode):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def _model(m: BaseModel, name: str = "") -> Any:
    cls = type(m)
    if isinstance(m, Audio):
        ref = _reference(m)
        if all(_same(getattr(m, f), getattr(ref, f)) for f in cls.model_fields if f != "file"):
            return yaml_string(m.file)  # the shorthand: audio: music.wav
    if isinstance(m, Crossfade):
        out = CommentedMap(crossfade=timecode_text(m.crossfade))
        out.fa.set_flow_style()
        return out
    if isinstance(m, EndpointParams):
        fields = [f for f in cls.model_fields if getattr(m, f) is not None]
    else:
        ref = _reference(m)
        fields = [
            f for f, info in cls.model_fields.items()
            if info.is_required() or (cls, f) in _ALWAYS or not _same(getattr(m, f), getattr(ref, f))
        ]
    order = _ORDER.get(cls)
    if order:
        fields.sort(key=lambda f: order.index(f) if f in order else len(order))
    out = CommentedMap()
    for f in fields:
        out[f] = _value(getattr(m, f), f)
    if name in _FLOW or (isinstance(m, EndpointParams) and _short(out)):
        out.fa.set_flow_style()
    return out


def _short(mapping: CommentedMap) -> bool:
    return all(not isinstance(v, (dict, list)) for v in mapping.values()) and len(str(dict(mapping))) <= 70


def _value(v: Any, name: str) -> Any:
    if isinstance(v, BaseModel):
        return _model(v, name)
    if isinstance(v, Timecode):
        return timecode_text(v)
    if isinstance(v, str):
        return yaml_string(v)
    if isinstance(v, (list, tuple)):
        return CommentedSeq(_value(x, name) for x in v)
    if isinstance(v, dict):
        return CommentedMap((str(k), _value(x, str(k))) for k, x in v.items())
    return v


_TOP_KEY = re.compile(r"^[a-z_]+:")
_SCENE = re.compile(r"^  - ")


def _spaced(text: str) -> str:
    """A blank line between top-level sections and between scenes, for people reading it."""
    lines = text.splitlines()
    out: list[str] = []
    in_scenes = False
    for i, line in enumerate(lines):
        if i and _TOP_KEY.match(line) and not line.startswith("title:"):
            out.append("")
            in_scenes = line.startswith("scenes:")
        elif in_scenes and _SCENE.match(line) and not out[-1].startswith("scenes:"):
            out.append("")
        out.append(line)
    return "\n".join(out) + "\n"
