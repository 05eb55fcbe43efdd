"""The backend registry: built-ins by name, and a third-party backend found through a real
entry point (a ``*.dist-info`` folder on sys.path, which importlib.metadata reads)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from composer.backends import BUILTIN_BACKENDS, ENTRY_POINT_GROUP, backend_class, backend_names, get_backend
from composer.backends.fal import FalBackend
from composer.backends.preview import PreviewBackend
from composer.cli import main
from composer.errors import ComposerError
from composer.media import probe
from composer.planner import plan
from composer.storyboard import load

ROOT = Path(__file__).resolve().parents[1]
BOARD = ROOT / "storyboards" / "quickstart.yaml"

# A backend of someone else's: it serves the preview's footage at its own size, for a price.
PLUGIN = textwrap.dedent('''
    import hashlib

    from composer.backends.base import Backend, GenerationResult
    from composer.backends.preview import PreviewBackend
    from composer.request import canonical_json


    class FootageBackend(Backend):
        name = "footage"
        version = "1"
        paid = True

        def __init__(self, take: int = 1) -> None:
            self.take = take
            self.inner = PreviewBackend(text=False)

        def estimate_cost(self, request):
            return 0.25

        def generate(self, request, workdir, ctx=None):
            made = self.inner.generate(request, workdir, ctx)
            rid = "footage-" + hashlib.sha256(canonical_json(request.to_endpoint_json()).encode()).hexdigest()[:12]
            return GenerationResult(path=made.path, request_id=rid, cost_usd=0.25, seed=made.seed,
                                    num_frames=made.num_frames)


    NOT_A_BACKEND = object()
''')


@pytest.fixture
def plugin_site(tmp_path, monkeypatch) -> Path:
    """An 'installed' package ``footage_backend`` declaring three entry points in composer's group."""
    site = tmp_path / "site"
    (site / "footage_backend").mkdir(parents=True)
    (site / "footage_backend" / "__init__.py").write_text(PLUGIN)
    dist = site / "footage_backend-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: footage-backend\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        "footage = footage_backend:FootageBackend\n"
        "notabackend = footage_backend:NOT_A_BACKEND\n"
        "fal = footage_backend:FootageBackend\n"  # a plug-in may not take over a built-in's name
    )
    monkeypatch.syspath_prepend(str(site))  # also invalidates importlib's caches
    yield site
    sys.modules.pop("footage_backend", None)


def test_builtins_are_known_without_any_installed_entry_point():
    assert backend_names()[:2] == ("preview", "fal")
    assert backend_class("preview") is PreviewBackend and backend_class("fal") is FalBackend
    assert isinstance(get_backend("preview", drift=0.5), PreviewBackend)


def test_pyproject_declares_the_builtins_as_entry_points():
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][ENTRY_POINT_GROUP]
    assert table == BUILTIN_BACKENDS


def test_installed_backend_is_found_and_built_ins_keep_their_names(plugin_site):
    names = backend_names()
    assert names == ("preview", "fal", "footage", "notabackend")
    made = get_backend("footage", take=2)
    assert type(made).__name__ == "FootageBackend" and made.take == 2 and made.paid
    assert backend_class("fal") is FalBackend  # the plug-in's "fal" does not replace the built-in


def test_unknown_and_broken_registrations_are_one_clear_line(plugin_site):
    with pytest.raises(ComposerError, match=r"unknown backend 'nosuch': choose one of preview, fal, footage"):
        get_backend("nosuch")
    with pytest.raises(ComposerError, match=r"backend 'notabackend' is registered as .*not a composer Backend"):
        get_backend("notabackend")


def test_cli_offers_and_renders_with_the_installed_backend(plugin_site, tmp_path):
    # a fresh process finds it too: nothing cached, nothing reinstalled
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site), str(ROOT)])}
    shown = subprocess.run([sys.executable, "-m", "composer", "render", "--help"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout
    assert "[preview|fal|footage|notabackend]" in " ".join(shown.split())

    runner = CliRunner()
    refused = runner.invoke(main, ["render", str(BOARD), "-o", str(tmp_path / "x.mp4"), "--backend", "nosuch"])
    assert refused.exit_code == 2 and "'footage'" in refused.output

    out = tmp_path / "film.mp4"
    result = runner.invoke(main, ["render", str(BOARD), "-o", str(out), "--backend", "footage",
                                  "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert result.exit_code == 0, result.output
    p = plan(load(BOARD))
    info = probe(out)
    assert info.num_frames == p.total_frames
    manifest = out.with_suffix(".manifest.json").read_text()
    assert '"footage/1/' in manifest  # the cache identity names the backend that made the segments
    # priced by the backend (0.25 a request), not by fal's list price
    again = runner.invoke(main, ["render", str(BOARD), "-o", str(tmp_path / "again.mp4"), "--backend", "footage",
                                 "--cache-dir", str(tmp_path / "other-cache")])
    assert again.exit_code == 0 and f"cost ${0.25 * p.requests:.2f}" in again.output, again.output
    assert f"(estimated ${0.25 * p.requests:.2f})" in again.output


def test_plan_is_priced_and_sized_by_what_it_is_given(plugin_site):
    board = load(BOARD)
    listed = plan(board)
    assert [s.cost_usd for s in listed.segments] == [0.04] * listed.requests
    assert (listed.width, listed.height) == FalBackend().output_size(board.output.resolution, board.output.aspect_ratio)
    free = plan(board, pricing=PreviewBackend())
    assert free.estimated_cost_usd == 0.0 and (free.width, free.height) == (listed.width, listed.height)
    theirs = plan(board, pricing=get_backend("footage"))
    assert theirs.estimated_cost_usd == pytest.approx(0.25 * listed.requests)
    assert [s.request for s in theirs.segments] == [s.request for s in listed.segments]  # only the prices differ

    class Wide:  # any object with the two methods will do: the planner asks, it does not know names
        def estimate_cost(self, request):
            return 1.0 if request.enable_detail_pass else 0.5

        def output_size(self, resolution, aspect_ratio):
            return (1920, 1080)

    wide = plan(board, pricing=Wide())
    assert (wide.width, wide.height) == (1920, 1080) and wide.estimated_cost_usd == pytest.approx(0.5 * wide.requests)
