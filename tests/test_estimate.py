"""The wall-time estimate: requests list-scheduled over the plan's dependency graph at a latency
under the fal account's concurrency, and where `composer plan` / `render` take those from."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

import composer
from composer.backends.fal_account import fal_concurrency, measured_latency
from composer.cli import default_jobs, main
from composer.cli import doctor
from composer.errors import SettingError
from composer.rendering.estimate import estimate, parents, schedule


def board_text(chains: list[int], frames: int = 17, overlap: int = 9) -> str:
    """One scene per chain (cuts between them), each ``n`` segments long."""
    lines = ["version: 1", "output: {resolution: 480p, aspect_ratio: '16:9', fps: 24}",
             f"defaults: {{segment: {{frames: {frames}, overlap: {overlap}}}}}", "scenes:"]
    for i, n in enumerate(chains):
        lines += [f"  - id: s{i}", f"    duration: {frames + (n - 1) * (frames - overlap)}f",
                  f"    prompt: scene {i}"] + (["    transition: cut"] if i else [])
    return "\n".join(lines) + "\n"


def seg(index: int, *ps: int) -> SimpleNamespace:
    return SimpleNamespace(index=index, parents=list(ps), depends_on=ps[0] if ps else None)


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch, tmp_path):
    monkeypatch.delenv("COMPOSER_FAL_CONCURRENCY", raising=False)
    monkeypatch.setenv("COMPOSER_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("COMPOSER_CACHE_DIR", str(tmp_path / "cache"))


def test_one_chain_waits_for_itself_at_any_concurrency():
    p = composer.plan(composer.loads(board_text([5]), name="b.yaml"))
    assert [parents(s) for s in p.segments] == [[], [0], [1], [2], [3]]  # today's plans: depends_on
    for n in (1, 2, 40):
        est = estimate(p, latency_s=20.0, concurrency=n)
        assert (est.requests, est.critical_path, est.waves, est.wall_s) == (5, 5, 5, 100.0)


def test_independent_chains_share_the_slots():
    p = composer.plan(composer.loads(board_text([4, 4, 4]), name="b.yaml"))
    assert p.critical_path == 4
    # 12 requests, two at a time, never a slot idle: 6 waves; enough slots: the critical path
    assert estimate(p, latency_s=10.0, concurrency=2).waves == 6
    assert estimate(p, latency_s=10.0, concurrency=3).waves == 4
    assert estimate(p, latency_s=10.0, concurrency=1).wall_s == 120.0


def test_cached_segments_are_not_requested():
    p = composer.plan(composer.loads(board_text([5]), name="b.yaml"))
    est = estimate(p, latency_s=30.0, concurrency=2, done={0, 1})
    assert (est.requests, est.critical_path, est.waves) == (3, 3, 3)
    assert estimate(p, latency_s=30.0, concurrency=2, done=range(5)).describe() == "nothing to generate"


def test_a_bridged_graph_takes_waves_independent_of_its_length():
    """A skeleton, anchors on it, bridges between two anchors (plans with ``parents``)."""
    def bridged(anchors: int) -> SimpleNamespace:
        segs = [seg(0)]
        for a in range(anchors):
            segs.append(seg(2 * a + 1, 0))
            if a:
                segs.append(seg(2 * a, 2 * a - 1, 2 * a + 1))
        return SimpleNamespace(segments=sorted(segs, key=lambda s: s.index))

    for anchors in (3, 10, 50):
        est = estimate(bridged(anchors), latency_s=20.0, concurrency=40 if anchors < 40 else 200)
        assert (est.critical_path, est.waves, est.wall_s) == (3, 3, 60.0)
    # two at once: the skeleton, then four anchors in two waves, three bridges in two
    assert estimate(bridged(4), latency_s=1.0, concurrency=2).waves == 5


def test_schedule_starts_a_request_only_when_its_parents_are_done():
    graph = {0: [], 1: [0], 2: [0], 3: [1, 2], 4: []}
    starts = schedule(graph, 2.0, 2)
    for n, ps in graph.items():
        assert all(starts[p] + 2.0 <= starts[n] for p in ps)
    for t in set(starts.values()):
        assert sum(1 for s in starts.values() if s == t) <= 2
    assert starts[0] == 0.0 and starts[4] in (0.0, 2.0)  # the longer chain goes first, 4 fills a free slot
    with pytest.raises(ValueError, match="cycle"):
        schedule({0: [1], 1: [0]}, 1.0, 1)


def test_concurrency_from_the_environment_then_the_config_file(monkeypatch, tmp_path):
    assert fal_concurrency() == (2, "default for a new fal account")
    config = tmp_path / "config.toml"
    config.write_text("[fal]\nconcurrency = 10\n")
    monkeypatch.setenv("COMPOSER_CONFIG", str(config))
    assert fal_concurrency() == (10, str(config))
    assert default_jobs("fal") == 10 and default_jobs("preview") == 2
    monkeypatch.setenv("COMPOSER_FAL_CONCURRENCY", "40")
    assert fal_concurrency() == (40, "$COMPOSER_FAL_CONCURRENCY")
    monkeypatch.setenv("COMPOSER_FAL_CONCURRENCY", "many")
    with pytest.raises(SettingError, match=r"\$COMPOSER_FAL_CONCURRENCY: .* got 'many'"):
        fal_concurrency()


def test_plan_prints_the_estimate(tmp_path, monkeypatch):
    board = tmp_path / "b.yaml"
    board.write_text(board_text([4, 4, 4]))
    runner = CliRunner()
    r = runner.invoke(main, ["plan", str(board), "--latency", "20"])
    assert r.exit_code == 0, r.output
    line = r.output.strip().splitlines()[-1]
    assert line == ("wall time on fal at 20 s per request (--latency), 2 at once (fal.concurrency 2: default for a "
                    "new fal account): 12 requests, 2 at once: 6 waves (critical path 4) × 20 s ≈ 2 min 00 s "
                    "waiting for the model, assembly after")
    monkeypatch.setenv("COMPOSER_FAL_CONCURRENCY", "3")
    r = runner.invoke(main, ["plan", str(board), "--latency", "20", "--jobs", "8"])
    assert "3 at once (fal.concurrency 3: $COMPOSER_FAL_CONCURRENCY; --jobs 8: the rest would wait in fal's queue)" \
        in r.output and "4 waves (critical path 4) × 20 s ≈ 1 min 20 s" in r.output
    r = runner.invoke(main, ["render", str(board), "-o", str(tmp_path / "f.mp4"), "--dry-run", "--jobs", "1"])
    assert r.exit_code == 0 and "12 waves (critical path 4) × 30 s ≈ 6 min 00 s" in r.output
    assert "(assumed; `composer doctor --live` measures it)" in r.output
    monkeypatch.setenv("COMPOSER_FAL_CONCURRENCY", "0")
    r = runner.invoke(main, ["plan", str(board)])
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1].startswith(
        "error: $COMPOSER_FAL_CONCURRENCY: fal concurrency must be a whole number from 1 to 64")


def test_plan_uses_the_latency_doctor_live_measured(tmp_path):
    """doctor --live's saved findings (made by its own code from probe records) set the estimate's latency."""
    probes = {p.name: p for p in doctor.live_probes()}
    records = [{"probe": doctor.asdict(probes[name]), "test_outcome": None,
                "outcome": {"accepted": True, "paid": True, "request_id": name, "width": 1, "height": 1, "frames": 9,
                            "latency": {"queued_s": 0.5, "total_s": total, "inference_s": total - 1}}}
               for name, total in (("480p 16:9", 4.0), ("720p 16:9", 42.5), ("480p 1:1", 5.0))]
    cache = tmp_path / "measured"
    findings = doctor._findings(records, datetime.now(UTC), {"QUEUE_URL_FORMAT": "https://q.example/"}, "x")
    path = doctor.save_findings(findings, cache)
    assert json.loads(path.read_text())["latency"]["segment_total_s"] == 42.5  # the 121-frame probe
    assert "composer plan now estimates wall time at 42.5s per request" in doctor.describe_findings(findings)
    assert measured_latency(cache) == 42.5 and measured_latency(tmp_path / "never") is None
    board = tmp_path / "b.yaml"
    board.write_text(board_text([3]))
    r = CliRunner().invoke(main, ["plan", str(board), "--cache-dir", str(cache)])
    assert r.exit_code == 0, r.output
    assert "at 42.5 s per request (measured by doctor --live)" in r.output and "≈ 2 min 08 s" in r.output


def test_estimate_module_is_pure():
    source = Path(composer.__file__).parent.joinpath("rendering", "estimate.py").read_text()
    for word in ("import os", "import time", "open(", "random"):
        assert word not in source
