"""CLI commands for the fal backend: ``generate`` (one request) and ``doctor``.

``generate``'s endpoint options are derived from ``GenerationRequest.model_fields``
(names, types, choices, ranges, defaults), so a change to the endpoint's schema is
an edit of ``composer/request.py`` alone.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import types
import typing
from pathlib import Path
from typing import Any
from collections.abc import Callable

import annotated_types
import click
from pydantic import ValidationError

from ..errors import ComposerError
from ..backends.fal_catalog import output_size, request_cost
from ..request import ENDPOINT_ID, GenerationRequest, ltx_rule_violations
from . import backend_option, cache_option, handle_errors, main

# --------------------------------------------------------------------------- options from the schema

# The command's own options; an endpoint field may not take one of these names.
_OWN_OPTIONS = frozenset({"json", "image", "video", "backend", "output", "cache_dir", "retries", "dry_run", "quiet",
                          "yes", "prompt_text"})


def _unwrap(annotation: Any) -> tuple[Any, list[Any], bool]:
    """(bare type, constraint metadata, optional) of a field annotation."""
    optional = False
    metadata: list[Any] = []
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            args = typing.get_args(annotation)
            annotation = args[0]
            for extra in args[1:]:
                metadata.extend(getattr(extra, "metadata", None) or [extra])
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                optional = True
                annotation = members[0]
                continue
        return annotation, metadata, optional


def _range_text(metadata: list[Any]) -> str:
    lo = next((m.ge for m in metadata if isinstance(m, annotated_types.Ge)), None)
    hi = next((m.le for m in metadata if isinstance(m, annotated_types.Le)), None)
    if lo is not None and hi is not None:
        return f"{lo}–{hi}"
    return ""


class _JSONList(click.ParamType):
    name = "JSON"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            data = json.loads(value)
        except ValueError as exc:
            self.fail(f"not valid JSON ({exc})", param, ctx)
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            self.fail("expected a JSON list of objects", param, ctx)
        return data


def field_option(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A click option for the endpoint field ``name``, from its annotation and default."""
    info = GenerationRequest.model_fields[name]
    bare, metadata, _optional = _unwrap(info.annotation)
    metadata = list(info.metadata) + metadata
    flag = "--" + name.replace("_", "-")
    default = info.default if not info.is_required() else None
    default_text = "" if info.is_required() or default is None else f"default {json.dumps(default)}"
    described = info.description or ""
    origin = typing.get_origin(bare)
    kwargs: dict[str, Any] = {"default": None, "show_default": False}
    if bare is bool:
        decls = [f"{flag}/--no-{name.replace('_', '-')}"]
        what = default_text
    elif origin is typing.Literal:
        decls = [flag]
        kwargs["type"] = click.Choice([str(c) for c in typing.get_args(bare)])
        what = default_text
    elif origin is list:
        decls = [flag]
        kwargs["type"] = _JSONList()
        (item,) = typing.get_args(bare) or (Any,)
        item_name = getattr(item, "__name__", "item")
        what = f"a JSON list of {item_name} objects" + (f"; {default_text}" if default_text else "")
    elif bare in (int, float, str):
        decls = [flag]
        kwargs["type"] = {int: click.INT, float: click.FLOAT, str: click.STRING}[bare]
        rng = _range_text(metadata)
        what = "; ".join(x for x in (rng, default_text) if x)
    else:  # a type this mapping does not know yet: take it as JSON
        decls = [flag]
        kwargs["type"] = _JSONList()
        what = "JSON"
    required = "required (or in --json)" if info.is_required() else ""
    kwargs["help"] = "; ".join(x for x in (described, required, what) if x) or "endpoint field"
    return click.option(*decls, name, **kwargs)


def endpoint_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Every GenerationRequest field as an option (``--num-frames``, ``--expand-prompt/--no-…``)."""
    for name in reversed(list(GenerationRequest.model_fields)):
        if name in _OWN_OPTIONS:  # pragma: no cover - a schema change that collides with our own options
            raise RuntimeError(f"endpoint field {name!r} collides with a `composer generate` option")
        fn = field_option(name)(fn)
    return fn


# --------------------------------------------------------------------------- building the request


def _is_url(text: str) -> bool:
    return text.startswith("data:") or "://" in text


def _local_media(value: str, base: Path, what: str) -> str:
    """A URL as given, or a local path (relative to ``base``) as a file:// URL."""
    from ..backends.base import file_url, local_path

    if _is_url(value):
        path = local_path(value)
        if path is not None and not path.is_file():
            raise click.UsageError(f"{what}: no such file: {path}")
        return value
    path = (base / value).expanduser()
    if not path.is_file():
        raise click.UsageError(f"{what}: no such file: {path}")
    return file_url(path)


def _parse_media_spec(spec: str, option: str) -> tuple[str, int, float | None]:
    """``PATH[@FRAME][:STRENGTH]`` → (path, frame, strength)."""
    path, at, rest = spec.rpartition("@")
    if not at:
        path, rest = spec, ""
        head, colon, tail = spec.rpartition(":")
        if colon and _is_number(tail) and head and not _is_url(spec):
            path, rest = head, "0:" + tail
    if not path:
        raise click.BadParameter(f"{spec!r}: expected PATH@FRAME[:STRENGTH], e.g. key.png@0:1.0", param_hint=option)
    frame_text, _, strength_text = rest.partition(":")
    try:
        frame = int(frame_text) if frame_text else 0
        strength = float(strength_text) if strength_text else None
    except ValueError:
        raise click.BadParameter(f"{spec!r}: expected PATH@FRAME[:STRENGTH] with FRAME a whole number and "
                                 "STRENGTH 0–1, e.g. key.png@24:0.8", param_hint=option) from None
    return path, frame, strength


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _media_in_body(body: dict[str, Any], base: Path, origin: str) -> None:
    for group, key in (("images", "image_url"), ("videos", "video_url")):
        items = body.get(group)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            if isinstance(item, dict) and isinstance(item.get(key), str):
                item[key] = _local_media(item[key], base, f"{origin}{group}[{i}].{key}")


def _load_json_body(source: str) -> tuple[dict[str, Any], Path]:
    try:
        if source == "-":
            text, base = sys.stdin.read(), Path.cwd()
        else:
            path = Path(source).expanduser()
            text, base = path.read_text(encoding="utf-8"), path.resolve().parent
    except OSError as exc:
        raise click.BadParameter(f"cannot read {source}: {exc.strerror or exc}", param_hint="--json") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{source} is not valid JSON: {exc}", param_hint="--json") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{source}: expected a JSON object (a request body)", param_hint="--json")
    if isinstance(data.get("input"), dict) and "prompt" not in data:
        data = data["input"]  # a body as fal's playground exports it
    return data, base


def _option_name(loc: tuple[Any, ...]) -> str:
    head = str(loc[0]) if loc else "request"
    where = head + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
    if head in GenerationRequest.model_fields:
        return f"{where} (--{head.replace('_', '-')})"
    return where


def build_request(body: dict[str, Any]) -> GenerationRequest:
    """Validate a request body; every problem as one line naming the field and its option."""
    try:
        request = GenerationRequest.model_validate(body)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "not a field of the endpoint (see `composer generate --help`)"
            lines.append(f"{_option_name(tuple(err['loc']))}: {msg}")
        raise click.UsageError("invalid request:\n  " + "\n  ".join(lines)) from None
    problems = ltx_rule_violations(request.to_endpoint_json())
    if problems:
        raise click.UsageError("invalid request for LTX-Video:\n  " + "\n  ".join(
            p + (" (use 8k+1: 9, 17, 25, …, 121, …)" if p.startswith("num_frames") else "") for p in problems))
    return request


def _generate_key(request: GenerationRequest, backend_identity: str) -> str:
    """A journal key for one generate request: its body without URLs plus its local media's bytes."""
    from ..backends.base import local_path
    from ..store import file_sha256
    from ..request import canonical_json

    media = []
    urls = [i.image_url for i in request.images] + [v.video_url for v in request.videos]
    for url in urls:
        path = local_path(url)
        media.append(file_sha256(path) if path is not None else hashlib.sha256(url.encode()).hexdigest())
    material = {"generate": request.without_urls(), "media": media, "backend": backend_identity}
    return "generate-" + hashlib.sha256(canonical_json(material).encode()).hexdigest()


# --------------------------------------------------------------------------- generate


@main.command(context_settings={"max_content_width": 110})
@click.argument("prompt_text", metavar="[PROMPT]", required=False)
@click.option("--json", "json_file", metavar="FILE",
              help="Load a request body (JSON; '-' for stdin). Options given on the command line override its fields; "
                   "relative media paths are read from the file's folder.")
@click.option("--image", "image_specs", multiple=True, metavar="PATH@FRAME[:STRENGTH]",
              help="A conditioning image shown at FRAME (a multiple of 8), e.g. key.png@0 or end.png@120:0.8. Repeatable.")
@click.option("--video", "video_specs", multiple=True, metavar="PATH[@FRAME][:STRENGTH]",
              help="A conditioning video starting at FRAME (default 0). Repeatable.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The clip to write (MP4); written to a temporary file and renamed when complete.")
@backend_option
@cache_option
@click.option("--retries", type=click.IntRange(0, 20), default=4, show_default=True,
              help="fal: retries of a transient failure.")
@click.option("--dry-run", is_flag=True, help="Print the request body and its cost; generate nothing.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the result and errors.")
@click.option("--yes", "-y", is_flag=True, help="Pay again without asking where an earlier, interrupted run may "
                                               "already have paid (its result lost or expired).")
@endpoint_options
@handle_errors
def generate(prompt_text: str | None, json_file: str | None, image_specs: tuple[str, ...], video_specs: tuple[str, ...],
             output: Path, backend: str, cache_dir: str | None, retries: int, dry_run: bool, quiet: bool,
             yes: bool, **fields: Any) -> None:
    """Generate one clip from one request: PROMPT and options, or a JSON body (--json).

    Every endpoint field is an option (--num-frames, --resolution, --seed, …); local
    media come in with --image and --video. The default backend is the offline
    preview; --backend fal makes one paid request (its cost is printed first).

    \b
      composer generate "a red kite over a beach" -o kite.mp4 --num-frames 49
      composer generate --json request.json --backend fal -o clip.mp4
      composer generate "a harbour at dawn" --image dawn.png@0 --image boat.png@96 -o h.mp4
    """
    body: dict[str, Any] = {}
    if json_file:
        body, base = _load_json_body(json_file)
        _media_in_body(body, base, "--json: ")
    for name, value in fields.items():
        if value is None:
            continue
        if name in ("images", "videos"):
            value = [dict(v) if isinstance(v, dict) else v for v in value]
            _media_in_body({name: value}, Path.cwd(), "")
        body[name] = value
    if prompt_text is not None:
        if fields.get("prompt") is not None:
            raise click.UsageError("give the prompt once: as PROMPT or as --prompt")
        body["prompt"] = prompt_text
    if image_specs:
        images = list(body.get("images") or [])
        for spec in image_specs:
            path, frame, strength = _parse_media_spec(spec, "--image")
            item: dict[str, Any] = {"image_url": _local_media(path, Path.cwd(), "--image"), "start_frame_num": frame}
            if strength is not None:
                item["strength"] = strength
            images.append(item)
        body["images"] = images
    if video_specs:
        videos = list(body.get("videos") or [])
        for spec in video_specs:
            path, frame, strength = _parse_media_spec(spec, "--video")
            item = {"video_url": _local_media(path, Path.cwd(), "--video"), "start_frame_num": frame}
            if strength is not None:
                item["strength"] = strength
            videos.append(item)
        body["videos"] = videos
    if not body.get("prompt"):
        raise click.UsageError("a prompt is needed: composer generate \"what happens\" -o out.mp4 (or --prompt, or --json)")
    request = build_request(body)

    from ..backends import get_backend

    instance = get_backend(backend, **({"retries": retries} if backend == "fal" else {}))
    width, height = output_size(request.resolution, request.aspect_ratio)
    what = (f"{request.num_frames} frames at {width}x{height}, {request.frame_rate} fps, "
            f"{len(request.images)} image(s), {len(request.videos)} video(s)")
    if instance.paid:
        detail = " (detail pass: twice the price)" if request.enable_detail_pass else ""
        click.echo(f"cost: ${request_cost(request.enable_detail_pass):.2f} — 1 request to {ENDPOINT_ID}{detail}; {what}")
    elif not quiet:
        click.echo(f"{backend}: {what} (free, offline)", err=True)
    if dry_run:
        click.echo(json.dumps(request.to_endpoint_json(), indent=2))
        instance.close()
        return
    _run_generate(instance, request, output, cache_dir, quiet, yes)


def _run_generate(instance: Any, request: GenerationRequest, output: Path, cache_dir: str | None, quiet: bool,
                  yes: bool = False) -> None:
    from ..backends.base import BackendEvent, GenerateContext
    from ..media import atomic_output, probe

    paid = None
    resume_id = None
    cache = None
    if instance.paid:
        import os

        if not os.environ.get("FAL_KEY", "").strip():
            raise ComposerError("FAL_KEY is not set: export your fal API key (https://fal.ai/dashboard/keys) "
                                "to use --backend fal; nothing was spent")
        from ..rendering.cache import SegmentCache
        from ..store import Consent, PaidRequest

        cache = SegmentCache(cache_dir, writable=True)
        paid = PaidRequest(cache.store, _generate_key(request, instance.identity()), label="generate",
                           cost=request_cost(request.enable_detail_pass), backend=instance.identity(),
                           record={"command": "generate"},
                           consent=Consent(everything=yes))
        paid.acquire(lookup=False)
        resume_id = paid.resume_id
        paid.intend()

    def on_event(ev: BackendEvent) -> None:
        if quiet:
            return
        if ev.kind in ("queued", "log", "retry", "submitted"):
            click.echo(f"  {ev.message}", err=True)

    ctx = GenerateContext(label="", on_event=on_event, on_submitted=paid.on_submitted if paid else None,
                          resume_request_id=resume_id, confirm_resubmit=paid.confirm_resubmit if paid else None)
    workdir = Path(tempfile.mkdtemp(prefix="composer-generate-", dir=cache.root / "tmp" if cache else None))
    try:
        try:
            result = instance.generate(request, workdir, ctx)
            if paid is not None:
                paid.settle(result.request_id)
            with atomic_output(output) as tmp:
                shutil.move(str(result.path), tmp)
        except BaseException as exc:
            if paid is not None:
                paid.failed(exc)
            raise
        if paid is not None:
            paid.done()
        resume_id = paid.resume_id if paid is not None else None  # None when it had expired and was bought anew
    finally:
        instance.close()
        shutil.rmtree(workdir, ignore_errors=True)
    info = probe(output)
    parts = [f"{info.num_frames} frames", f"{info.width}x{info.height}"]
    if result.request_id:
        reattached = " (re-attached, not paid again)" if result.request_id == resume_id else ""
        parts.append(f"fal request {result.request_id}{reattached}")
    if result.seed is not None:
        parts.append(f"seed {result.seed}")
    if instance.paid:
        parts.append(f"cost ${0.0 if result.request_id == resume_id else request_cost(request.enable_detail_pass):.2f}")
    click.echo(f"wrote {output} ({', '.join(parts)})")


# --------------------------------------------------------------------------- doctor


@main.command()
@cache_option
@click.option("--live", is_flag=True,
              help="Also make a few paid requests to fal (the cost is stated first) to measure output sizes, "
                   "validation and latency; the findings are saved in the cache.")
@click.option("--bridged", is_flag=True,
              help="With --live: instead of the measurements, render a tiny bridged film (two anchors and one "
                   "bridge, three paid requests) and save a contact sheet of the bridge's seams to look at.")
@click.option("--yes", "-y", is_flag=True, help="With --live: do not ask before spending.")
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=3.0, show_default=True,
              help="Seconds to wait for fal's queue host.")
@handle_errors
def doctor(cache_dir: str | None, live: bool, yes: bool, timeout: float, bridged: bool = False) -> None:
    """Check ffmpeg, the cache, FAL_KEY and fal's endpoint; --live measures the real endpoint."""
    from . import doctor as doc

    checks = doc.run_checks(cache_dir, timeout=timeout)
    for check in checks:
        click.echo(check.line())
    failed = [c for c in checks if c.status == "fail"]
    if bridged and not live:
        raise click.UsageError("--bridged is a live probe: use it with --live")
    if live:
        key, endpoint = checks[2], checks[3]
        if not key.details.get("set"):
            raise ComposerError("--live spends real requests and needs FAL_KEY: export your fal API key "
                                "(https://fal.ai/dashboard/keys); nothing was spent")
        if not endpoint.details.get("reachable") or endpoint.status == "fail":
            raise ComposerError(f"--live needs fal's endpoint: {endpoint.summary}; nothing was spent")
        if bridged:
            cost = doc.bridged_probe_cost()
            click.echo(f"--live --bridged renders a 81-frame bridged film on {ENDPOINT_ID}: two anchors and one "
                       f"bridge, 3 paid requests, about ${cost:.2f} (nothing for requests already in the cache).")
            if not yes:
                click.confirm(f"Spend up to ${cost:.2f} on fal?", default=False, abort=True)
            for line in doc.describe_bridged(doc.run_bridged_probe(cache_dir=cache_dir)):
                click.echo(line)
            if failed:
                sys.exit(1)
            return
        probes = doc.live_probes()
        cost = doc.live_cost(probes)
        click.echo(f"--live makes {len(probes)} paid request(s) to {ENDPOINT_ID} (one per resolution and aspect "
                   f"ratio; mostly 9-frame clips), about ${cost:.2f} in all; a probe fal rejects costs nothing.")
        if not yes:
            click.confirm(f"Spend up to ${cost:.2f} on fal?", default=False, abort=True)
        findings = doc.run_live(
            cache_dir=cache_dir, probes=probes,
            on_result=lambda p, r: click.echo(f"  measured {p.name}", err=True),
        )
        for line in doc.describe_findings(findings):
            click.echo(line)
        path = doc.save_findings(findings, cache_dir)
        click.echo(f"findings saved to {path}")
        mismatched = [n for n, s in findings["output_sizes"].items() if s.get("measured") and not s["matches"]]
        if mismatched:
            click.echo("note: composer's OUTPUT_SIZES (and so the preview and the emulator) differ from fal for "
                       + ", ".join(mismatched), err=True)
    if failed:
        sys.exit(1)
