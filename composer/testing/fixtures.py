"""pytest fixtures around the fal emulator, for any test suite.

Enable with ``pytest_plugins = ["composer.testing.fixtures"]`` in the root
conftest.py, or import the names into a test module
(``from composer.testing.fixtures import fal_env, fal_backend``).

- ``fal_emulator_factory(**options)`` → a started ``FalEmulator`` (stopped after the test).
- ``fal_emulator`` → one with default options (renders with the preview backend).
- ``fal_env`` → ``fal_emulator``, with this process pointed at it: its ``env()`` set
  in ``os.environ`` (FAL_KEY, FAL_RUN_HOST, FAL_QUEUE_RUN_HOST, SSL_CERT_FILE,
  COMPOSER_FAL_REST_URL, COMPOSER_FAL_CDN_URL) and fal_client's module-level URLs
  patched, all restored after the test.
- ``fal_backend`` → a ``FalBackend`` tuned for tests (fast polling and backoff) on ``fal_env``.
- ``use_fal_emulator(emulator, monkeypatch)`` → what ``fal_env`` does, for an emulator
  made with the factory.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable, Iterator

import pytest

from .fal import FalEmulator

# Imported now so composer's fal backend records fal_client's unpatched URLs first.
from ..backends import fal as _fal_backend

FAST_BACKEND_OPTIONS: dict[str, Any] = {
    "poll_interval": 0.02,
    "base_delay": 0.01,
    "max_delay": 0.2,
    "timeout": 30.0,
}


def use_fal_emulator(emulator: FalEmulator, monkeypatch: pytest.MonkeyPatch) -> FalEmulator:
    """Point this process (environment and the already imported fal_client) at ``emulator``."""
    import fal_client.client as fc

    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    for name, value in emulator.fal_client_urls().items():
        monkeypatch.setattr(fc, name, value)
    return emulator


@pytest.fixture
def fal_emulator_factory() -> Iterator[Callable[..., FalEmulator]]:
    created: list[FalEmulator] = []

    def make(**options: Any) -> FalEmulator:
        emulator = FalEmulator(**options).start()
        created.append(emulator)
        return emulator

    yield make
    for emulator in reversed(created):
        emulator.stop()


@pytest.fixture
def fal_emulator(fal_emulator_factory) -> FalEmulator:
    return fal_emulator_factory()


@pytest.fixture
def fal_env(fal_emulator: FalEmulator, monkeypatch: pytest.MonkeyPatch) -> FalEmulator:
    return use_fal_emulator(fal_emulator, monkeypatch)


@pytest.fixture
def fal_backend(fal_env: FalEmulator) -> Iterator[_fal_backend.FalBackend]:
    backend = _fal_backend.FalBackend(**FAST_BACKEND_OPTIONS)
    yield backend
    backend.close()
