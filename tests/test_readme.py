"""The README's Python examples run as written, and its two set-up commands match .ci/run."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_python_examples_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 2
    (tmp_path / "storyboards").symlink_to(ROOT / "storyboards")
    for i, code in enumerate(blocks):
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "COMPOSER_CACHE_DIR": str(tmp_path / "cache")})
        assert proc.returncode == 0, f"README python block {i} failed:\n{code}\n{proc.stderr}"
    assert (tmp_path / "quickstart.mp4").exists()
    assert "requests" in proc.stdout


def test_readme_set_up_commands_match_ci():
    assert "pip install -e '.[dev]' && composer render storyboards/quickstart.yaml -o out.mp4" in README
    assert "pip install -e '.[dev]' && pytest" in README
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line.strip() for line in ci if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    # the browser for the review page's tests is installed first, as README's test section says
    browser = [i for i, line in enumerate(commands) if "apt-get install" in line and "chromium" in line]
    assert browser and browser[0] < commands.index("pytest") and "apt-get install chromium" in README
    rest = [c for c in commands if "chromium" not in c and c not in ("fi",)]
    assert rest == ["python -m pip install -e '.[dev]'", "pytest"]
