"""The planner's rules, on hand-written boards and on many generated ones."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from composer.errors import PlanError
from composer.planner import derive_seed, plan, segment_lengths
from composer.request import GenerationRequest
from composer.storyboard import Storyboard, check_storyboard, load

IMAGES = ("images/a.png", "images/b.png")


def board_from(data: dict, base: Path) -> Storyboard:
    board = Storyboard.model_validate(data).located("<test>", base)
    assert check_storyboard(board) == []
    return board


def minimal_requests(frames: int, max_frames: int, overlap: int) -> int:
    n, covered = 1, max_frames
    while covered < frames:
        n += 1
        covered += max_frames - overlap
    return n


def test_single_scene_balanced_no_stub(board_dir):
    board = board_from({"output": {"resolution": "480p", "fps": 24}, "defaults": {"segment": {"frames": 97, "overlap": 17}},
                        "scenes": [{"id": "a", "duration": "10s", "prompt": "x"}]}, board_dir)
    p = plan(board)
    lengths = [s.num_frames for s in p.segments]
    assert len(lengths) == minimal_requests(240, 97, 17) == 3
    assert max(lengths) - min(lengths) <= 8, lengths
    assert p.segments[-1].shown_end == 240
    assert p.estimated_cost_usd == pytest.approx(0.12)


def test_overlap_and_conditioning_tail(board_dir):
    board = board_from({"defaults": {"segment": {"frames": 121, "overlap": 25, "overlap_strength": 0.75}},
                        "scenes": [{"id": "a", "duration": "20s", "prompt": "x"}]}, board_dir)
    p = plan(board)
    for prev, seg in zip(p.segments, p.segments[1:]):
        assert seg.depends_on == prev.index
        assert seg.output_start_frame == prev.output_start_frame + prev.num_frames - 25
        video = seg.request["videos"][0]
        assert video == {**video, "video_url": f"tail:{prev.index}", "start_frame_num": 0, "strength": 0.75}
        assert seg.conditioning[0].num_frames == 25
        assert seg.seam_frame == seg.output_start_frame + 25 == prev.shown_end
    assert p.segments[0].request["videos"] == []


def test_seams_land_on_beats_and_continue_starts_when_free(board_dir):
    board = board_from({"defaults": {"segment": {"frames": 121, "overlap": 17}},
                        "scenes": [{"id": "a", "duration": "8s", "prompt": "calm", "beats": [{"at": "4s", "prompt": "storm"}]},
                                   {"id": "b", "duration": "12s", "prompt": "night", "transition": "continue"}]}, board_dir)
    p = plan(board)
    assert p.requests == minimal_requests(480, 121, 17)
    seams = [s.seam_frame for s in p.segments[1:]]
    assert any(abs(s - 96) <= 4 for s in seams), seams  # the beat at 4s
    assert any(abs(s - 192) <= 4 for s in seams), seams  # scene b starts at 8s
    prompts = [s.prompt for s in p.segments]
    assert prompts[0] == "calm" and "storm" in prompts and prompts[-1] == "night"
    # one prompt per request: no segment shows frames of two prompts away from its seam
    for s in p.segments:
        for change in (96, 192):
            assert not (s.shown_start + 4 < change < s.shown_end - 4), (s.index, change)


def test_keyframes_snap_to_grid_and_are_reported(board_dir):
    board = board_from({"defaults": {"segment": {"frames": 97, "overlap": 17}},
                        "scenes": [{"id": "a", "duration": "8s", "prompt": "x", "keyframes": [
                            {"at": "0s", "image": IMAGES[0]}, {"at": "3.1s", "image": IMAGES[1]},
                            {"at": "191f", "image": IMAGES[0]}]}]},
                       board_dir)
    p = plan(board)
    placed = {(c.scene, c.keyframe): (seg, c) for seg in p.segments for c in seg.conditioning if c.kind == "image"}
    assert len(placed) == 3
    for (scene, k), (seg, c) in placed.items():
        assert c.start_frame % 8 == 0
        assert c.start_frame >= seg.overlap  # never inside the conditioned overlap
        assert c.film_frame == seg.output_start_frame + c.start_frame
        assert seg.shown_start <= c.film_frame < seg.shown_end
        image_req = [i for i in seg.request["images"] if i["image_url"] == f"keyframe:{scene}/{k}"]
        assert image_req and image_req[0]["start_frame_num"] == c.start_frame
    wanted = {0: 0, 1: 74, 2: 191}
    snapped = {s.keyframe: s for s in p.snaps}
    for k, frame in wanted.items():
        used = placed[("a", k)][1].film_frame
        assert abs(used - frame) <= 7
        if used != frame:
            assert snapped[k].wanted_frame == frame and snapped[k].used_frame == used
        else:
            assert k not in snapped


def test_crossfade_chains_extend_half_each_way(board_dir):
    board = board_from({"scenes": [{"id": "a", "duration": "5s", "prompt": "x"},
                                   {"id": "b", "duration": "5s", "prompt": "y", "transition": {"crossfade": "1s"}}]}, board_dir)
    p = plan(board)
    a, b = p.chains
    assert (a.start_frame, a.end_frame) == (0, 120 + 12)
    assert (b.start_frame, b.end_frame) == (120 - 12, 240)
    assert a.fade_out == b.fade_in == 24
    assert p.total_frames == 240
    assert p.critical_path == 2 and p.requests == 4  # 132 frames per chain need 2 requests each
    assert sum(len(c.segments) for c in p.chains) == p.requests


def test_cut_starts_independent_chain(board_dir):
    board = board_from({"scenes": [{"id": "a", "duration": "3s", "prompt": "x"},
                                   {"id": "b", "duration": "3s", "prompt": "y"}]}, board_dir)
    p = plan(board)
    assert [c.scenes for c in p.chains] == [["a"], ["b"]]
    assert all(s.depends_on is None for s in p.segments)
    assert p.critical_path == 1


def test_seeds_are_stable_when_a_scene_is_inserted(board_dir):
    scenes = [{"id": "a", "duration": "6s", "prompt": "x"},
              {"id": "c", "duration": "6s", "prompt": "z", "transition": "continue"}]
    before = plan(board_from({"defaults": {"seed": 7}, "scenes": scenes}, board_dir))
    inserted = scenes[:1] + [{"id": "b", "duration": "2s", "prompt": "y"}] + scenes[1:]
    after = plan(board_from({"defaults": {"seed": 7}, "scenes": inserted}, board_dir))
    seeds = lambda p, sid: [s.seed for s in p.segments if s.scene == sid]
    assert seeds(before, "a") == seeds(after, "a")
    assert seeds(before, "c")[0] == seeds(after, "c")[0] == derive_seed(7, "c", 0)
    assert len({s.seed for s in after.segments}) == len(after.segments)


def test_scene_seed_and_params_override(board_dir):
    board = board_from({"defaults": {"params": {"enable_detail_pass": True, "temporal_adain_factor": 0.3},
                                     "negative_prompt": "ugly", "style": "film"},
                        "scenes": [{"id": "a", "duration": "2s", "prompt": "x",
                                    "params": {"seed": 99, "temporal_adain_factor": 0.8}}]}, board_dir)
    seg = plan(board).segments[0]
    req = GenerationRequest.model_validate(seg.request)
    assert req.seed == 99 and req.temporal_adain_factor == 0.8 and req.enable_detail_pass
    assert req.negative_prompt == "ugly" and req.prompt == "x, film"
    assert seg.cost_usd == pytest.approx(0.08)


def test_plan_is_byte_identical(board_dir):
    data = {"scenes": [{"id": "a", "duration": "9s", "prompt": "x", "keyframes": [{"at": "1s", "image": IMAGES[0]}]},
                       {"id": "b", "duration": "4s", "prompt": "y", "transition": {"crossfade": "500ms"}}]}
    assert plan(board_from(data, board_dir)).to_json() == plan(board_from(data, board_dir)).to_json()


def test_example_boards_plan(tmp_path):
    root = Path(__file__).resolve().parents[1] / "storyboards"
    boards = sorted(root.glob("*.yaml"))
    assert len(boards) >= 3
    for path in boards:
        p = plan(load(path))
        assert p.requests >= 1 and p.total_frames > 0


@pytest.mark.parametrize("total,max_frames,overlap",
                         [(9, 121, 17), (121, 121, 17), (122, 121, 17), (1000, 97, 25), (7200, 257, 17)])
def test_segment_lengths_minimal_and_covering(total, max_frames, overlap):
    lengths = segment_lengths(total, max_frames, overlap)
    assert len(lengths) == minimal_requests(total, max_frames, overlap)
    covered = lengths[0] + sum(n - overlap for n in lengths[1:])
    assert total <= covered < total + 8
    assert all((n - 1) % 8 == 0 and 9 <= n <= max_frames for n in lengths)


# ---- property checks over many generated storyboards ----

scene_st = st.fixed_dictionaries({
    "frames": st.integers(1, 400),
    "transition": st.sampled_from(["cut", "continue", "crossfade"]),
    "fade": st.integers(2, 30),
    "beats": st.lists(st.integers(1, 399), max_size=3, unique=True),
    "keys": st.lists(st.integers(0, 399), max_size=3, unique=True),
})


@st.composite
def boards(draw):
    fps = draw(st.sampled_from([8, 24, 25, 30]))
    max_frames = draw(st.sampled_from([41, 97, 121, 161]))
    overlap = draw(st.sampled_from([9, 17, 25]).filter(lambda o: o + 8 <= max_frames))
    raw = draw(st.lists(scene_st, min_size=1, max_size=6))
    scenes = []
    for i, s in enumerate(raw):
        n = s["frames"]
        transition: object = "cut" if i == 0 else s["transition"]
        if transition == "crossfade":
            prev = raw[i - 1]["frames"]
            fade = min(s["fade"], n, prev)
            transition = {"crossfade": f"{fade}f"} if fade >= 2 else "cut"
        beats = [{"at": f"{b}f", "prompt": f"beat {b}"} for b in s["beats"] if 0 < b < n]
        keys = [{"at": f"{k}f", "image": IMAGES[k % 2]} for k in s["keys"] if k < n]
        scenes.append({"id": f"s{i}", "duration": f"{n}f", "prompt": f"scene {i}", "transition": transition,
                       "beats": beats, "keyframes": keys})
    return {"output": {"fps": fps, "resolution": "480p"}, "defaults": {"seed": draw(st.integers(0, 1000)),
            "segment": {"frames": max_frames, "overlap": overlap}}, "scenes": scenes}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=boards())
def test_plan_properties(board_dir, data):
    board = board_from(data, board_dir)
    try:
        p = plan(board)
    except PlanError as exc:  # keyframes snapping onto the same frame is a reported user error
        assert "same frame" in str(exc)
        return
    spec = board.defaults.segment
    assert p.total_frames == sum(int(s["duration"][:-1]) for s in data["scenes"])
    assert p.to_json() == plan(board).to_json()
    covered = [0] * p.total_frames
    for chain in p.chains:
        segs = [p.segments[i] for i in chain.segments]
        assert len(segs) == minimal_requests(chain.end_frame - chain.start_frame, spec.frames, spec.overlap)
        assert segs[0].shown_start == chain.start_frame and segs[-1].shown_end == chain.end_frame
        for a, b in itertools.pairwise(segs):
            assert a.shown_end == b.shown_start == b.seam_frame
            assert b.output_start_frame == a.output_start_frame + a.num_frames - spec.overlap
            assert b.request["videos"][0]["video_url"] == f"tail:{a.index}"
        for s in segs:
            assert (s.num_frames - 1) % 8 == 0 and 9 <= s.num_frames <= spec.frames
            assert s.request["num_frames"] == s.num_frames and s.request["frame_rate"] == p.fps
            assert s.shown_end - s.output_start_frame <= s.num_frames
            for img in s.request["images"]:
                assert img["start_frame_num"] % 8 == 0
                assert s.overlap <= img["start_frame_num"] < s.num_frames or s.overlap == 0
            GenerationRequest.model_validate(s.request)
            for f in range(s.shown_start, s.shown_end):
                covered[f] += 1
    # every film frame is shown once, twice only inside a crossfade
    fades = {(c.start_frame, c.start_frame + c.fade_in) for c in p.chains if c.fade_in}
    for f, count in enumerate(covered):
        in_fade = any(a <= f < b for a, b in fades)
        assert count == (2 if in_fade else 1), (f, count)
    keyframes = sum(len(s["keyframes"]) for s in data["scenes"])
    assert sum(1 for s in p.segments for c in s.conditioning if c.kind == "image") == keyframes
    assert p.critical_path == max(len(c.segments) for c in p.chains)
    assert p.estimated_cost_usd == pytest.approx(0.04 * p.requests)
