"""benchmarks/tail_mode.py runs at a tiny size and writes a well-formed section."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tail_mode_quick(tmp_path):
    out = tmp_path / "RESULTS.md"
    out.write_text("# Benchmark results\n\n## Other section\n\nkept\n")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tail_mode.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "## Other section" in text and "kept" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| conditioning")]
    assert [r.split("|")[1].strip() for r in rows] == ["matching off", "raw tail", "corrected tail"]
    for row in rows:
        last, worst, mean = (float(c) for c in row.split("|")[2:5])
        assert 0 <= last <= worst and 0 <= mean <= worst
