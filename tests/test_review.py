"""The review page: written by every render and by ``composer review``, checked as HTML and
files here, and in a real headless browser (Debian's chromium driven by Playwright) below."""
from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from composer.cli import main
from composer.manifest import read_manifest
from composer.media.reader import read_frames
from composer.rendering import render
from composer.review import write_review
from composer.review.page import build_page
from conftest import make_image

CHROMIUM = Path("/usr/bin/chromium")

BOARD = """
version: 1
title: Review test
output: {resolution: 480p, aspect_ratio: "16:9", fps: 12}
defaults:
  seed: 7
  segment: {frames: 25, overlap: 9}
scenes:
  - id: open
    duration: 3s
    prompt: a red ball rolls across a table
    keyframes:
      - {at: 0s, image: images/a.png}
      - {at: 1.5s, image: images/b.png, strength: 0.8}
    beats:
      - {at: 2s, prompt: the ball stops by a cup}
  - id: more
    duration: 2s
    transition: continue
    prompt: the cup tips over
  - id: last
    duration: 2s
    transition: {crossfade: 1s}
    prompt: a window at night
"""


class Page(HTMLParser):
    """The parts of the page the tests look at: marked elements, images, links, commands."""

    def __init__(self) -> None:
        super().__init__()
        self.segments: list[str] = []
        self.seams: list[str] = []
        self.imgs: list[dict[str, str | None]] = []
        self.urls: list[str] = []
        self.videos: list[str] = []
        self.commands: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "data-segment" in a:
            self.segments.append(a["data-segment"] or "")
        if "data-seam" in a:
            self.seams.append(a["data-seam"] or "")
        if tag == "img":
            self.imgs.append(a)
        if tag == "video":
            self.videos.append(a.get("src") or "")
        if "data-copy" in a:
            self.commands.append(a["data-copy"] or "")
        for key in ("src", "href"):
            if a.get(key):
                self.urls.append(a[key] or "")
        if tag in ("script", "link") and a.get("src"):
            self.urls.append(a["src"] or "")


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short three-scene film (two chains, a crossfade, a snapped keyframe) rendered with the preview backend."""
    root = tmp_path_factory.mktemp("review")
    make_image(root / "images" / "a.png", hue=10)
    make_image(root / "images" / "b.png", hue=140)
    board = root / "board.yaml"
    board.write_text(textwrap.dedent(BOARD).lstrip(), encoding="utf-8")
    result = render(board, root / "out" / "film.mp4", cache=root / "cache", jobs=1)
    assert result.review == root / "out" / "film.review.html"
    return root / "out" / "film.mp4"


def test_render_writes_page_with_every_segment_and_seam(film: Path) -> None:
    manifest = read_manifest(film.with_name("film.manifest.json"))
    page = parse(film.with_name("film.review.html"))
    segments = [s["index"] for s in manifest["segments"]]
    seams = [s["index"] for s in manifest["segments"] if s.get("seam")]
    assert len(manifest["plan"]["chains"]) == 2 and len(seams) >= 2
    assert sorted(int(n) for n in page.segments) == sorted(segments)
    assert sorted(int(n) for n in page.seams) == sorted(seams)
    assert page.videos == ["film.mp4"]
    # offline: nothing is fetched from anywhere but the page's own folder
    assert not [u for u in page.urls if "://" in u or u.startswith("//")]
    # three thumbnails per segment and two per seam, each a small decodable file beside the page
    assert len(page.imgs) == 3 * len(segments) + 2 * len(seams)
    for img in page.imgs:
        assert img["loading"] == "lazy"
        pic = cv2.imread(str(film.parent / str(img["src"])))
        assert pic is not None and pic.shape[1] == 160


def test_thumbnail_shows_its_own_frame(film: Path) -> None:
    """A thumbnail named for frame N looks like the film's frame N more than like its neighbours."""
    manifest = read_manifest(film.with_name("film.manifest.json"))
    for seg in manifest["plan"]["segments"][1:3]:
        n = (seg["shown_start"] + seg["shown_end"] - 1) // 2  # the strip's middle frame
        shown = cv2.imread(str(film.parent / "film.review" / f"f{n:07d}.jpg"))[..., ::-1].astype(np.float32)
        near = read_frames(film, n - 2, 5)
        errors = [float(np.abs(cv2.resize(f, shown.shape[1::-1], interpolation=cv2.INTER_AREA) - shown).mean())
                  for f in near]
        assert int(np.argmin(errors)) == 2, errors


def test_page_commands_are_the_real_cli(film: Path, tmp_path: Path) -> None:
    """The pin command copied from the page, run as written, pins that segment's seed."""
    manifest = read_manifest(film.with_name("film.manifest.json"))
    page = parse(film.with_name("film.review.html"))
    board = Path(manifest["storyboard"]["source"])
    original = board.read_text(encoding="utf-8")
    seg = manifest["plan"]["segments"][1]
    pin = next(c for c in page.commands if c.startswith("composer pin ") and c.endswith(" 1"))
    assert any(c.startswith("composer reroll ") and c.endswith(" 1") for c in page.commands)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    try:
        done = subprocess.run([sys.executable, "-m", "composer", *shlex.split(pin)[1:]], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert str(seg["seed"]) in board.read_text(encoding="utf-8")
    finally:
        board.write_text(original, encoding="utf-8")


def test_review_command_writes_page_elsewhere(film: Path, tmp_path: Path) -> None:
    target = tmp_path / "pages" / "look.html"
    result = CliRunner().invoke(main, ["review", str(film.with_name("film.manifest.json")), "-o", str(target)])
    assert result.exit_code == 0, result.output
    page = parse(target)
    manifest = read_manifest(film.with_name("film.manifest.json"))
    assert len(page.segments) == len(manifest["segments"])
    assert page.videos == []  # the film does not sit beside this page
    assert all((target.parent / str(i["src"])).is_file() for i in page.imgs)
    assert all(str(i["src"]).startswith("look/") for i in page.imgs)


@pytest.mark.parametrize("content", [None, "{ not json", '{"segments": []}'])
def test_review_command_bad_manifest_is_one_line(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "film.manifest.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(main, ["review", str(path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and "Traceback" not in result.output
    assert not (tmp_path / "film.review.html").exists()


def test_no_review_flag(tmp_path: Path) -> None:
    make_image(tmp_path / "images" / "a.png")
    board = tmp_path / "b.yaml"
    board.write_text("version: 1\noutput: {resolution: 480p, fps: 8}\ndefaults: {segment: {frames: 17, overlap: 9}}\n"
                     "scenes:\n  - {id: a, duration: 1s, prompt: a lamp}\n", encoding="utf-8")
    out = tmp_path / "f.mp4"
    result = CliRunner().invoke(main, ["render", str(board), "-o", str(out), "--no-review", "-q",
                                       "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert out.is_file() and not (tmp_path / "f.review.html").exists() and not (tmp_path / "f.review").exists()


def test_new_seam_measures_and_gate_appear_worst_first(film: Path) -> None:
    """Measures another stage adds to a seam record show up without changing the page."""
    manifest = copy.deepcopy(read_manifest(film.with_name("film.manifest.json")))
    seamed = [s for s in manifest["segments"] if s.get("seam")]
    good, bad = seamed[0], seamed[-1]
    good["seam"].update({"steps": {"colour": 0.25, "motion": 0.5, "sharpness_step": 0.125},
                         "gate": {"decision": "pass", "takes": 1}})
    bad["seam"].update({"steps": {"colour": 7.75, "motion": 3.5, "sharpness_step": 1.0625},
                        "gate": {"decision": "reroll", "takes": [{"seed": 1, "score": 9.5}, {"seed": 2, "score": 8.5}]}})
    html = build_page(manifest, {})
    for text in ("steps.colour", "steps.motion", "steps.sharpness_step", "7.75", "3.5", "1.062", "reroll", "score=9.5"):
        assert text in html
    order = [int(html[i + len('data-seam="'):].split('"')[0]) for i in _find_all(html, 'data-seam="')]
    assert order[0] == bad["index"] and order[-1] == good["index"]


def _find_all(text: str, needle: str) -> list[int]:
    out, i = [], text.find(needle)
    while i >= 0:
        out.append(i)
        i = text.find(needle, i + 1)
    return out


def test_timeline_places_beats_and_keyframes(film: Path) -> None:
    manifest = read_manifest(film.with_name("film.manifest.json"))
    timeline = manifest["timeline"]
    assert [(b["scene"], b["film_frame"]) for b in timeline["beats"]] == [("open", 24)]
    # keyframe 1 wanted at 1.5 s = frame 18, off LTX's 8-frame grid: the page says where it landed
    kf = timeline["keyframes"][1]
    assert kf["wanted_frame"] == 18 and kf["film_frame"] != 18
    html = film.with_name("film.review.html").read_text(encoding="utf-8")
    assert f"wanted f18, lands at f{kf['film_frame']}" in html


def test_drift_plot_per_chain(film: Path) -> None:
    manifest = read_manifest(film.with_name("film.manifest.json"))
    html = film.with_name("film.review.html").read_text(encoding="utf-8")
    for chain in manifest["plan"]["chains"]:
        start = html.index(f'data-chain="{chain["index"]}"')
        figure = html[start:html.index("</figure>", start)]
        # one point per measured segment of the chain on the contrast line (the first polyline); a
        # segment showing only dark or flat frames sets no look and has no drift to plot
        info = {s["index"]: (s.get("colour") or {}).get("info") or {} for s in manifest["segments"]}
        measured = [i for i in chain["segments"] if "drift" in info[i]]
        assert measured and all("no anchor" in info[i].get("hold", "") or "dark" in info[i].get("hold", "")
                                for i in chain["segments"] if i not in measured)
        points = figure.split('points="', 1)[1].split('"', 1)[0].split()
        assert len(points) == len(measured)
        xs = sorted(float(p.split(",")[0]) for p in points)
        assert xs == sorted(set(xs))  # distinct segments, not one repeated


def test_partial_render_page(film: Path) -> None:
    """A --range render's page shows the segments it rendered, thumbnails only from frames the file holds."""
    board = film.parent.parent / "board.yaml"
    part = film.with_name("part.mp4")
    result = render(board, part, cache=film.parent.parent / "cache", frame_range=(30, 50))
    manifest = read_manifest(result.manifest)
    page = parse(result.review)
    assert sorted(int(n) for n in page.segments) == sorted(s["index"] for s in manifest["segments"])
    assert page.imgs and all((part.parent / str(i["src"])).is_file() for i in page.imgs)
    assert all(30 <= int(Path(str(i["src"])).stem[1:]) < 50 for i in page.imgs)


# --- in a real browser ---------------------------------------------------------------------------

def _browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("REVIEW PAGE NOT TESTED IN A BROWSER: pip install playwright (the dev extra has it)")
    if not CHROMIUM.is_file():
        pytest.skip("REVIEW PAGE NOT TESTED IN A BROWSER: no /usr/bin/chromium; install chromium: "
                    "apt-get install chromium")
    return sync_playwright


def test_page_in_headless_chromium(film: Path, tmp_path: Path) -> None:
    sync_playwright = _browser()
    manifest = read_manifest(film.with_name("film.manifest.json"))
    seams = [s for s in manifest["segments"] if s.get("seam")]
    shot = tmp_path / "page.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            # a <video> that has read its metadata aborts the rest of its file:// load: not a problem
            page.on("requestfailed", lambda r: None if r.failure == "net::ERR_ABORTED" and r.url.endswith(".mp4")
                    else problems.append(f"failed: {r.url} {r.failure}"))
            page.goto(film.with_name("film.review.html").resolve().as_uri())
            page.wait_for_load_state("load")
            assert page.locator("[data-segment]").count() == len(manifest["segments"])
            assert page.locator("[data-seam]").count() == len(seams)
            images = page.locator("img")
            assert images.count() == 3 * len(manifest["segments"]) + 2 * len(seams)
            for i in range(images.count()):
                img = images.nth(i)
                img.scroll_into_view_if_needed()
                page.wait_for_function("img => img.complete", arg=img.element_handle())
                assert img.evaluate("img => img.naturalWidth") == 160
            page.wait_for_function("() => document.querySelector('video').readyState >= 1")
            duration = page.evaluate("() => document.querySelector('video').duration")
            assert duration == pytest.approx(manifest["plan"]["total_frames"] / manifest["plan"]["fps"], abs=0.1)
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(shot), full_page=True)
            assert problems == []
        finally:
            browser.close()
    pixels = cv2.imread(str(shot))
    assert pixels is not None and pixels.shape[1] == 1366
    colours = np.unique((pixels // 32).reshape(-1, 3), axis=0)
    assert len(colours) > 20  # thumbnails, timeline colours and text, not a flat page
    assert float(pixels.std()) > 20
