"""Shared fixtures: small storyboards written to a temporary folder with real images."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest_plugins = ["composer.testing.fixtures"]


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than there are cores. Many tests spend part of their time waiting
    (an emulator's latency, a subprocess's start, a lease's heartbeat), so the extra worker keeps
    the cores busy: 9.4 min against 12 min for the whole suite on a 2-core machine."""
    import os

    return (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1) + 1


def pytest_configure(config: pytest.Config) -> None:
    """Byte-compile composer and the benchmarks once. With PYTHONDONTWRITEBYTECODE set (as in CI's
    image) nothing writes them, so every ``composer`` subprocess the suite starts would compile
    the package's sources again (about a quarter of a second each); an up-to-date cache is skipped."""
    import compileall

    root = Path(__file__).resolve().parents[1]
    for folder in ("composer", "benchmarks"):
        compileall.compile_dir(root / folder, quiet=2, workers=1)


def make_image(path: Path, width: int = 320, height: int = 180, hue: int = 0) -> Path:
    """A small, deterministic picture (gradient + shapes) saved as PNG."""
    import cv2

    y, x = np.mgrid[0:height, 0:width]
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = (x * 255 // max(width - 1, 1) + hue) % 256
    img[..., 1] = y * 255 // max(height - 1, 1)
    img[..., 2] = (hue * 3) % 256
    cv2.circle(img, (width // 3, height // 2), min(width, height) // 4, (255, 255, 255), -1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img[..., ::-1])
    return path


@pytest.fixture
def fal_client_urls_restored():
    """The backend sets fal_client's module URLs from the env it was given; put them back after each test."""
    import fal_client.client as fc

    saved = {name: getattr(fc, name) for name in ("RUN_URL_FORMAT", "QUEUE_URL_FORMAT", "REST_URL", "CDN_URL")}
    yield
    for name, value in saved.items():
        setattr(fc, name, value)


@pytest.fixture
def board_dir(tmp_path: Path) -> Path:
    """A folder with images/a.png, images/b.png and audio/tone.wav beside where boards are written."""
    make_image(tmp_path / "images" / "a.png", hue=10)
    make_image(tmp_path / "images" / "b.png", hue=140)
    import wave

    (tmp_path / "audio").mkdir()
    with wave.open(str(tmp_path / "audio" / "tone.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        t = np.arange(22050 * 3) / 22050
        w.writeframes((np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes())
    return tmp_path


@pytest.fixture
def write_board(board_dir: Path):
    """write_board(text, name='board.yaml') -> path; text is dedented."""

    def _write(text: str, name: str = "board.yaml") -> Path:
        path = board_dir / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write
