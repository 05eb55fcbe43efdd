"""Malformed storyboards: each mistake is reported at its line with a clear message."""
from __future__ import annotations

import subprocess
import sys

import pytest

from composer.errors import StoryboardError
from composer.storyboard import load

GOOD_HEAD = """\
version: 1
output: {resolution: 480p, aspect_ratio: 16:9, fps: 24}
scenes:
"""

# (board text, expected line, expected message fragment)
CASES = [
    ("version: 1\nscenes: [\n", 3, "YAML syntax error"),
    ("- just\n- a list\n", 1, "must be a mapping"),
    ("version: 2\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 1, "version must be one of"),
    ("version: 1\n", 1, "missing required key 'scenes'"),
    ("version: 1\nscenes: []\n", 2, "scenes must have at least 1"),
    (GOOD_HEAD + "  - {id: a, duration: 1s, prompt: x, transiton: cut}\n", 4, "did you mean 'transition'"),
    (GOOD_HEAD + "  - id: a\n    duration: 1s\n    promt: x\n", 6, "did you mean 'prompt'"),
    (GOOD_HEAD + "  - id: a\n    duration: ten seconds\n    prompt: x\n", 5, "bad timecode 'ten seconds'"),
    (GOOD_HEAD + "  - id: a\n    duration: 0s\n    prompt: x\n", 5, "duration must be > 0"),
    (GOOD_HEAD + "  - id: a\n    duration: -2s\n    prompt: x\n", 5, "duration must be > 0"),
    (GOOD_HEAD + "  - id: a\n    duration: 2s\n    prompt: ''\n", 6, "prompt must not be empty"),
    (GOOD_HEAD + "  - id: a\n    duration: 2s\n", 4, "missing required key 'prompt'"),
    (GOOD_HEAD + "  - id: a\n    duration: 2s\n    prompt: x\n    transition: wipe\n", 7, "transition must be 'cut', 'continue' or"),
    (GOOD_HEAD + "  - {id: a, duration: 2s, prompt: x}\n  - {id: a, duration: 2s, prompt: y}\n", 5, "duplicate scene id"),
    (GOOD_HEAD + "  - {id: a, duration: 2s, prompt: x, transition: continue}\n", 4, "first scene must start with a cut"),
    (GOOD_HEAD + "  - {id: 'my scene', duration: 2s, prompt: x}\n", 4, "id 'my scene' must start with a letter"),
    ("version: 1\noutput: {resolution: 1080p}\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 2, "resolution must be one of"),
    ("version: 1\noutput: {aspect_ratio: 4:3}\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 2, "aspect_ratio must be one of"),
    ("version: 1\noutput: {fps: 120}\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 2, "fps must be ≤ 60"),
    ("version: 1\noutput: {fps: 23.976}\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 2, "fps must be a whole number"),
    ("version: 1\ndefaults:\n  segment: {frames: 100}\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 3, "must be 8k+1"),
    ("version: 1\ndefaults:\n  segment: {frames: 25, overlap: 25}\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 3, "must leave at least 8 new frames"),
    ("version: 1\ndefaults:\n  params: {num_frames: 97}\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 3, "'num_frames' cannot be set in params"),
    ("version: 1\ndefaults:\n  params: {temporal_adain_factor: 1.5}\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 3, "temporal_adain_factor must be ≤ 1"),
    ("version: 1\ndefaults:\n  params:\n    first_pass_num_inference_steps: 20\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 4, "first_pass_num_inference_steps must be ≤ 12"),
    ("version: 1\ndefaults:\n  params: {tone_map_compression_ratio: 0.33}\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 3, "multiple of 0.05"),
    ("version: 1\ndefaults:\n  params: {enable_detial_pass: true}\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 3, "did you mean 'enable_detail_pass'"),
    ("version: 1\ndefaults:\n  colour: {method: magic}\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 3, "method must be one of"),
    (GOOD_HEAD + "  - id: a\n    duration: 2s\n    prompt: x\n    params: {resolution: 720p}\n", 7, "set output.resolution"),
    (GOOD_HEAD + "  - id: a\n    duration: 4s\n    prompt: x\n    keyframes:\n      - {at: 5s, image: images/a.png}\n", 8, "keyframe at 5s is outside the scene"),
    (GOOD_HEAD + "  - id: a\n    duration: 4s\n    prompt: x\n    keyframes:\n      - {at: 1s, image: images/missing.png}\n", 8, "image not found: images/missing.png"),
    (GOOD_HEAD + "  - id: a\n    duration: 4s\n    prompt: x\n    keyframes:\n      - {at: 1s}\n", 8, "missing required key 'image'"),
    (GOOD_HEAD + "  - id: a\n    duration: 4s\n    prompt: x\n    keyframes:\n      - {at: 1s, image: images/a.png, fit: stretch}\n", 8, "fit must be one of"),
    (GOOD_HEAD + "  - id: a\n    duration: 4s\n    prompt: x\n    keyframes:\n      - {at: 1s, image: images/a.png, strength: 2}\n", 8, "strength must be ≤ 1"),
    (GOOD_HEAD + "  - id: a\n    duration: 4s\n    prompt: x\n    beats:\n      - {at: 0s, prompt: y}\n", 8, "beat at 0s must fall inside the scene"),
    (GOOD_HEAD + "  - id: a\n    duration: 4s\n    prompt: x\n    beats:\n      - {at: 1x, prompt: y}\n", 8, "bad timecode '1x'"),
    (GOOD_HEAD + "  - {id: a, duration: 1s, prompt: x}\n  - {id: b, duration: 4s, prompt: y, transition: {crossfade: 2s}}\n", 5, "crossfade of 48 frames is longer"),
    (GOOD_HEAD + "  - {id: a, duration: 1s, prompt: x}\n  - {id: b, duration: 4s, prompt: y, transition: {crossfade: 0s}}\n", 5, "crossfade must be > 0"),
    ("version: 1\naudio: audio/nope.mp3\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 2, "audio file not found"),
    ("version: 1\ntitle: a\ntitle: b\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 3, "duplicate key"),
    ("version: 1\ndefaults:\n  params: {seed: 3}\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 3, "defaults.seed"),
    (GOOD_HEAD + "  - id: a\n    duration: 1:5\n    prompt: x\n", 5, "did you mean '1:05' or '1.5s'?"),
    (GOOD_HEAD + "  - {id: a, duration: 1s, prompt: x}\nnull: 7\n", 5, "key null is not a string"),
    (GOOD_HEAD + "  - {id: a, duration: 1s, prompt: x}\n<<: {a: 1}\n", 5, "merge keys ('<<') are not supported"),
    (GOOD_HEAD + "  - {id: a, duration: 1s, prompt: x}\nScenes: 1\n", 5, "unknown key 'Scenes' (did you mean 'scenes'?)"),
    ("version: 1\noutput: {fps: '24'}\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n", 2,
     "fps must be a whole number (got '24')"),
]


@pytest.mark.parametrize("text, line, fragment", CASES, ids=[c[2][:40] for c in CASES])
def test_malformed_board_reports_line_and_message(write_board, text, line, fragment):
    path = write_board(text)
    with pytest.raises(StoryboardError) as info:
        load(path)
    problems = info.value.problems
    assert problems, "no problem reported"
    matching = [p for p in problems if fragment in p.message]
    assert matching, f"no message containing {fragment!r} in {[str(p) for p in problems]}"
    assert matching[0].location.line == line, str(matching[0])
    assert matching[0].location.file == str(path)
    assert str(matching[0]).startswith(f"{path}:{line}:")


def test_all_problems_are_reported_at_once(write_board):
    path = write_board(GOOD_HEAD + "  - id: a\n    duration: 2s\n    promt: x\n  - id: b\n    duration: 1s\n    prompt: y\n    transition: sideways\n")
    with pytest.raises(StoryboardError) as info:
        load(path)
    lines = sorted(p.location.line for p in info.value.problems)
    assert 4 in lines and 6 in lines and 10 in lines, [str(p) for p in info.value.problems]


def test_yaml_12_reads_aspect_times_and_off_as_text(write_board):
    path = write_board(GOOD_HEAD.replace("16:9", "9:16") + "  - {id: off, duration: 00:00:02.500, prompt: x}\n")
    board = load(path)
    assert board.output.aspect_ratio == "9:16"
    assert board.scenes[0].id == "off"
    assert board.scenes[0].duration.to_frames(24) == 60


def test_cli_validate_exit_code_and_no_traceback(write_board):
    path = write_board(GOOD_HEAD + "  - {id: a, duration: 1s, prompt: x, transiton: cut}\n")
    proc = subprocess.run([sys.executable, "-m", "composer", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"{path}:4:38: scene 'a': unknown key 'transiton' (did you mean 'transition'?)"]


def test_cli_validate_ok_summary(write_board):
    path = write_board(GOOD_HEAD + "  - {id: a, duration: 10s, prompt: x}\n")
    proc = subprocess.run([sys.executable, "-m", "composer", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "1 scene," in proc.stdout and "240 frames at 24 fps" in proc.stdout and "3 requests" in proc.stdout


def test_missing_file_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "composer", "plan", str(tmp_path / "nope.yaml")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{tmp_path / 'nope.yaml'}:1:1: file not found"


def test_every_colour_method_the_storyboard_accepts_is_one_estimate_runs(write_board):
    import typing

    import numpy as np

    from composer.colour import METHODS, ColourTransform, estimate
    from composer.storyboard.models import ColourSpec

    rng = np.random.default_rng(0)
    src = [rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)]
    dst = [np.clip(src[0].astype(int) * 9 // 10 + 12, 0, 255).astype(np.uint8)]
    accepted = typing.get_args(ColourSpec.model_fields["method"].annotation)
    assert set(accepted) == {"auto", *METHODS}
    for method in accepted:
        board = f"version: 1\ndefaults:\n  colour: {{method: {method}}}\nscenes:\n  - {{id: a, duration: 1s, prompt: x}}\n"
        path = write_board(board)
        assert load(path).defaults.colour.method == method
        assert isinstance(estimate(src, dst, method), ColourTransform)


def test_an_unknown_colour_method_is_a_located_one_line_cli_error(write_board):
    path = write_board("version: 1\ndefaults:\n  colour:\n    method: sepia\nscenes:\n  - {id: a, duration: 1s, prompt: x}\n")
    proc = subprocess.run([sys.executable, "-m", "composer", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"{path}:4:") and "method must be one of" in line, line
