"""pin/reroll edits change only the seeds lines: difflib shows nothing else, whatever the file's indent style."""
from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

import composer
from composer.storyboard.edit import pin_seed

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "storyboards").glob("*.yaml"))

BODY = """\
version: 1   # header comment
title: "Styles"
output: {{resolution: 480p, aspect_ratio: "16:9", fps: 24}}
defaults:
{i}seed: 11
{i}segment: {{frames: 49, overlap: 9}}
scenes:
{s}id: a          # the opening
{s2}duration: 3s
{s2}prompt: 'a quiet harbour'
{s}id: b
{s2}duration: 5s
{s2}prompt: >-
{s2}{i}a boat leaves
{s2}{i}the pier
"""


def _styled(indent: int, offset: int) -> str:
    i = " " * indent
    dash = " " * offset + "- "
    s = dash
    s2 = " " * len(dash)
    return BODY.format(i=i, s=s, s2=s2)


STYLES = {  # name: (indent, dash offset)
    "2-space, dash flush": (2, 0),
    "2-space, dash offset": (2, 2),
    "4-space, dash flush": (4, 0),
    "4-space, dash offset 2": (4, 2),
    "4-space, dash offset 4": (4, 4),
}


def _changed(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def _edit(path: Path, scene: str, index: int, seed: int) -> list[str]:
    before = path.read_text()
    pin_seed(path, scene, index, seed)
    after = path.read_text()
    return _changed(before, after)


@pytest.mark.parametrize("style", list(STYLES))
def test_pin_changes_only_seeds_lines(style, tmp_path):
    path = tmp_path / "b.yaml"
    indent, offset = STYLES[style]
    path.write_text(_styled(indent, offset))
    col = " " * (offset + 2)  # the scene's keys sit after "- "
    assert _edit(path, "b", 1, 4242) == [f"+{col}seeds: {{1: 4242}}"]
    # a second pin in the same scene edits that one line in place
    assert _edit(path, "b", 0, 7) == [f"-{col}seeds: {{1: 4242}}", f"+{col}seeds: {{1: 4242, 0: 7}}"]
    # re-pinning an existing index replaces only its value
    assert _edit(path, "b", 1, 5) == [f"-{col}seeds: {{1: 4242, 0: 7}}", f"+{col}seeds: {{1: 5, 0: 7}}"]
    board = composer.load(path)
    seeds = {s.index_in_scene: s.seed for s in composer.plan(board).segments if s.scene == "b"}
    assert seeds[0] == 7 and seeds[1] == 5
    assert "# the opening" in path.read_text() and "# header comment" in path.read_text()


def test_block_style_seeds_grow_by_one_line(tmp_path):
    text = _styled(4, 2).replace("  - id: b\n", "  - id: b\n    seeds:\n        0: 3   # keep\n")
    path = tmp_path / "b.yaml"
    path.write_text(text)
    assert _edit(path, "b", 1, 9) == ["+        1: 9"]
    assert _edit(path, "b", 0, 4) == ["-        0: 3   # keep", "+        0: 4   # keep"]
    assert composer.load(path).scenes[1].seeds == {0: 4, 1: 9}


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_pin_every_shipped_example_touches_only_seeds(example, tmp_path):
    shutil.copytree(example.parent, tmp_path / "boards")
    path = tmp_path / "boards" / example.name
    board = composer.load(path)
    plan = composer.plan(board)
    picked = {seg.index: seg for seg in plan.segments[:2] + plan.segments[-1:]}.values()
    for seg in picked:
        diff = _edit(path, seg.scene, seg.index_in_scene, 90000 + seg.index)
        assert diff and all("seeds:" in line or line.lstrip("+-").strip().startswith(f"{seg.index_in_scene}:")
                            for line in diff), diff
        assert len([line for line in diff if line.startswith("+")]) == 1
    replanned = composer.plan(composer.load(path))
    for seg in picked:
        assert replanned.segments[seg.index].seed == 90000 + seg.index


def test_empty_flow_seeds_and_one_line_scenes(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text(_styled(2, 0).replace("- id: b\n", "- id: b\n  seeds: {}   # none yet\n"))
    assert _edit(path, "b", 2, 8) == ["-  seeds: {}   # none yet", "+  seeds: {2: 8}   # none yet"]
    # a one-line flow scene cannot take a new line; the seed still lands (whole-file dump) and comments stay
    path.write_text(_styled(2, 0).replace("- id: a          # the opening\n  duration: 3s\n  prompt: 'a quiet harbour'\n",
                                          "- {id: a, duration: 3s, prompt: 'a quiet harbour'}   # the opening\n"))
    pin_seed(path, "a", 0, 31)
    assert composer.load(path).scene("a").seeds == {0: 31}
    assert "# the opening" in path.read_text() and "# header comment" in path.read_text()
