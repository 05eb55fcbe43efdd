"""What composer knows of the user's fal account: how many requests it runs at once
(``fal.concurrency``, from the environment or the user's config file) and the latency
``composer doctor --live`` last measured (saved in the cache, never with the key).
"""
from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from ..errors import SettingError

# fal runs 2 requests at once for a new account, up to 40 with credits, and queues the rest.
DEFAULT_CONCURRENCY = 2
MAX_CONCURRENCY = 64  # --jobs's own bound
CONCURRENCY_ENV = "COMPOSER_FAL_CONCURRENCY"
CONFIG_ENV = "COMPOSER_CONFIG"
DEFAULT_LATENCY_S = 30.0  # a 121-frame 720p segment's order of magnitude, until doctor --live measured one
LIVE_FINDINGS = Path("doctor") / "live.json"  # under the cache root, written by doctor --live


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The user's config file: ``$COMPOSER_CONFIG``, else ``config.toml`` in the user config folder."""
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("composer")) / "config.toml"


def _as_concurrency(value: object, where: str) -> int:
    try:
        n = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        n = None
    if n is None or not 1 <= n <= MAX_CONCURRENCY:
        raise SettingError(f"{where}: fal concurrency must be a whole number from 1 to {MAX_CONCURRENCY}, "
                           f"got {value!r}")
    return n


def fal_concurrency(environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """How many requests the fal account runs at once, and where that figure came from:
    ``$COMPOSER_FAL_CONCURRENCY``, else ``[fal] concurrency`` in the config file, else 2."""
    env = os.environ if environ is None else environ
    if env.get(CONCURRENCY_ENV, "").strip():
        return _as_concurrency(env[CONCURRENCY_ENV], f"${CONCURRENCY_ENV}"), f"${CONCURRENCY_ENV}"
    path = config_path(env)
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SettingError(f"{path}: cannot read the config file: {exc}") from None
        fal = data.get("fal", {})
        if isinstance(fal, dict) and "concurrency" in fal:
            return _as_concurrency(fal["concurrency"], f"{path}: [fal] concurrency"), str(path)
    return DEFAULT_CONCURRENCY, "default for a new fal account"


def measured_latency(cache_root: Path) -> float | None:
    """Seconds per request from the last ``doctor --live`` in this cache (its default-sized
    segment's time from submit to completion, else the median), or None when never measured."""
    try:
        data = json.loads((Path(cache_root) / LIVE_FINDINGS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    latency = data.get("latency") if isinstance(data, dict) else None
    if not isinstance(latency, dict):
        return None
    for key in ("segment_total_s", "median_total_s"):
        value = latency.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_LATENCY_S", "config_path", "fal_concurrency", "measured_latency"]
