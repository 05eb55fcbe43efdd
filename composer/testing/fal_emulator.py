"""Old name of the fal emulator, kept so ``from composer.testing.fal_emulator import FalEmulator``
and ``python -m composer.testing.fal_emulator`` keep working; the code is in ``composer.testing.fal``.
"""
from __future__ import annotations

from .fal import *  # noqa: F403
from .fal import __all__  # noqa: F401
from .fal.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main())
