"""``benchmarks/reliability.py --quick`` runs end to end, writes its section and JSON, and its
counts hold: inputs refused clearly or converted, faults survived at the planned cost, every
killed render resumed to a complete film without paying twice unasked."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import common  # noqa: E402


@pytest.mark.timeout(900)
def test_reliability_quick(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reliability.py"), "--quick", "--out", str(out),
                           "--silent"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    body, data = common.read_section("reliability", out)
    assert f"benchmarks/reliability.py --quick --out {out}" in body and "load average at start" in body
    s = data["summary"]

    assert s["inputs_to_refuse"] >= 3 and s["inputs_refused_clearly"] == s["inputs_to_refuse"], data["inputs"]
    assert s["inputs_to_convert"] >= 3 and s["inputs_converted"] == s["inputs_to_convert"], data["inputs"]
    assert s["fuzz_uncaught"] == 0 and data["inputs"]["fuzz"]["examples"] > 0
    assert all(r["clear_error"] for r in data["inputs"]["fuzz"]["cli_sample"])

    assert data["faults"] and s["faults_survived"] == s["faults_tried"], data["faults"]
    for f in data["faults"]:
        if f["expect"] == "complete":
            assert f["paid"] == f["plan"] and f["frames"] == data["board"]["frames"], f

    for r in data["enospc"]:
        assert "skipped" in r or (r["survived"] and r["old_film_intact"] in (True, None)), r

    trials = data["kills"]["trials"]
    assert data["kills"]["clean"]["paid"] == data["board"]["requests"]
    assert len(trials) == s["kills"] >= 2 and s["kills_traceback"] == 0
    for t in trials:
        assert t["complete"] and t["frames"] == t["film_frames"] == data["board"]["frames"], t
        assert t["paid"] == t["plan"] or (t["asked"] and t["paid"] == t["plan"] + 1), t
    window = [t for t in trials if t["kind"] == "submit accepted, id not journalled"]
    assert window and all(t["killed"] and t["paid_at_kill"] >= 1 and t["asked"] for t in window), window
    assert s["kills_paid_twice_silently"] == 0
