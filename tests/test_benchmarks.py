"""The benchmark scripts run end to end at tiny sizes (``--quick``) and write
well-formed results: their section of a results file (a temporary one, never
benchmarks/RESULTS.md) with a markdown table, the command, the machine and the
figures as JSON.
"""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))
import common  # noqa: E402


def run_script(name: str, out: Path, *extra: str, timeout: float = 240) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--quick", "--out", str(out), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def check_common(body: str, data: dict, name: str, out: Path) -> None:
    assert f"benchmarks/{name}.py --quick --out {out}" in body  # the exact command
    assert data["command"].startswith(f"python benchmarks/{name}.py --quick")
    assert data["quick"] is True
    m = data["machine"]
    assert m["cores"] >= 1 and m["cpu"] and len(m["load_at_start"]) == 3
    assert "load average at start" in body and "cores" in body
    assert "| --- |" in body.replace("|---|", "| --- |")  # a markdown table
    assert out.read_text().startswith("# Benchmarks")
    assert "<!-- data:" not in out.read_text()  # the figures live in results/NAME.json, linked from the section
    assert f"(results/{name}.json)" in body and (out.parent / "results" / f"{name}.json").is_file()


def finite(*xs: float) -> bool:
    return all(isinstance(x, (int, float)) and math.isfinite(x) for x in xs)


@pytest.mark.timeout(300)
def test_seams_quick(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    run_script("seams", out, "--cache", str(tmp_path / "cache"))
    body, data = common.read_section("seams", out)
    check_common(body, data, "seams", out)
    assert set(data["seams"]) >= {"none", "auto"}
    for method, s in data["seams"].items():
        assert s["seams"], method
        assert finite(s["ratio_mean"], s["ratio_worst"], s["median_interior_de"])
        assert s["ratio_worst"] >= s["ratio_mean"] > 0
        assert len(s["seams"]) == data["seam_film"]["segments"] - data["seam_film"]["chains"]
    # drift on, no matching: seams are visible; matching makes them smaller
    assert data["seams"]["none"]["ratio_mean"] > data["seams"]["auto"]["ratio_mean"]
    chain = data["chain"]
    n = chain["segments"]
    assert len(chain["no_drift_vs_first"]) == n
    for m in ("none", "auto"):
        assert len(chain[m]["vs_first"]) == n and len(chain[m]["vs_undrifted"]) == n
        assert len(chain[m]["drift"]) == n and finite(*chain[m]["drift"])
    # unmatched, the injected drift shows: later segments sit visibly (> 1 ΔE) off the undrifted film
    assert max(chain["none"]["drift"][1:]) > 1.0
    for plot in data["plots"]:
        assert Path(plot).parent == tmp_path / "results" and Path(plot).stat().st_size > 1000
        assert f"(results/{Path(plot).name})" in body  # the section links the plot beside its JSON
        assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ratio mean" in body and "Long chain" in body


@pytest.mark.timeout(300)
def test_assemble_quick(tmp_path: Path) -> None:
    pytest.importorskip("psutil")
    pytest.importorskip("moviepy")
    out = tmp_path / "RESULTS.md"
    run_script("assemble", out, "--cache", str(tmp_path / "cache"))
    body, data = common.read_section("assemble", out)
    check_common(body, data, "assemble", out)
    assert data["encoder"] == {"codec": "libx264", "crf": 18, "preset": "veryfast", "pix_fmt": "yuv420p"}
    for film in data["films"].values():
        for way in ("composer", "ffmpeg", "moviepy"):
            w = film[way]
            assert finite(w["fps"], w["peak_rss_mib"], w["ratio_to_ffmpeg"]) and w["fps"] > 0
            assert w["peak_rss_mib"] > 5  # the tree was sampled
        assert film["composer"]["frames"] == film["film_frames"]
        assert film["ffmpeg"]["frames"] == film["segment_frames"]
        for way in ("composer", "moviepy"):
            # the reported ratio is the two reported speeds divided, not a separately made-up number
            want = film[way]["fps"] / film["ffmpeg"]["fps"]
            assert film[way]["ratio_to_ffmpeg"] == pytest.approx(want, abs=1e-3), way
        assert film["composer"]["peak_procs"] >= 2  # Python plus ffmpeg children were counted
    assert "× ffmpeg" in body and "peak RSS" in body


@pytest.mark.timeout(300)
def test_schedule_quick(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    run_script("schedule", out)
    body, data = common.read_section("schedule", out)
    check_common(body, data, "schedule", out)
    assert [f["chains"] for f in data["films"]] == [1, 3]
    for f in data["films"]:
        assert f["requests"] == f["segments"]
        assert f["rerender_requests"] == 0
        assert f["scheduling_seconds"] >= f["ideal_seconds"] * 0.95
        assert finite(f["overhead"], f["assembly_seconds"])
    e = data["edit"]
    assert e["first_requests"] == e["segments"]
    assert e["expected"] and e["exact"] is True
    assert "re-render requests" in body


def test_sections_replace_each_other_not_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "R.md"
    common.write_section("a", "## A\n\n| x |\n|---|\n| 1 |", {"v": 1, "command": "python x.py --quick"}, out)
    common.write_section("b", "## B", {"v": 2}, out)
    # findings written by a person, outside any section, must survive a re-run
    out.write_text(out.read_text() + "\n## Findings\n\nThe seams look fine.\n")
    common.write_section("a", "## A again", {"v": 3, "command": "python x.py"}, out)
    text = out.read_text()
    assert text.count("section:a -->") == 2 and "## A again" in text and "## B" in text
    assert "The seams look fine." in text
    assert "<!-- data:" not in text  # the raw data lives in results/, not in the markdown
    assert "Produced by `python x.py`" in text and "(results/a.json)" in text and "(results/b.json)" in text
    assert json.loads((tmp_path / "results" / "a.json").read_text()) == {"v": 3, "command": "python x.py"}
    assert common.read_section("a", out)[1] == {"v": 3, "command": "python x.py"}
    assert common.read_section("b", out)[1] == {"v": 2}
    with pytest.raises(ValueError):
        common.read_section("c", out)
    (tmp_path / "results" / "b.json").unlink()
    with pytest.raises(ValueError):
        common.read_section("b", out)


def test_checked_in_results_have_their_json_and_no_embedded_data() -> None:
    results = common.BENCH_DIR / "RESULTS.md"
    text = results.read_text(encoding="utf-8")
    assert "<!-- data:" not in text
    names = re.findall(r"<!-- section:(\w+) -->", text)
    assert {"seams", "schedule", "assemble", "fuzz"} <= set(names)
    for name in names:
        if name == "findings":  # prose written by people, no data
            continue
        body, data = common.read_section(name, results)
        assert isinstance(data, dict) and data.get("command"), name
        assert data["command"] in body
    for png in re.findall(r"\((results/[\w.-]+\.png)\)", text):
        assert (common.BENCH_DIR / png).is_file(), png
