"""benchmarks/rerender.py --quick runs end to end and reports a cached re-render honestly:
every segment a cache hit, no request made, the whole film written, the ratio its two times."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))
import common  # noqa: E402


@pytest.mark.timeout(300)
def test_rerender_quick(tmp_path: Path) -> None:
    pytest.importorskip("psutil")
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run([sys.executable, str(BENCH / "rerender.py"), "--quick", "--out", str(out),
                           "--films", "2:480p", "--cache", str(tmp_path / "cache")],
                          cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    body, data = common.read_section("rerender", out)
    assert f"benchmarks/rerender.py --quick --out {out}" in body
    assert data["quick"] is True and data["encoder"]["preset"] == "veryfast" and data["encoder"]["crf"] == 18
    rows = {f["case"]: f for f in data["films"].values()}
    assert sorted(rows) == ["encoded", "unchanged"]
    for film in rows.values():
        assert film["frames"] == 48  # 2 s at 24 fps
        assert film["composer_frames"] == [film["frames"]] and film["ffmpeg_frames"] == [film["frames"]]
        assert film["cache_hits"] == [film["segments"]] and film["requests_made"] == [0]  # a cached re-render
        assert film["review_written"] is True
        assert film["ratio"] == pytest.approx(film["ffmpeg_seconds"] / film["composer_seconds"], abs=2e-3)
    # unchanged: every piece of the film taken as it is; encoded: every one made again
    (unchanged,), (encoded,) = rows["unchanged"]["pieces"], rows["encoded"]["pieces"]
    assert unchanged["made"] == 0 and unchanged["taken"] == encoded["made"] >= 1 and encoded["taken"] == 0
    assert "ratio (wall)" in body and "| --- |" in body.replace("|---|", "| --- |")
