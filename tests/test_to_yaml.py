"""Storyboard → YAML (``to_yaml``) reads back with ``loads`` to the same storyboard."""
from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from composer.planner import plan
from composer.storyboard import load, loads
from composer.storyboard.dump import to_yaml
from composer.storyboard.models import (
    Audio,
    Beat,
    Crossfade,
    Defaults,
    EndpointParams,
    Keyframe,
    Output,
    Scene,
    SegmentSpec,
    Storyboard,
    params_dict,
)
from composer.timecode import Timecode

from conftest import make_image

EXAMPLES = sorted((Path(__file__).parent.parent / "storyboards").glob("*.yaml"))


def roundtrip(board: Storyboard, base_dir: Path) -> Storyboard:
    text = to_yaml(board)
    again = loads(text, base_dir=base_dir)
    assert again.model_dump() == board.model_dump(), text
    assert again.model_dump(mode="json") == board.model_dump(mode="json"), text
    # params keep exactly the fields that were set (what the planner merges into requests)
    assert params_dict(again.defaults.params) == params_dict(board.defaults.params)
    for a, b in zip(again.scenes, board.scenes):
        assert params_dict(a.params) == params_dict(b.params)
    return again


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_round_trips(path: Path) -> None:
    board = load(path)
    again = roundtrip(board, path.parent)
    assert plan(again).to_json() == plan(board).to_json()
    # and it is stable: writing the re-read board gives the same text
    assert to_yaml(again) == to_yaml(board)


def test_models_do_not_import_the_dumper() -> None:
    # models.py <-> dump.py was an import circle; the dumper now sits above the models.
    import ast
    import composer.storyboard.models as models

    tree = ast.parse(Path(models.__file__).read_text())
    names = {a.module for a in ast.walk(tree) if isinstance(a, ast.ImportFrom)}
    assert "dump" not in names and not hasattr(models.Storyboard, "to_yaml")
    board = load(EXAMPLES[0])
    assert loads(to_yaml(board), base_dir=EXAMPLES[0].parent).model_dump() == board.model_dump()


def test_board_built_in_code(board_dir: Path) -> None:
    board = Storyboard(
        title="Built in code",
        output=Output(resolution="480p", aspect_ratio="9:16", fps=25),
        audio=Audio(file="audio/tone.wav", fade_out="500ms", volume=0.5),
        defaults=Defaults(style="noir", seed=7, segment=SegmentSpec(frames=97, overlap=9),
                          params=EndpointParams(enable_detail_pass=True)),
        scenes=[
            Scene(id="one", duration=Timecode.from_frames(100), prompt="A street",
                  keyframes=[Keyframe(at="0s", image="images/a.png"),
                             Keyframe(at=Timecode.from_frames(50), image="images/b.png", strength=0.5, fit="contain")],
                  beats=[Beat(at="2s", prompt="It rains")]),
            Scene(id="two", duration=Timecode(seconds=Fraction(1, 128) + 3), prompt="More street",
                  transition="continue", style="", params=EndpointParams(seed=5, temporal_adain_factor=0.25)),
            Scene(id="3", duration="4s", prompt="yes", transition=Crossfade(crossfade="12f")),
        ],
    )
    text = to_yaml(board)
    again = roundtrip(board, board_dir)
    assert again.scenes[0].duration.frames == 100  # frames stay frames
    assert again.scenes[1].duration.seconds == Fraction(1, 128) + 3  # exact, not 6 decimals
    assert "3.0078125s" in text
    assert again.scenes[1].style == ""  # set to empty: not the same as unset (None)
    assert "params: {seed: 5, temporal_adain_factor: 0.25}" in text
    assert "loras" not in text and "negative_prompt" not in text  # params: only what was set
    assert "offset" not in text  # audio defaults left out
    assert isinstance(again.scenes[2].transition, Crossfade)


def test_defaults_are_left_out() -> None:
    board = Storyboard(scenes=[Scene(id="a", duration="1s", prompt="p")])
    text = to_yaml(board)
    assert text.split() == ["version:", "1", "scenes:", "-", "id:", "a", "duration:", "1s", "prompt:", "p"]
    assert loads(text).model_dump() == board.model_dump()


def test_audio_shorthand_when_only_a_file(board_dir: Path) -> None:
    board = Storyboard(audio="audio/tone.wav", scenes=[Scene(id="a", duration="1s", prompt="p")])
    assert "audio: audio/tone.wav\n" in to_yaml(board)
    roundtrip(board, board_dir)


TRICKY = ["16:9", "yes", "off", "No", "null", "~", "1", "0.5", "1e3", "00:01:02.500", "2001-12-14", "<<", "=",
          "0x1F", "0o17", ".inf", "#hash", "a: b", "- dash", "it's", '"quoted"', "{x}", "[y]", "*star", "&amp",
          "!bang", "%pct", "@at", "`tick", "a, b", "trailing ", " leading", "two\nlines", "ends\n", "tab\there",
          "ünïcødé ✓", "long " * 30 + "end", "long with: colon, #hash, and 'quotes' " * 4]


@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_strings_survive_yaml_1_1_and_1_2(text: str, board_dir: Path) -> None:
    board = Storyboard(
        title=text,
        scenes=[Scene(id="s", duration="2s", prompt=text, beats=[Beat(at="1s", prompt=text)],
                      keyframes=[Keyframe(at="0s", image="images/a.png")])],
    )
    out = to_yaml(board)
    again = roundtrip(board, board_dir)
    assert again.title == text and again.scenes[0].prompt == text and again.scenes[0].beats[0].prompt == text
    for version in ((1, 1), (1, 2)):  # a YAML 1.1 tool reads the same strings
        yaml = YAML(typ="safe", pure=True)
        yaml.version = version
        data = yaml.load(io.StringIO(out))
        assert data["title"] == text
        assert data["scenes"][0]["prompt"] == text


@pytest.mark.parametrize("name", ["a, b: c.png", "{x}.png", "#1.png", "yes", "16:9.png", "it's [1].png"])
def test_image_paths_in_one_line_keyframes(name: str, board_dir: Path) -> None:
    (board_dir / "images" / name).write_bytes((board_dir / "images" / "a.png").read_bytes())
    board = Storyboard(scenes=[Scene(id="s", duration="2s", prompt="p",
                                     keyframes=[Keyframe(at="1s", image=f"images/{name}", strength=0.5)])])
    text = to_yaml(board)
    assert "- {at: 1s, image: " in text  # still written on one line
    assert roundtrip(board, board_dir).scenes[0].keyframes[0].image == f"images/{name}"


def test_aspect_ratio_is_quoted_for_yaml_1_1_tools() -> None:
    board = Storyboard(output=Output(aspect_ratio="9:16"), scenes=[Scene(id="a", duration="1s", prompt="p")])
    text = to_yaml(board)
    assert '"9:16"' in text
    yaml = YAML(typ="safe", pure=True)
    yaml.version = (1, 1)
    assert yaml.load(io.StringIO(text))["output"]["aspect_ratio"] == "9:16"  # not the number 556


# --------------------------------------------------------------------------- generated boards

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), include_characters="\n\t"),
                min_size=1, max_size=60).filter(lambda s: s.strip())
_id = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,12}\Z")
_time = st.one_of(
    st.integers(1, 400).map(lambda n: f"{n}f"),
    st.integers(1, 2000).map(lambda n: f"{n * 5}ms"),
    st.integers(1, 20).map(lambda n: f"{n}s"),
    st.fractions(min_value=Fraction(1, 10), max_value=20, max_denominator=64).map(lambda f: Timecode(seconds=f)),
)


@st.composite
def boards(draw) -> Storyboard:
    fps = draw(st.sampled_from([12, 24, 25, 30]))
    ids = draw(st.lists(_id, min_size=1, max_size=4, unique=True))
    scenes = []
    for i, sid in enumerate(ids):
        duration = Timecode.parse(draw(_time))
        n = duration.to_frames(fps)
        if n < 4:
            duration, n = Timecode.from_frames(4 + i), 4 + i
        kf_frames = draw(st.lists(st.integers(0, n - 1), max_size=2, unique=True))
        beat_frames = draw(st.lists(st.integers(1, n - 1), max_size=2, unique=True))
        transition = "cut"
        if i:
            prev = scenes[-1].duration.to_frames(fps)
            transition = draw(st.sampled_from(["cut", "continue", "xf"]))
            if transition == "xf":
                transition = Crossfade(crossfade=Timecode.from_frames(draw(st.integers(2, max(2, min(n, prev))))))
                if transition.crossfade.frames > min(n, prev):
                    transition = "cut"
        params = draw(st.sampled_from([{}, {"seed": 3}, {"expand_prompt": True, "temporal_adain_factor": 0.35}]))
        scenes.append(Scene(
            id=sid, duration=duration, prompt=draw(_text), transition=transition,
            keyframes=[Keyframe(at=Timecode.from_frames(f), image=draw(st.sampled_from(["images/a.png", "images/b.png"])),
                                strength=draw(st.sampled_from([1.0, 0.5, 0.85])), fit=draw(st.sampled_from(["cover", "contain"])))
                       for f in kf_frames],
            beats=[Beat(at=Timecode.from_frames(f), prompt=draw(_text)) for f in beat_frames],
            params=EndpointParams(**params), style=draw(st.one_of(st.none(), _text)),
        ))
    return Storyboard(
        title=draw(st.one_of(st.just(""), _text)),
        output=Output(fps=fps, aspect_ratio=draw(st.sampled_from(["16:9", "9:16", "1:1"]))),
        defaults=Defaults(seed=draw(st.integers(0, 2**32 - 1)), style=draw(st.one_of(st.just(""), _text))),
        scenes=scenes,
    )


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("board")
    make_image(root / "images" / "a.png", hue=10)
    make_image(root / "images" / "b.png", hue=140)
    return root


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(board=boards())
def test_generated_boards_round_trip(board: Storyboard, images_dir: Path) -> None:
    roundtrip(board, images_dir)
