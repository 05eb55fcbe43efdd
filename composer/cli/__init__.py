"""The ``composer`` command line: validate, plan, schema, render and friends.

A thin layer over the library: it parses options, prints, and maps composer's
errors to one-line messages and exit codes (2 for a user's storyboard mistake).
"""
from __future__ import annotations

import functools
import json
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any
from collections.abc import Callable

import click

from .. import __version__
from ..errors import ComposerError, StoryboardError
from ..timecode import format_frames


def _fail(exc: ComposerError) -> None:
    if isinstance(exc, StoryboardError):
        for problem in exc.problems:
            click.echo(str(problem), err=True)
    else:
        click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn composer's errors into a message and exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ComposerError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("interrupted: finished segments are kept in the cache; run the same command to resume", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="composer")
def main() -> None:
    """Compose long videos from storyboard files, segment by segment."""


@main.command()
@click.argument("boards", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@handle_errors
def validate(boards: tuple[Path, ...]) -> None:
    """Check storyboards; print every problem as file:line:col: message."""
    from ..planner import plan
    from ..storyboard import load

    failed: list[StoryboardError] = []
    for path in boards:
        try:
            board = load(path)
            p = plan(board)
        except StoryboardError as exc:
            failed.append(exc)
            continue
        except ComposerError as exc:
            failed.append(StoryboardError([]))
            click.echo(f"{path}: {exc}", err=True)
            continue
        click.echo(
            f"{path}: ok — {len(board.scenes)} scene{'s' if len(board.scenes) != 1 else ''}, "
            f"{format_frames(p.total_frames, p.fps)} "
            f"({p.total_frames} frames at {p.fps} fps), {p.requests} requests, ${p.estimated_cost_usd:.2f}"
        )
    if failed:
        for error in failed:
            for problem in error.problems:
                click.echo(str(problem), err=True)
        sys.exit(2)


def cache_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--cache-dir", type=str, default=None, metavar="DIR|URL",
                        help="Segment cache: a folder, or a team cache URL such as s3://bucket/prefix (needs the "
                             "s3 extra) or gs://bucket/prefix (default: $COMPOSER_CACHE_DIR, else the user "
                             "cache folder).")(fn)


class BackendChoice(click.Choice):
    """``--backend``'s choices: the backend registry's names, read when the option is used, so a
    backend an installed package declares (entry points) is offered without changing this file."""

    def __init__(self) -> None:
        super().__init__((), case_sensitive=True)

    @property  # type: ignore[override, unused-ignore]  # click 8.5 made it a property itself
    def choices(self) -> tuple[str, ...]:
        from ..backends import backend_names

        return backend_names()

    @choices.setter
    def choices(self, value: Any) -> None:  # click's __init__ assigns it; the registry decides
        pass


def backend_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--backend", type=BackendChoice(), default="preview", show_default=True,
                        help="preview: offline animatic; fal: LTX-Video 13B distilled on fal.ai (needs FAL_KEY); "
                             "or a backend an installed package registers.")(fn)


def mode_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--mode", type=click.Choice(["sequential", "bridged"]), default=None,
                        help="How a chain's segments depend on each other (default: the storyboard's "
                             "defaults.render.mode, else sequential). bridged: anchors in parallel, then "
                             "bridges between them; see the README.")(fn)


def mode_summary(b: Any) -> list[str]:
    """One line per render mode: its requests, cost and critical path (the storyboard's mode first)."""
    from ..planner import plan, with_mode

    ours = b.defaults.render.mode
    lines = []
    for mode in (ours, "bridged" if ours == "sequential" else "sequential"):
        p = plan(with_mode(b, mode))
        skeletons = sum(1 for s in p.segments if s.role == "skeleton")
        extra = f" ({skeletons} skeleton{'s' if skeletons != 1 else ''})" if skeletons else ""
        lines.append(f"{'this plan' if mode == ours else 'other mode'}: {mode}: {p.requests} requests{extra}, "
                     f"${p.estimated_cost_usd:.2f}, critical path {p.critical_path} "
                     f"request{'s' if p.critical_path != 1 else ''}")
    return lines


def backend_options_for(name: str, **wanted: Any) -> dict[str, Any]:
    """The ``wanted`` options (None ones dropped) that backend ``name``'s constructor takes."""
    import inspect

    from ..backends import backend_class

    params = inspect.signature(backend_class(name)).parameters
    return {k: v for k, v in wanted.items() if v is not None and k in params}


def heal_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--heal", type=click.IntRange(0, 5), default=None, metavar="N",
                        help="Seam gate: re-roll a segment whose seam fails up to N times with a new seed, keeping "
                             "the best take (default: the storyboard's defaults.heal, else 0). Each re-roll is a "
                             "request, within --max-cost.")(fn)


def _plan_keys(board_obj: Any, p: Any, backend_name: str, cache: Any, heal: int = 0) -> dict[int, str]:
    from ..backends import get_backend
    from ..rendering.heal import SeamGate
    from ..rendering.scheduler import MediaResolver, compute_keys

    # with the gate on, a segment's key is its kept take's (what its successors chain on)
    gate = SeamGate(p, board_obj, cache, heal, lambda e: None)
    return compute_keys(p, board_obj, get_backend(backend_name), MediaResolver(board_obj, p, cache),
                        gate.resolve if gate.on else None)


def _cached_map(board_obj: Any, p: Any, backend_name: str, cache_dir: str | None, heal: int = 0) -> dict[int, bool]:
    from ..rendering.cache import SegmentCache

    cache = SegmentCache(cache_dir)
    return {i: cache.has(k) for i, k in _plan_keys(board_obj, p, backend_name, cache, heal).items()}


def _ask_before_paying_twice(b: Any, backend_name: str, cache: Any, yes: bool) -> None:
    """Segments whose journal says an earlier run may have paid (an intent with its id lost, or an
    id whose result fal has probably dropped): say so with the cost, and ask (``--yes`` in scripts)."""
    from ..planner import plan
    from ..store import Busy, doubts
    from ..store.base import default_owner

    if yes or backend_name != "fal":
        cache.consent.everything = yes
        return
    p = plan(b)
    keys = _plan_keys(b, p, backend_name, cache)
    doubtful = []
    for seg in p.segments:
        key = keys[seg.index]
        why = doubts(cache.journal_get(key))
        if why is None or cache.has(key):
            continue
        got = cache.claim(key, default_owner(), 5.0)
        if isinstance(got, Busy):
            continue  # another machine is working on it right now: the render waits for it
        cache.store.release(got)
        doubtful.append((seg, why))
    if not doubtful:
        return
    cost = sum(seg.cost_usd for seg, _ in doubtful)
    for seg, why in doubtful:
        click.echo(f"{seg.label}: {why}", err=True)
    click.echo(f"submitting {'it' if len(doubtful) == 1 else 'them'} again may pay twice: up to ${cost:.2f} "
               f"for {len(doubtful)} request(s) (see https://fal.ai/dashboard/requests)", err=True)
    if sys.stdin.isatty() and click.confirm("Submit again?", default=False, err=True):
        cache.consent.keys.update(keys[seg.index] for seg, _ in doubtful)


@main.command("plan")
@click.argument("board", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the whole plan as JSON.")
@backend_option
@cache_option
@click.option("--scene", "scenes", multiple=True, help="Show only what rendering this scene needs (repeatable).")
@click.option("--range", "frame_range", default=None, metavar="START-END",
              help="Show only what rendering this part of the film needs, e.g. 00:10-00:25.")
@click.option("--draft", is_flag=True, help="Plan the draft (480p, fewer steps) instead.")
@click.option("--latency", type=click.FloatRange(0, min_open=True), default=None, metavar="SECONDS",
              help="Seconds fal takes per request, for the wall-time estimate (default: what `composer doctor "
                   "--live` last measured, else 30).")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=None,
              help="Requests at once, as `composer render --jobs` (default: fal.concurrency, see README).")
@mode_option
@heal_option
@handle_errors
def plan_cmd(board: Path, as_json: bool, backend: str, cache_dir: str | None, scenes: tuple[str, ...],
             frame_range: str | None, draft: bool, latency: float | None, jobs: int | None,
             mode: str | None, heal: int | None) -> None:
    """Show the segments a render will generate, what it costs, how long the critical path is and
    about how long fal will take."""
    from ..planner import with_mode
    from ..storyboard import load

    b = with_mode(load(board), mode)  # type: ignore[arg-type]
    heal = b.defaults.heal if heal is None else heal
    p, cached = _planned(b, backend, cache_dir, scenes, frame_range, draft, heal)
    if as_json:
        click.echo(p.to_json(), nl=False)
        return
    click.echo(render_plan_table(p, cached, heal=heal))
    if not scenes and frame_range is None:
        from ..planner import draft_board

        click.echo("\n".join(mode_summary(draft_board(b) if draft else b)))
    click.echo(wall_time_line(p, cached, latency=latency, jobs=jobs, cache_dir=cache_dir))


def default_jobs(backend: str) -> int:
    """``--jobs`` when not given: the fal account's concurrency for fal (more would only wait in
    fal's queue), 2 for local backends (they share this machine's cores)."""
    if backend == "fal":
        from ..backends.fal_account import fal_concurrency

        return fal_concurrency()[0]
    return 2


def wall_time_line(p: Any, cached: dict[int, bool] | None, *, latency: float | None, jobs: int | None,
                   cache_dir: str | None) -> str:
    """The estimated wall time on fal: the plan's uncached requests list-scheduled at a latency
    under the account's concurrency (or ``jobs``, when fewer)."""
    from ..backends.fal_account import DEFAULT_LATENCY_S, fal_concurrency, measured_latency
    from ..rendering.cache import SegmentCache
    from ..rendering.estimate import estimate

    account, source = fal_concurrency()
    if latency is not None:
        latency_note = "--latency"
    else:
        latency = measured_latency(SegmentCache(cache_dir).root)
        latency_note = "measured by doctor --live"
        if latency is None:
            latency, latency_note = DEFAULT_LATENCY_S, "assumed; `composer doctor --live` measures it"
    at_once = min(jobs, account) if jobs is not None else account
    note = f"fal.concurrency {account}: {source}"
    if jobs is not None and jobs > account:
        note += f"; --jobs {jobs}: the rest would wait in fal's queue"
    elif jobs is not None and jobs < account:
        note += f"; --jobs {jobs}"
    done = {i for i, hit in (cached or {}).items() if hit}
    est = estimate(p, latency_s=latency, concurrency=at_once, done=done)
    return (f"wall time on fal at {latency:g} s per request ({latency_note}), {at_once} at once ({note}): "
            f"{est.describe()}, assembly after")


def _planned(b: Any, backend: str, cache_dir: str | None, scenes: tuple[str, ...], frame_range: str | None,
             draft: bool, heal: int = 0) -> tuple[Any, dict[int, bool]]:
    """The plan a render with these options would run (only the segments its part needs) and its cache hits."""
    from ..planner import draft_board, plan
    from ..rendering.pipeline import partial

    if draft:
        b = draft_board(b)
    frames = parse_range(frame_range, b.output.fps) if frame_range is not None else None
    p = plan(b)
    _, needed = partial(p, list(scenes), frames)
    cached = _cached_map(b, p, backend, cache_dir, heal)
    if needed is not None:
        cached = {i: v for i, v in cached.items() if i in needed}
        p = p.only(needed)
    return p, cached


@main.command()
@click.argument("board", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The film to write (.mp4; .mov for prores/dnxhr).")
@backend_option
@cache_option
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=None,
              help="Requests at once (default: fal.concurrency for --backend fal, see README; 2 otherwise).")
@click.option("--max-cost", type=click.FloatRange(0), default=None,
              help="Budget in USD: a render whose uncached part costs more is refused before anything is spent.")
@click.option("--allow-partial", is_flag=True,
              help="With --max-cost: spend what the budget allows and stop before crossing it.")
@click.option("--retries", type=click.IntRange(0, 20), default=4, show_default=True, help="fal: retries of a transient failure.")
@click.option("--codec", type=click.Choice(["h264", "prores", "dnxhr"]), default="h264", show_default=True)
@click.option("--drift", type=click.FloatRange(0, 4), default=None,
              help="preview: add model-like colour drift (testing colour matching).")
@click.option("--scene", "scenes", multiple=True,
              help="Render and write only this scene (repeatable: scenes apart are joined by cuts, in film order).")
@click.option("--range", "frame_range", default=None, metavar="START-END",
              help="Render and write only this part of the film, e.g. 00:10-00:25 or 240f-600f.")
@click.option("--draft", is_flag=True, help="Same plan at 480p with fewer steps, for cheap iteration (cached apart).")
@click.option("--per-chain", is_flag=True,
              help="Also write each chain's own media and FILM.chains.otio (dissolves left to your editor).")
@click.option("--no-review", is_flag=True, help="Do not write FILM.review.html (the review page).")
@click.option("--dry-run", is_flag=True, help="Show what would be generated and what it would cost; generate nothing.")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors.")
@heal_option
@click.option("--yes", "-y", is_flag=True, help="Pay again without asking where an interrupted run may already have "
                                               "paid (a submit whose id was lost, a result fal no longer keeps).")
@mode_option
@handle_errors
def render(board: Path, output: Path, backend: str, cache_dir: str | None, jobs: int | None, max_cost: float | None,
           allow_partial: bool, retries: int, codec: str, drift: float | None, scenes: tuple[str, ...], frame_range: str | None,
           draft: bool, per_chain: bool, no_review: bool, dry_run: bool, quiet: bool, heal: int | None,
           yes: bool, mode: str | None) -> None:
    """Render BOARD into one film, reusing every segment already in the cache."""
    from ..planner import draft_board, with_mode
    from ..rendering import render as run_render
    from ..rendering.progress import Progress
    from ..storyboard import load

    b = with_mode(load(board), mode)  # type: ignore[arg-type]
    if draft:
        b = draft_board(b)
    frames = None
    if frame_range is not None:
        frames = parse_range(frame_range, b.output.fps)
    if dry_run:
        heal = b.defaults.heal if heal is None else heal
        planned = _planned(with_mode(load(board), mode), backend, cache_dir,  # type: ignore[arg-type]
                           scenes, frame_range, draft, heal)
        click.echo(render_plan_table(*planned, heal=heal))
        click.echo(wall_time_line(*planned, latency=None, jobs=jobs, cache_dir=cache_dir))
        return
    if jobs is None:
        jobs = default_jobs(backend)
    options = backend_options_for(backend, retries=retries, drift=drift)
    from ..rendering.cache import SegmentCache

    cache = SegmentCache(cache_dir, writable=True)
    _ask_before_paying_twice(b, backend, cache, yes)
    progress = Progress(quiet=quiet)
    with CtrlC(progress) as ctrl_c:
        try:
            result = ctrl_c.run(run_render, b, output, backend=backend, cache=cache, jobs=jobs, max_cost=max_cost,
                                on_event=ctrl_c, cancel=ctrl_c.cancel, codec=codec, backend_options=options,
                                scenes=list(scenes) or None, frame_range=frames, per_chain=per_chain,
                                review=not no_review, allow_partial=allow_partial, heal=heal)
        except (ComposerError, KeyboardInterrupt):
            if not ctrl_c.cancel.is_set():
                raise
            progress.close()
            click.echo(ctrl_c.summary(), err=True)
            sys.exit(130)
        finally:
            progress.close()
    written = int(result.assembly.get("frames", result.plan.total_frames))
    if frames is not None and frames[1] > result.plan.total_frames and not quiet:
        click.echo(f"note: --range ends after the film ({format_frames(result.plan.total_frames, result.plan.fps)}); "
                   "wrote up to the film's end", err=True)
    if not quiet:
        part = "" if written == result.plan.total_frames else f" of the film's {result.plan.total_frames}"
        pieces = len(result.assembly.get("ranges") or ())
        if pieces > 1:
            part += f" in {pieces} pieces joined by cuts"
        click.echo(
            f"wrote {result.output} ({written} frames{part}, "
            f"{format_frames(written, result.plan.fps)}): "
            f"{result.generated} generated, {result.cached} from cache, cost ${result.cost_usd:.2f}; manifest {result.manifest}"
            + (f"; review page {result.review}" if result.review else "")
        )


class CtrlC:
    """Ctrl-C during a render: the first asks the render to stop, the segments finished so far
    staying in the cache, and quiets its progress (what the stopped segments would report is
    noise); a second stops at once. ``summary`` is the one line to print then."""

    def __init__(self, progress: Callable[[Any], None]) -> None:
        self.cancel = threading.Event()
        self.progress = progress
        self.needed = self.safe = 0
        self._lock = threading.Lock()
        self._previous: Any = None

    def __call__(self, event: Any) -> None:
        from ..events import RenderStarted, SegmentDone

        with self._lock:  # events come from the chains' threads
            if isinstance(event, RenderStarted):
                self.needed = event.segments
            elif isinstance(event, SegmentDone):
                self.safe += 1  # generated or found: in the cache either way
        if not self.cancel.is_set():
            self.progress(event)

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on a thread while this one waits for Ctrl-C: the kernel hands
        SIGINT to any thread, and Python runs the handler only when the main thread next runs
        Python code, which a thread blocked on a lock (the scheduler's pool) never does."""
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                outcome["value"] = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 -- handed to the waiting thread as it is
                outcome["error"] = exc

        # a daemon: after a second Ctrl-C the process exits without waiting for it
        worker = threading.Thread(target=call, name="render", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.1)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def _interrupt(self, signum: int, frame: Any) -> None:
        if self.cancel.is_set():
            raise KeyboardInterrupt
        self.cancel.set()

    def __enter__(self) -> CtrlC:
        self._previous = signal.signal(signal.SIGINT, self._interrupt)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def summary(self) -> str:
        # the same command resumes: what is in the cache is neither generated nor paid for again
        command = shlex.join(["composer", *sys.argv[1:]])
        return (f"interrupted: {self.safe} of {self.needed} segments are safe in the cache; "
                f"resume with: {command}")


def parse_range(text: str, fps: int) -> tuple[int, int]:
    """'00:10-00:25' → film frames (240, 600) at 24 fps."""
    from ..errors import TimecodeError
    from ..timecode import parse_frame_range

    try:
        return parse_frame_range(text, fps)
    except TimecodeError as exc:
        raise click.BadParameter(str(exc), param_hint="--range") from None


@main.group()
def cache() -> None:
    """Inspect or prune the segment cache."""


@cache.command("info")
@cache_option
@handle_errors
def cache_info(cache_dir: str | None) -> None:
    """Where the cache is, how big, what was paid, what is in flight."""
    from ..pieces import PieceStore
    from ..rendering.cache import SegmentCache

    cache = SegmentCache(cache_dir)
    info = cache.info()
    pieces, piece_bytes = PieceStore(cache.root / "pieces").info()
    click.echo(f"cache: {info['root']}")
    click.echo(f"segments: {info['segments']} ({info['bytes'] / 1e6:.1f} MB)")
    click.echo(f"film pieces (encoded, re-used by the next render): {pieces} ({piece_bytes / 1e6:.1f} MB)")
    click.echo(f"requests in flight (journalled): {info['in_flight_requests']}")
    click.echo(f"paid requests in ledger: {info['paid_requests']} (${info['paid_usd']:.2f})")
    if "local_layer" in info:
        click.echo(f"local layer: {info['local_layer']} ({info['local_bytes'] / 1e6:.1f} MB)")
        if not info.get("conditional_writes"):
            click.echo("note: this store has no conditional writes: two machines starting one segment at the same "
                       "moment could both pay (see README, team cache)")


@cache.command("prune")
@cache_option
@click.option("--older-than", type=click.FloatRange(min=0), default=None, help="Remove entries older than this many days.")
@click.option("--max-size", type=click.FloatRange(min=0), default=None,
              help="Remove oldest entries until the cache is under this many MB.")
@click.option("--all", "everything", is_flag=True, help="Remove every segment.")
@handle_errors
def cache_prune(cache_dir: str | None, older_than: float | None, max_size: float | None, everything: bool) -> None:
    """Remove cached segments (the ledger of paid requests is kept) and the film pieces made
    from them: with --older-than those unused that long, with --max-size or --all every one
    (they cost no request: the next render encodes them again)."""
    from ..pieces import PieceStore
    from ..rendering.cache import SegmentCache

    if older_than is None and max_size is None and not everything:
        raise click.UsageError("say what to prune: --older-than DAYS, --max-size MB or --all")
    cache = SegmentCache(cache_dir)
    older_than_s = older_than * 86400 if older_than is not None else None
    pieces = PieceStore(cache.root / "pieces").prune(
        older_than_s=older_than_s if max_size is None and not everything else None)
    removed = cache.prune(older_than_s=older_than_s, max_bytes=int(max_size * 1e6) if max_size is not None else None)
    click.echo(f"removed {removed} segment(s) and {pieces} film piece(s)")


def render_plan_table(p: Any, cached: dict[int, bool] | None = None, heal: int = 0) -> str:
    """A readable table of a RenderPlan (and which segments are cached, when known)."""
    lines = []
    title = f"{p.title}: " if p.title else ""
    lines.append(
        f"{title}{p.width}x{p.height} {p.resolution} {p.aspect_ratio} at {p.fps} fps, "
        f"{format_frames(p.total_frames, p.fps)} ({p.total_frames} frames)"
    )
    head = f"{'seg':>4} {'chain':>5} {'scene':<14} {'shown (film time)':<27} {'frames':>6}  {'conditioning':<22} prompt"
    if cached is not None:
        head = head.replace("prompt", "cache  prompt")
    lines.append(head)
    for s in p.segments:
        conds = []
        for c in s.conditioning:
            if c.kind == "video":
                what, parent = c.source.split(":", 1)
                conds.append(f"{what}#{parent}x{c.num_frames}")
            else:
                conds.append(f"img@{c.start_frame}")
        span = f"{format_frames(s.shown_start, p.fps)}–{format_frames(s.shown_end, p.fps)}"
        if s.role == "skeleton":
            span = f"skeleton, {s.request['frame_rate']} fps"
        elif s.role != "chain":
            span = f"{span} {s.role}"
        prompt = s.prompt if len(s.prompt) <= 48 else s.prompt[:47] + "…"
        row = f"{s.index:>4} {s.chain:>5} {s.scene[:14]:<14} {span:<27} {s.num_frames:>6}  {', '.join(conds)[:22]:<22} "
        if cached is not None:
            row += f"{'hit' if cached.get(s.index) else 'new':<6} "
        lines.append(row + prompt)
    chains = len(p.chains)
    lines.append(
        f"{p.requests} requests in {chains} chain{'s' if chains != 1 else ''}, "
        f"critical path {p.critical_path} request{'s' if p.critical_path != 1 else ''} (chain {p.critical_chain}), "
        f"estimated cost ${p.estimated_cost_usd:.2f}"
    )
    if cached is not None:
        todo = [s for s in p.segments if not cached.get(s.index)]
        lines.append(
            f"cached: {len(p.segments) - len(todo)}/{len(p.segments)}; a render would still make "
            f"{len(todo)} request{'s' if len(todo) != 1 else ''} (${sum(s.cost_usd for s in todo):.2f})"
        )
    if heal:
        from ..rendering.heal import extra_requests

        k, usd = extra_requests(p, heal)
        lines.append(f"seam gate: heal {heal}: up to +{k} request{'s' if k != 1 else ''}, ${usd:.2f} "
                     f"(re-rolls of seams that fail, within --max-cost)")
    for snap in p.snaps:
        lines.append(
            f"note: scene '{snap.scene}' keyframe {snap.keyframe} moved from frame {snap.wanted_frame} to "
            f"{snap.used_frame} ({snap.delta:+d}) to sit on LTX's 8-frame grid (segment {snap.segment})"
        )
    return "\n".join(lines)


@main.command()
@click.option("--indent", default=2, show_default=True)
def schema(indent: int) -> None:
    """Print the storyboard JSON Schema (for editors' validation and completion)."""
    from ..storyboard.schema import storyboard_schema

    click.echo(json.dumps(storyboard_schema(), indent=indent))


# Commands that live in their own modules register themselves on `main`.
from . import fal_commands  # noqa: E402,F401
from . import edit_commands  # noqa: E402,F401
from . import iterate_commands  # noqa: E402,F401
from . import review_commands  # noqa: E402,F401
from . import seams_commands  # noqa: E402,F401

if __name__ == "__main__":  # pragma: no cover
    main()
