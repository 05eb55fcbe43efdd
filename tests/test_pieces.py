"""The film is kept beside the cache in encoded pieces: a re-render takes the unchanged ones as
they are (no decode, no colour work, no encode) and makes only the pieces whose clips or settings
changed; a damaged piece is made again, never joined; the pieces decode alone and join to the film."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from composer.backends.preview import PreviewBackend
from composer.media import VideoWriter, read_frames
from composer.media.join import join_clips
from composer.media.reader import VideoReader
from composer.pieces import piece_bounds, piece_contributors, piece_key
from composer.rendering import SegmentCache, render

BOARD = """\
version: 1
title: pieces
output: {resolution: 480p, aspect_ratio: 16:9, fps: 12}
defaults:
  seed: 5
  segment: {frames: 33, overlap: 9}
scenes:
  - id: one
    duration: 5s
    prompt: "a harbour at dawn"
  - id: two
    duration: 3s
    prompt: "%s"
    transition: cut
"""


def _render(path: Path, cache: Path, out: Path, review: bool = False):
    return render(path, out, cache=SegmentCache(cache), backend=PreviewBackend(drift=1.0), review=review, otio=False)


def _pieces(cache: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in sorted((cache / "pieces").glob("??/*.mp4"))}


def _frames(path: Path) -> list[np.ndarray]:
    return read_frames(path, pix_fmt="yuv420p")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def test_an_unchanged_render_takes_every_piece_and_gives_the_same_film(write_board, tmp_path):
    path = write_board(BOARD % "a forest path")
    cache = tmp_path / "cache"
    first = _render(path, cache, tmp_path / "a.mp4", review=True)
    kept = _pieces(cache)
    assert len(kept) >= 4 and first.assembly["pieces"] == {"taken": 0, "made": len(kept)}

    again = _render(path, cache, tmp_path / "b.mp4", review=True)
    assert again.generated == 0 and again.assembly["pieces"] == {"taken": len(kept), "made": 0}
    assert _pieces(cache) == kept  # no piece written again
    a, b = _frames(tmp_path / "a.mp4"), _frames(tmp_path / "b.mp4")
    assert len(a) == len(b) == first.plan.total_frames and all(np.array_equal(x, y) for x, y in zip(a, b))
    # the manifest's colour record of each segment and seam, and the review page's thumbnails
    assert again.assembly["transforms"] == first.assembly["transforms"] and len(first.assembly["transforms"]) >= 3
    assert again.assembly["seams"] == first.assembly["seams"] and first.assembly["seams"]
    thumbs = lambda name: {p.name: p.read_bytes() for p in (tmp_path / name).glob("*.jpg")}
    assert thumbs("a.review") and thumbs("a.review") == thumbs("b.review")


def test_editing_one_scene_makes_only_the_pieces_it_shows(write_board, tmp_path):
    path = write_board(BOARD % "a forest path")
    cache = tmp_path / "cache"
    _render(path, cache, tmp_path / "a.mp4")
    path.write_text(BOARD % "a neon street at night")
    edited = _render(path, cache, tmp_path / "b.mp4")
    plan = edited.plan
    cut = plan.chains[1].start_frame  # scene two starts a chain of its own
    own = [(a, b) for a, b in piece_bounds(plan) if a >= cut]
    assert edited.assembly["pieces"] == {"taken": len(piece_bounds(plan)) - len(own), "made": len(own)}
    a, b = _frames(tmp_path / "a.mp4"), _frames(tmp_path / "b.mp4")
    assert len(b) == plan.total_frames
    assert all(np.array_equal(x, y) for x, y in zip(a[:cut], b[:cut]))  # scene one: the same pieces
    assert np.mean([_psnr(x, y) for x, y in zip(a[cut:], b[cut:])]) < 30  # scene two shows the new prompt

    # the same film as one made from nothing (pieces encoded apart differ only by the encoder's rounding)
    fresh = _render(path, tmp_path / "fresh", tmp_path / "c.mp4")
    assert fresh.assembly["pieces"]["taken"] == 0
    c = _frames(tmp_path / "c.mp4")
    assert min(_psnr(x, y) for x, y in zip(b, c)) > 40
    assert edited.assembly["transforms"] == fresh.assembly["transforms"]
    assert edited.assembly["seams"] == fresh.assembly["seams"]


def test_a_changed_encoder_setting_or_colour_method_makes_every_piece_again(write_board, tmp_path):
    path = write_board(BOARD % "a forest path")
    cache = tmp_path / "cache"
    first = _render(path, cache, tmp_path / "a.mp4")
    n = first.assembly["pieces"]["made"]
    other = render(path, tmp_path / "b.mov", cache=SegmentCache(cache), backend=PreviewBackend(drift=1.0),
                   review=False, otio=False, codec="prores")
    assert other.assembly["pieces"] == {"taken": 0, "made": n}
    again = render(path, tmp_path / "b2.mov", cache=SegmentCache(cache), backend=PreviewBackend(drift=1.0),
                   review=False, otio=False, codec="prores")
    assert again.assembly["pieces"] == {"taken": n, "made": 0}  # MOV pieces are kept too
    assert len(read_frames(tmp_path / "b2.mov")) == first.plan.total_frames
    path.write_text((BOARD % "a forest path").replace("  seed: 5\n", "  seed: 5\n  colour: {method: none}\n"))
    plain = _render(path, cache, tmp_path / "c.mp4")
    assert plain.assembly["pieces"] == {"taken": 0, "made": n}


def test_a_damaged_piece_is_made_again_and_never_joined(write_board, tmp_path):
    path = write_board(BOARD % "a forest path")
    cache = tmp_path / "cache"
    first = _render(path, cache, tmp_path / "a.mp4")
    pieces = list(_pieces(cache))
    victim = pieces[len(pieces) // 2]
    data = bytearray(victim.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # same size, wrong bytes
    victim.write_bytes(bytes(data))

    again = _render(path, cache, tmp_path / "b.mp4")
    assert again.assembly["pieces"] == {"taken": len(pieces) - 1, "made": 1}
    assert victim.read_bytes() != bytes(data)  # made anew in its place
    meta = json.loads(victim.with_suffix(".json").read_text())
    assert meta["size"] == victim.stat().st_size
    a, b = _frames(tmp_path / "a.mp4"), _frames(tmp_path / "b.mp4")
    assert len(b) == first.plan.total_frames and min(_psnr(x, y) for x, y in zip(a, b)) > 40


def test_pieces_decode_alone_and_join_to_the_film(write_board, tmp_path):
    path = write_board(BOARD % "a forest path")
    cache = tmp_path / "cache"
    result = _render(path, cache, tmp_path / "a.mp4")
    film = _frames(tmp_path / "a.mp4")
    bounds = piece_bounds(result.plan)
    # each piece file, found by the frames it starts with, is its stretch of the film exactly
    starts = {}
    for piece in _pieces(cache):
        frames = _frames(piece)
        assert len(frames) == json.loads(piece.with_suffix(".json").read_text())["frames"]
        at = [a for a, b in bounds if b - a == len(frames) and np.array_equal(film[a], frames[0])]
        assert len(at) == 1
        assert all(np.array_equal(film[at[0] + i], f) for i, f in enumerate(frames))
        starts[at[0]] = piece
    assert sorted(starts) == [a for a, _ in bounds]


def test_piece_bounds_cover_the_film_and_keys_follow_what_a_piece_shows(write_board):
    import composer

    plan = composer.plan(composer.load(write_board(BOARD % "a forest path")))
    bounds = piece_bounds(plan)
    assert bounds[0][0] == 0 and bounds[-1][1] == plan.total_frames
    assert all(b == c for (_, b), (c, _) in itertools.pairwise(bounds))
    starts = {s.output_start_frame for s in plan.segments if s.shown}
    assert starts <= {a for a, _ in bounds} and len(bounds) >= len(starts) >= 4
    # no piece depends on a segment whose frames begin at or after its end
    for a, b in bounds:
        assert all(plan.segments[i].output_start_frame < b for i in piece_contributors(plan, a, b))
    digests = {s.index: f"clip{s.index}" for s in plan.segments}
    settings = {"codec": "h264", "crf": 18}
    a, b = bounds[1]
    key = piece_key(plan, a, b, digests, settings)
    used = piece_contributors(plan, a, b)
    later = [s.index for s in plan.segments if s.index not in used]
    assert used and later
    assert piece_key(plan, a, b, {**digests, later[-1]: "other"}, settings) == key
    assert piece_key(plan, a, b, {**digests, used[0]: "other"}, settings) != key
    assert piece_key(plan, a, b, digests, {**settings, "crf": 20}) != key
    assert piece_key(plan, *bounds[2], digests, settings) != key


def test_reader_select_hands_out_just_those_frames(tmp_path):
    rng = np.random.default_rng(1)
    clip = tmp_path / "c.mp4"
    with VideoWriter(clip, 64, 48, 12, crf=0) as w:
        for _ in range(20):
            w.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    every = read_frames(clip, pix_fmt="yuv420p")
    with VideoReader(clip, pix_fmt="yuv420p", select=[0, 7, 19]) as reader:
        picked = list(reader)
    assert len(picked) == 3 and all(np.array_equal(p, every[i]) for p, i in zip(picked, [0, 7, 19]))
    with VideoReader(clip, pix_fmt="yuv420p", start=5, select=[1, 2]) as reader:
        later = list(reader)
    assert len(later) == 2 and np.array_equal(later[0], every[6]) and np.array_equal(later[1], every[7])


def test_a_split_encode_joins_back_to_every_frame(tmp_path):
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(30)]
    with VideoWriter(tmp_path / "p-%04d.mp4", 64, 48, 12, crf=0, split_at=[10, 25]) as w:
        for f in frames:
            w.write(f)
    parts = sorted(tmp_path.glob("p-*.mp4"))
    assert [len(read_frames(p)) for p in parts] == [10, 15, 5]
    joined = join_clips(parts, tmp_path / "all.mp4")
    whole = read_frames(joined, pix_fmt="yuv420p")
    alone = [f for p in parts for f in read_frames(p, pix_fmt="yuv420p")]
    assert len(whole) == 30 and all(np.array_equal(x, y) for x, y in zip(whole, alone))


def test_a_split_encode_takes_as_many_cuts_as_a_long_film_has(tmp_path):
    # a 10-minute chain is 139 pieces; ffmpeg refuses a flat sum of that many eq(n,k) terms
    cuts = list(range(2, 2 * 150 + 1, 2))
    frames = np.zeros((len(cuts) * 2 + 3, 48, 64, 3), np.uint8)
    frames[:] = ((np.arange(len(frames)) % 60) * 4).astype(np.uint8)[:, None, None, None]  # grey: frame number
    with VideoWriter(tmp_path / "p-%04d.mp4", 64, 48, 12, crf=18, preset="ultrafast", split_at=cuts) as w:
        for f in frames:
            w.write(f)
    parts = sorted(tmp_path.glob("p-*.mp4"))
    assert len(parts) == len(cuts) + 1
    assert [len(read_frames(p)) for p in parts] == [2] * len(cuts) + [3]
    starts = [int((read_frames(p, count=1)[0].mean() / 4).round()) for p in parts]
    assert starts == [n % 60 for n in [0, *cuts]]  # each piece begins on its own cut frame


def test_select_picks_more_frames_than_a_flat_ffmpeg_sum_takes(tmp_path):
    frames = np.zeros((260, 48, 64, 3), np.uint8)
    frames[:] = ((np.arange(260) % 60) * 4).astype(np.uint8)[:, None, None, None]
    clip = tmp_path / "grey.mp4"
    with VideoWriter(clip, 64, 48, 12, crf=18, preset="ultrafast") as w:
        for f in frames:
            w.write(f)
    want = list(range(1, 260, 2))  # 130 frames
    with VideoReader(clip, select=want) as reader:
        got = [int((f.mean() / 4).round()) for f in reader]
    assert got == [n % 60 for n in want]
