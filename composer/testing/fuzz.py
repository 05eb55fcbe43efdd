"""Storyboard fuzzing: generated boards and mutated example boards, and how each one ends.

``random_board`` / ``mutate`` draw from a ``random.Random`` (fast, reproducible by seed,
used by ``benchmarks/fuzz.py``); ``boards()`` and ``documents()`` wrap them as
hypothesis strategies for the test suite. ``run_one`` feeds one input through
``composer.loads`` (or ``load`` for raw bytes) and ``composer.plan`` and classifies the end.
"""
from __future__ import annotations

import json
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ComposerError, StoryboardError

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "storyboards"

# Values a user might write where a time goes: good ones, near misses and hostile ones.
TIMES: list[Any] = [
    "1s", "2s", "2.5s", "3s", "48f", "00:00:03.500", "0:04", "250ms", 3, 1.5, "1m",
    "1:5", "100h", "100000s", "1000000000s", "9999999999f", "-1s", "0s", "0", "ten", "", None, True, [1],
    {"a": 1}, "1e3s", "00:61", 1e308, -0.0, "+2s", " 2s ", "2 s", "1.5f", "24:00:00", "5h",
]
PROMPTS: list[Any] = ["a harbour at dawn", "walk", "", "x" * 3000, None, "ünïcödé 🎬", 7, ["a"], "line\nbreak"]
IDS: list[Any] = ["a", "b", "dock", "x y", "", "a" * 300, "ünï", 5, None, "a.b-c_d", "-a"]
IMAGES: list[Any] = [
    "images/boat.png", "images/forest.png", "images/city_night.png", "images/missing.png", "", "/dev/zero",
    "images", "a" * 3000 + ".png", "../README.md", "audio/harbour.wav", None, 3, "~nosuchuser/a.png", "\ud800.png",
    "a\x00b.png", "images/", "~",
]
AUDIO: list[Any] = ["audio/harbour.wav", "audio/nope.wav", "images/boat.png", "audio", "/dev/zero", "", None, 5]
NUMBERS: list[Any] = [0, 1, 0.5, -1, 2, 1.5, 100, 2**32, "1", None, True, 1e309, float("nan"), "x", [], {}]
PARAM_VALUES: dict[str, list[Any]] = {
    "temporal_adain_factor": [0.5, 0.0, 1.0, None, 1.5, "x", 0.33],
    "tone_map_compression_ratio": [0.0, 0.25, 0.33, None, 2],
    "first_pass_num_inference_steps": [8, 1, 20, None, 2.5],
    "second_pass_num_inference_steps": [8, 0, None],
    "second_pass_skip_initial_steps": [5, 17, None],
    "enable_detail_pass": [True, False, None, "yes"],
    "expand_prompt": [True, False, "no"],
    "constant_rate_factor": [29, 0, 52, None],
    "negative_prompt": ["blurry", "", None, 3],
    "num_frames": [97],
    "seed": [3],
    "loras": [[], [{"path": "x", "weight_name": None, "scale": 1.0}], None, "x"],
    "enable_safety_checker": [True, False],
}
# Lines that break the structure in ways seen in the wild or in earlier fuzzing.
HOSTILE_LINES = [
    "<<: {a: 1}", "null: 7", "? [a, b]\n: 3", "1.5: x", "true: x", "x: &a [1, 2]", "y: *a", "z: *undefined",
    "\x07bell: 1", "tab:\tvalue", "key: 'unterminated", "- stray", "  deeper: 1", "title: !!binary aGk=",
    "title: !custom x", "%YAML 1.1", "---", "...", "title: |", "{", "[", "title: " + "[" * 40 + "]" * 40,
    "version: 1\nversion: 1", "\ufeffversion: 1", "scenes: ~", "scenes: {}", "scenes: [[]]",
]
TOKENS = [
    "null", "~", "-1", "1e309", ".nan", ".inf", "[]", "{}", "''", '"\\x00"', "&x 1", "*x", "1:5", "100h",
    "yes", "0x1F", "0o17", "2001-01-01", "!!int 3", "a" * 500, "'" + "b" * 5000 + "'", "{crossfade: 1:5}",
    "[*a, *a]", "\x01", "🎬", "\u202e", "\\", "#", ":", "- ", "? ", '"\\ud800"', '"~nosuchuser/x"', '"\\0"',
]


def _pick(rng: random.Random, pool: list[Any]) -> Any:
    return pool[rng.randrange(len(pool))]


def _maybe(rng: random.Random, p: float = 0.5) -> bool:
    return rng.random() < p


def random_document(rng: random.Random) -> dict[str, Any]:
    """A storyboard as data: mostly well-formed, with wrong values mixed in at some rate."""
    bad = rng.random() * 0.3  # how often a field takes a hostile value in this document

    def good_or(good: list[Any], pool: list[Any]) -> Any:
        return _pick(rng, pool) if _maybe(rng, bad) else _pick(rng, good)

    doc: dict[str, Any] = {"version": good_or([1], [1, 2, "1", None, 1.0])}
    if _maybe(rng, 0.5):
        doc["title"] = good_or(["A film", ""], PROMPTS)
    if _maybe(rng, 0.6):
        out: dict[str, Any] = {}
        if _maybe(rng):
            out["resolution"] = good_or(["480p", "720p"], ["1080p", 480, None])
        if _maybe(rng):
            out["aspect_ratio"] = good_or(["16:9", "9:16", "1:1"], ["4:3", "auto", 1.77])
        if _maybe(rng):
            out["fps"] = good_or([24, 25, 30], [0, 61, 23.976, "24", 1, 60, -1])
        doc["output"] = out
    if _maybe(rng, 0.25):
        if _maybe(rng):
            doc["audio"] = good_or(["audio/harbour.wav"], AUDIO)
        else:
            doc["audio"] = {"file": good_or(["audio/harbour.wav"], AUDIO),
                            "offset": good_or(["0s", "2s"], TIMES), "volume": good_or([1.0, 0.5], NUMBERS),
                            "fade_in": good_or(["1s"], TIMES), "fade_out": good_or(["1s"], TIMES)}
    if _maybe(rng, 0.5):
        defaults: dict[str, Any] = {}
        if _maybe(rng):
            defaults["seed"] = good_or([0, 7, 2024], [-1, 2**32, "x", 1.5])
        if _maybe(rng):
            defaults["style"] = good_or(["cinematic", ""], PROMPTS)
        if _maybe(rng, 0.4):
            defaults["segment"] = {"frames": good_or([121, 97, 257], [100, 17, 1441, 2000, 0]),
                                   "overlap": good_or([17, 25], [9, 121, 8, 0])}
        if _maybe(rng, 0.4):
            defaults["params"] = _params(rng, bad)
        if _maybe(rng, 0.3):
            defaults["colour"] = {"method": good_or(["auto", "affine", "none"], ["magic", None, 1]),
                                  "strength": good_or([1.0, 0.5], NUMBERS)}
        doc["defaults"] = defaults
    n = rng.choice([0, 1, 1, 2, 3, 4, 6]) if _maybe(rng, 0.95) else rng.randrange(20, 60)
    doc["scenes"] = [_scene(rng, i, bad) for i in range(n)]
    if _maybe(rng, bad):
        doc[_pick(rng, ["scene", "Scenes", "extra", "versoin"])] = _pick(rng, NUMBERS)
    if _maybe(rng, bad / 2):
        del doc["scenes"]
    return doc


def _params(rng: random.Random, bad: float) -> dict[str, Any]:
    names = list(PARAM_VALUES)
    out: dict[str, Any] = {}
    for name in rng.sample(names, rng.randrange(0, 4)):
        values = PARAM_VALUES[name]
        out[name] = values[0] if not _maybe(rng, bad * 2) else _pick(rng, values)
    return out


def _scene(rng: random.Random, i: int, bad: float) -> dict[str, Any]:
    def good_or(good: list[Any], pool: list[Any]) -> Any:
        return _pick(rng, pool) if _maybe(rng, bad) else _pick(rng, good)

    scene: dict[str, Any] = {
        "id": good_or([f"s{i}", f"scene-{i}"], IDS),
        "duration": good_or(["2s", "3s", "5s", "4.5s", "120f", "0:06"], TIMES),
        "prompt": good_or(["a harbour at dawn", "a slow pan across rooftops"], PROMPTS),
    }
    if i and _maybe(rng, 0.6):
        scene["transition"] = good_or(["cut", "continue", {"crossfade": "0.5s"}],
                                      ["wipe", None, {"crossfade": _pick(rng, TIMES)}, {"crossfade": "1s", "x": 1}])
    if _maybe(rng, 0.35):
        scene["keyframes"] = [
            {"at": good_or(["0s", "1s", "24f"], TIMES), "image": good_or(IMAGES[:3], IMAGES),
             **({"fit": good_or(["cover", "contain"], ["stretch", None])} if _maybe(rng, 0.3) else {}),
             **({"strength": good_or([1.0, 0.6], NUMBERS)} if _maybe(rng, 0.3) else {})}
            for _ in range(rng.randrange(1, 4))
        ]
    if _maybe(rng, 0.3):
        scene["beats"] = [{"at": good_or(["1s", "2s"], TIMES), "prompt": good_or(["later"], PROMPTS)}
                          for _ in range(rng.randrange(1, 3))]
    if _maybe(rng, 0.2):
        scene["params"] = _params(rng, bad)
    if _maybe(rng, 0.1):
        scene["seeds"] = good_or([{0: 5}, {1: 7, 0: 3}], [{-1: 2}, {"x": 3}, {0: -5}, [1]])
    if _maybe(rng, bad):
        scene[_pick(rng, ["promt", "transiton", "keyframe", "durations"])] = "x"
    return scene


def dump_document(doc: Any, rng: random.Random) -> str:
    """YAML text for a document: block style, flow style, or JSON (which is YAML too)."""
    style = rng.randrange(3)
    if style == 0:
        return json.dumps(doc, ensure_ascii=False, allow_nan=True) + "\n"
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = style == 1
    yaml.allow_unicode = True
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue()


def random_board(rng: random.Random) -> str:
    """One generated storyboard as YAML text."""
    return dump_document(random_document(rng), rng)


@dataclass(frozen=True)
class Mutant:
    """A mutated example: its text (or raw bytes) and the 1-based line the mutation touched."""

    data: str | bytes
    line: int
    op: str


def examples() -> dict[str, str]:
    """The shipped example boards, by file name."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(EXAMPLES_DIR.glob("*.yaml"))}


def mutate(text: str, rng: random.Random, rounds: int | None = None) -> Mutant:
    """Apply 1–3 random edits to a board's text (lines, values, characters, bytes)."""
    lines = text.split("\n")
    touched = 1
    op = ""
    for _ in range(rounds or rng.randrange(1, 4)):
        if not lines:
            lines = [""]
        i = rng.randrange(len(lines))
        touched = i + 1
        op = rng.choice(["delete", "duplicate", "swap", "value", "insert", "indent", "char", "truncate",
                         "repeat", "bytes", "token"])
        line = lines[i]
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, line)
        elif op == "swap":
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            touched = min(i, j) + 1
        elif op == "value" and ":" in line:
            key = line.split(":", 1)[0]
            lines[i] = f"{key}: {_pick(rng, TOKENS + [json.dumps(t) if isinstance(t, str) else str(t) for t in TIMES])}"
        elif op == "insert":
            indent = len(line) - len(line.lstrip(" "))
            new = _pick(rng, HOSTILE_LINES).split("\n")
            lines[i:i] = [" " * indent + x for x in new]
        elif op == "indent":
            lines[i] = (" " * rng.choice([1, 2, 4])) + line if _maybe(rng) else line[rng.choice([1, 2]):]
        elif op == "char" and line:
            k = rng.randrange(len(line) + 1)
            ch = rng.choice(["\x00", "\x1b", "\x7f", "\u2028", "\ud800", "\t", ":", "-", "#", "&", "*", "!", "|", ">",
                             "'", '"', "{", "[", "é", "\ufffe"])
            lines[i] = line[:k] + ch + line[k + 1 :]
        elif op == "truncate":
            joined = "\n".join(lines)
            cut = rng.randrange(len(joined) + 1)
            lines = joined[:cut].split("\n")
            touched = len(lines)
        elif op == "repeat":
            lines[i:i + 1] = [line] * rng.randrange(2, 50)
        elif op == "token" and line.strip():
            k = rng.randrange(len(line))
            lines[i] = line[:k] + _pick(rng, TOKENS) + line[k:]
        elif op == "bytes":
            raw = "\n".join(lines).encode("utf-8", "surrogatepass")
            prefix = "\n".join(lines[:i]).encode("utf-8", "surrogatepass")
            at = min(len(raw), len(prefix) + (1 if i else 0) + rng.randrange(len(line.encode("utf-8", "surrogatepass")) + 1))
            bad = rng.choice([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\x80\x80"])
            return Mutant(raw[:at] + bad + raw[at:], i + 1, "bytes")
    return Mutant("\n".join(lines), touched, op)


def random_input(rng: random.Random) -> Mutant:
    """Half generated boards, half mutated examples (and some mutated generated boards)."""
    kind = rng.random()
    if kind < 0.45:
        return Mutant(random_board(rng), 0, "generated")
    if kind < 0.9:
        texts = examples()
        return mutate(texts[rng.choice(sorted(texts))], rng)
    return mutate(random_board(rng), rng)


@dataclass
class Outcome:
    """How one input ended: ``accepted``, ``located`` (an error with a place), ``at_1_1``, ``uncaught``."""

    kind: str
    message: str = ""
    seconds: float = 0.0
    cause_at_1_1: bool | None = None  # for at_1_1: whether the cause plausibly is there


# Messages about the whole file, whose right place is its start.
_WHOLE_FILE = (
    "a storyboard must be a mapping", "missing required key 'scenes'", "storyboard text is over", "file is",
    "is a directory", "is not a regular file", "file not found", "cannot read",
)


def run_one(data: str | bytes, *, base_dir: Path | None = None, touched_line: int = 0) -> Outcome:
    """Load (and when valid, plan) one input; never raises for a composer error."""
    import composer

    base_dir = base_dir or EXAMPLES_DIR
    t0 = time.perf_counter()
    try:
        if isinstance(data, bytes):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "board.yaml"
                path.write_bytes(data)
                board = composer.load(path)  # paths then resolve beside the temporary file
        else:
            board = composer.loads(data, name="board.yaml", base_dir=base_dir)
        composer.plan(board)
    except StoryboardError as exc:
        seconds = time.perf_counter() - t0
        try:
            str(exc).encode("utf-8")  # what the CLI prints must be printable
        except UnicodeEncodeError as bad:
            return Outcome("uncaught", f"unprintable message: {bad}", seconds)
        first = exc.problems[0] if exc.problems else None
        if first is None:
            return Outcome("at_1_1", "(no problems listed)", seconds, False)
        message = first.message
        if (first.location.line, first.location.col) != (1, 1):
            return Outcome("located", message, seconds)
        return Outcome("at_1_1", message, seconds, _cause_at_start(data, message, touched_line))
    except ComposerError as exc:  # a plan error: valid board, unplannable (a message, no place)
        return Outcome("located" if str(exc) else "at_1_1", f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - counting these is the point
        return Outcome("uncaught", f"{type(exc).__name__}: {exc}"[:300], time.perf_counter() - t0)
    return Outcome("accepted", "", time.perf_counter() - t0)


def _cause_at_start(data: str | bytes, message: str, touched_line: int) -> bool:
    if touched_line == 1 or message.startswith(_WHOLE_FILE) or "must be a mapping" in message:
        return True
    if message.startswith("not UTF-8 text:"):
        return " at offset 0 " in message
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if message.startswith("character U+"):
        return text[:1] == chr(int(message[len("character U+"):].split()[0], 16))
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    key = first.split(":", 1)[0].strip().strip("{").strip("\"'")
    return bool(key) and (f"'{key}'" in message or message.startswith(key) or f" {key} " in message)


def boards() -> Any:
    """A hypothesis strategy of inputs (``Mutant``): generated boards and mutated examples."""
    from hypothesis import strategies as st

    return st.randoms(use_true_random=False).map(random_input)


def documents() -> Any:
    """A hypothesis strategy of (document, YAML text) pairs from the structured generator."""
    from hypothesis import strategies as st

    def draw(rng: random.Random) -> tuple[dict[str, Any], str]:
        doc = random_document(rng)
        return doc, dump_document(doc, rng)

    return st.randoms(use_true_random=False).map(draw)
