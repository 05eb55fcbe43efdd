"""Command line of the fal emulator: ``python -m composer.testing.fal`` (or the old
``python -m composer.testing.fal_emulator``) serves until Ctrl-C.
"""
from __future__ import annotations

import threading
from typing import Any

from ...drift import LEGACY
from .server import FalEmulator
from .state import DEFAULT_KEY

def main(argv: list[str] | None = None) -> int:
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m composer.testing.fal_emulator",
                                     description="Serve a fal-compatible emulator on loopback HTTPS.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default=DEFAULT_KEY, help="the FAL_KEY clients must send")
    parser.add_argument("--drift", type=float, default=0.0, help="colour drift of the preview renderer")
    parser.add_argument("--drift-kinds", default=None,
                        help="comma-separated drift kinds (composer.drift.KINDS); default the historical three")
    parser.add_argument("--drift-chance", type=float, default=1.0,
                        help="share of takes each drift kind strikes (below 1: a re-roll may draw a clean take)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each generation takes on top of rendering")
    parser.add_argument("--queue-delay", type=float, default=0.0, help="seconds each request waits IN_QUEUE")
    parser.add_argument("--concurrency", "--workers", dest="concurrency", type=int, default=2,
                        help="requests running at once, like a fal account (2 for a new one, up to 40); "
                             "the rest wait IN_QUEUE")
    parser.add_argument("--canned", action="store_true", help="return a test pattern after --latency, no rendering")
    parser.add_argument("--canned-clip", default=None, help="return this file for every request")
    parser.add_argument("--validate-on", choices=("submit", "result"), default="submit")
    parser.add_argument("--state-dir", default=None, help="keep jobs, files and certificates here across restarts")
    args = parser.parse_args(argv)

    drift: Any = args.drift
    if args.drift_kinds or args.drift_chance < 1.0:
        kinds = [k for k in (args.drift_kinds or "").split(",") if k] or list(LEGACY)
        drift = {"kinds": kinds, "amount": args.drift, "chance": args.drift_chance}
    emu = FalEmulator(host=args.host, port=args.port, key=args.key, drift=drift, latency=args.latency,
                      queue_delay=args.queue_delay, concurrency=args.concurrency, canned=args.canned,
                      canned_clip=args.canned_clip, validate_on=args.validate_on, state_dir=args.state_dir)
    emu.start()
    for k, v in emu.env().items():
        print(f"export {k}={v}")
    print(f"# fal emulator on {emu.base_url} (Ctrl-C to stop)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
