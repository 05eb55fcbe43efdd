"""benchmarks/walltime.py at a tiny size: the whole `composer render` command against the emulator
process, which never runs more requests at once than its limit, and whose latency is real wall time."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_walltime_quick(tmp_path):
    out = tmp_path / "RESULTS.md"
    out.write_text("# Benchmark results\n\n## Other section\n\nkept\n")
    # three one-segment chains, --jobs 3 against an account that runs 2 at once
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "walltime.py"), "--quick", "--cuts", "2",
                           "--jobs", "3", "--concurrency", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "## Other section" in text and "kept" in text and "(results/walltime.json)" in text
    data = json.loads((tmp_path / "results" / "walltime.json").read_text())
    assert data["command"].startswith("python benchmarks/walltime.py --quick")
    [row] = data["rows"]
    assert row["mode"] == "sequential" and row["requests"] == row["planned_requests"] == 3
    assert row["film_frames_written"] == row["frames"] == 36
    assert row["peak_running"] <= 2 and row["concurrency"] == 2
    # 3 requests, 2 at once: 2 waves; the emulator's latency is real, so the requests took at least that
    assert row["estimate_waves"] == 2 and row["estimate_s"] == 0.8
    assert row["requests_span_s"] >= row["estimate_s"] - 0.05
    assert row["segments_in_s"] + row["last_request_to_film_s"] <= row["wall_s"] + 0.05
    table = [line for line in text.splitlines() if line.startswith("| sequential")]
    assert len(table) == 1 and f"| {row['peak_running']}/2 |" in table[0]
