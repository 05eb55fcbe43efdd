"""``benchmarks/seams_drift.py --quick`` runs end to end in both modes, and a bridged run is reported
beside the sequential one, seam for seam, not in its place."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import common  # noqa: E402


def _run(tmp: Path, *extra: str) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "seams_drift.py"), "--quick", "--segments", "3",
                           "--kinds", "ramp", "--methods", "auto", "--json", str(tmp / "sd.json"),
                           "--out", str(tmp / "RESULTS.md"), "--cache", str(tmp / "cache"), "--silent", *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.timeout(600)
def test_a_bridged_run_is_reported_beside_the_sequential_one(tmp_path: Path) -> None:
    _run(tmp_path, "--label", "after")
    _run(tmp_path, "--label", "bridged", "--mode", "bridged")
    body, _ = common.read_section("seams_drift", tmp_path / "RESULTS.md")
    runs = json.loads((tmp_path / "sd.json").read_text())["runs"]
    assert runs["after"]["mode"] == "sequential" and runs["bridged"]["mode"] == "bridged"
    # the section still leads with the sequential run; the bridged one follows under its own heading
    head, _, bridged = body.partition("### Bridged films: both seams of every bridge")
    assert "--label after" in head.split("\n")[2] and bridged
    assert "| ramp, auto | tuning |" in head and "| ramp, auto | tuning |" in bridged
    # 3 shown segments: a bridge between two anchors, so two seams, both measured
    seams = runs["bridged"]["films"]["ramp/auto"]["seams"]
    assert len(seams) == 2 and all(s["colour"] >= 0 for s in seams)
    row = next(line for line in bridged.splitlines() if line.startswith("| ramp, auto"))
    seq = runs["after"]["films"]["ramp/auto"]
    assert f"{seq['colour_excess_mean']:.2f} / {seq['colour_excess_worst']:.2f}" in row  # the sequential figure beside


@pytest.mark.timeout(600)
def test_a_gated_run_rerolls_failing_seams_and_is_reported_beside_the_full_drift_run(tmp_path: Path) -> None:
    _run(tmp_path, "--label", "after")
    _run(tmp_path, "--label", "gate", "--kinds", "motion", "--chance", "0.5", "--heal", "1")
    body, _ = common.read_section("seams_drift", tmp_path / "RESULTS.md")
    runs = json.loads((tmp_path / "sd.json").read_text())["runs"]
    gate = runs["gate"]
    assert gate["heal"] == 1 and gate["chance"] == 0.5
    gated, plain = gate["gated"]["motion/auto"], gate["films"]["motion/auto"]
    assert len(gated["takes"]) == len(gated["seams"]) == 2
    # a seam the gate judged failing was re-rolled once (41-frame quick segments fail its colour step
    # even undrifted), and a passing one was not
    assert all(t == (2 if d != "pass" else 1) for t, d in zip(gated["takes"], gated["decisions"]))
    assert "re-rolled" in gated["decisions"] or "kept-best-failing" in gated["decisions"]
    assert plain["takes"] == [1, 1]  # the same faults without the gate: one take per seam
    # the section still leads with the full-drift run; the gated one follows under its own heading
    head, _, section = body.partition("### The seam gate against faults that strike some takes")
    assert "--label after" in head.split("\n")[2] and "| motion | held-out |" in section
    assert f"| {sum(gated['takes']) - 2} |" in section  # the extra requests it made
