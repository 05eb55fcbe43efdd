"""``benchmarks/team_cache.py --quick`` runs end to end and writes its section and its JSON."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import common  # noqa: E402


@pytest.mark.timeout(600)
def test_team_cache_quick(tmp_path: Path) -> None:
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "team_cache.py"), "--quick", "--out", str(out),
                           "--silent"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    body, data = common.read_section("team_cache", out)
    assert f"benchmarks/team_cache.py --quick --out {out}" in body and "load average at start" in body
    assert json.loads((tmp_path / "RESULTS.team_cache.json").read_text())["share"] == data["share"]
    share = data["share"]
    assert share["paid_as_planned"] and share["one"]["requests"] == share["three"]["requests"] == share["plan_requests"]
    assert share["three"]["machines"] == 3 and share["wall_ratio"] > 0
    read = data["read"]
    assert set(read["ratios"]) == {"cold", "warm"} and read["segments"] >= 2
    for k in ("local", "cold", "warm"):
        assert read["median"][k]["wall"] > 0 and 0 <= read["median"][k]["segments_in"] <= read["median"][k]["wall"]
