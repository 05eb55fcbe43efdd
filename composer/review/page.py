"""The review page as HTML, built from a render manifest (plain data) and the names of
its thumbnails: pure, so it can be tested without media. No scripts or fonts from
anywhere else; one small inline script for the copy buttons.
"""
from __future__ import annotations

import shlex
from collections.abc import Mapping
from html import escape
from typing import Any

from ..timecode import format_frames
from .svg import line_plot

# Seam-gate decisions read as worse than a pass; anything else counts as a pass.
BAD_WORDS = ("reject", "fail", "reroll", "retake", "redo", "bad")
WARN_WORDS = ("warn", "review", "check", "marginal")
SKIP_KEYS = {"segment", "film_frame", "gate", "decision"}
CHAIN_COLOURS = ("#4c6ef5", "#f59f00", "#12b886", "#e64980", "#7950f2", "#fd7e14", "#15aabf", "#82c91e")


def segment_frames(seg: Mapping[str, Any]) -> tuple[int, int, int]:
    """The film frames a segment's strip shows: its first generated, middle and last shown frame."""
    start, end = seg["shown_start"], seg["shown_end"]
    return start, (start + end - 1) // 2, max(start, end - 1)


def seam_frames(seam: Mapping[str, Any]) -> tuple[int, int]:
    """Before and after a seam: the last frame of the previous segment and the seam's first."""
    frame = int(seam["film_frame"])
    return max(0, frame - 1), frame


def wanted_frames(manifest: Mapping[str, Any]) -> set[int]:
    """Every film frame the page shows as a thumbnail."""
    planned = {s["index"]: s for s in manifest.get("plan", {}).get("segments", [])}
    frames: set[int] = set()
    for seg in manifest.get("segments", []):
        if seg["index"] in planned:
            frames.update(segment_frames(planned[seg["index"]]))
        if seg.get("seam"):
            frames.update(seam_frames(seg["seam"]))
    return frames


def measures(seam: Mapping[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    """Every numeric measure in a seam record (nested ones as ``outer.inner``), in record order."""
    out: list[tuple[str, float]] = []
    for key, value in seam.items():
        if not prefix and key in SKIP_KEYS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out.append((name, float(value)))
        elif isinstance(value, Mapping):
            out.extend(measures(value, name + "."))
    return out


def gate_of(seam: Mapping[str, Any]) -> dict[str, Any] | None:
    """The seam gate's record, whatever shape it came in (a dict under ``gate``, or a bare decision)."""
    gate = seam.get("gate")
    if isinstance(gate, Mapping):
        return dict(gate)
    if gate is not None:
        return {"decision": gate}
    if "decision" in seam:
        return {"decision": seam["decision"]}
    return None


def severity(seam: Mapping[str, Any]) -> int:
    """0 for a seam the gate failed, 1 warned or ungated, 2 passed."""
    gate = gate_of(seam)
    if gate is None:
        return 1
    decision = str(gate.get("decision", "")).lower()
    if any(w in decision for w in BAD_WORDS):
        return 0
    if any(w in decision for w in WARN_WORDS):
        return 1
    return 2


def worst_first(seams: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Failed seams first, then by the measured colour jump (or the first measure), largest first."""
    def size(seam: Mapping[str, Any]) -> float:
        found = dict(measures(seam))
        if "delta_e" in found:
            return found["delta_e"]
        return next(iter(found.values()), 0.0)

    return sorted(seams, key=lambda s: (severity(s), -size(s), s.get("segment", 0)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _img(thumbs: Mapping[int, str], frame: int, fps: int, label: str) -> str:
    url = thumbs.get(frame)
    caption = f"{escape(label)} · f{frame} · {format_frames(frame, fps)}"
    if url is None:
        return f'<figure class="thumb missing"><div class="noimg">no frame</div><figcaption>{caption}</figcaption></figure>'
    return (f'<figure class="thumb"><img src="{escape(url)}" loading="lazy" decoding="async" width="160" '
            f'height="90" alt="{escape(label)} frame {frame}"><figcaption>{caption}</figcaption></figure>')


def _pct(frame: float, total: int) -> str:
    return f"{100.0 * frame / max(total, 1):.4f}%"


def _timeline(manifest: Mapping[str, Any]) -> str:
    plan = manifest["plan"]
    total, fps = plan["total_frames"], plan["fps"]
    timeline = manifest.get("timeline") or {}
    rows = ['<div class="tl" aria-label="film timeline">']
    step = _tick_step(total / fps)
    t = 0.0
    ticks = []
    while t * fps <= total:
        ticks.append(f'<span class="tick" style="left:{_pct(t * fps, total)}">{format_frames(round(t * fps), fps)[3:8]}</span>')
        t += step
    rows.append('<div class="tl-row ticks">' + "".join(ticks) + "</div>")
    first_seg: dict[str, int] = {}
    for seg in plan["segments"]:
        first_seg.setdefault(seg["scene"], seg["index"])
    scenes = []
    for sc in plan["scenes"]:
        length = sc["end_frame"] - sc["start_frame"]
        colour = CHAIN_COLOURS[sc["chain"] % len(CHAIN_COLOURS)]
        sc_id = sc["id"]
        scenes.append(
            f'<a class="tl-scene" href="#segment-{first_seg.get(sc_id, 0)}" style="left:{_pct(sc["start_frame"], total)};'
            f'width:{_pct(length, total)};background:{colour}" title="{escape(sc["id"])}: '
            f'{format_frames(length, fps)} ({length} frames), {escape(sc["transition"])}">'
            f'<span>{escape(sc["id"])} · {length / fps:.1f}s · {escape(sc["transition"])}</span></a>')
    rows.append('<div class="tl-row scenes">' + "".join(scenes) + "</div>")
    for ch in plan["chains"]:
        for label, start, length in (("fade in", ch["start_frame"], ch["fade_in"]),
                                     ("fade out", ch["end_frame"] - ch["fade_out"], ch["fade_out"])):
            if length:
                rows.append(f'<div class="tl-row fades"><span class="tl-fade" style="left:{_pct(start, total)};'
                            f'width:{_pct(length, total)}" title="chain {ch["index"]} {label}: {length} frames"></span></div>')
    # alternate chains between two rows, so a crossfade's overlapping segments stay readable
    segs: list[list[str]] = [[], []]
    for seg in plan["segments"]:
        colour = CHAIN_COLOURS[seg["chain"] % len(CHAIN_COLOURS)]
        length = seg["shown_end"] - seg["shown_start"]
        label = seg["index"] if length / total > 0.012 else ""  # too narrow to read: the tooltip says it
        segs[seg["chain"] % 2].append(
            f'<a class="tl-seg" href="#segment-{seg["index"]}" style="left:{_pct(seg["shown_start"], total)};'
            f'width:{_pct(length, total)};border-color:{colour}" title="segment {seg["index"]}: film frames '
            f'{seg["shown_start"]}–{seg["shown_end"]}">{label}</a>')
    rows.extend('<div class="tl-row segs">' + "".join(row) + "</div>" for row in segs if row)
    marks = []
    for beat in timeline.get("beats", []):
        marks.append(f'<span class="tl-beat" style="left:{_pct(beat["film_frame"], total)}" title="beat in '
                     f'{escape(beat["scene"])} at f{beat["film_frame"]}: {escape(beat["prompt"])}">▼</span>')
    for kf in timeline.get("keyframes", []):
        moved = kf["film_frame"] - kf["wanted_frame"]
        if moved:
            lo, hi = sorted((kf["wanted_frame"], kf["film_frame"]))
            marks.append(f'<span class="tl-snap" style="left:{_pct(lo, total)};width:{_pct(hi - lo, total)}"></span>')
        note = f", snapped {moved:+d} frames from f{kf['wanted_frame']}" if moved else ""
        marks.append(f'<span class="tl-key{" snapped" if moved else ""}" style="left:{_pct(kf["film_frame"], total)}" '
                     f'title="keyframe {escape(kf["scene"])}#{kf["keyframe"]} ({escape(kf["image"])}) at '
                     f'f{kf["film_frame"]}{note}">◆</span>')
    rows.append('<div class="tl-row marks">' + "".join(marks) + "</div>")
    rows.append("</div>")
    rows.append('<p class="legend"><span class="tl-beat">▼</span> beat (prompt change) '
                '<span class="tl-key">◆</span> keyframe <span class="tl-key snapped">◆</span> keyframe snapped onto '
                "LTX's 8-frame grid (the hatched span is how far); numbered boxes are segments as shown in the film "
                "(chains alternate rows; a grey hatched bar is a crossfade).</p>")
    snaps = [kf for kf in timeline.get("keyframes", []) if kf["film_frame"] != kf["wanted_frame"]]
    if snaps:
        rows.append("<ul class=\"snaps\">" + "".join(
            f"<li>keyframe {escape(k['scene'])}#{k['keyframe']} ({escape(k['image'])}): wanted f{k['wanted_frame']}, "
            f"lands at f{k['film_frame']} ({k['film_frame'] - k['wanted_frame']:+d})</li>" for k in snaps) + "</ul>")
    return "".join(rows)


def _tick_step(seconds: float) -> float:
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if seconds / step <= 12:
            return float(step)
    return 1200.0


def _commands(board: str, index: int, paid: bool) -> str:
    board_arg = shlex.quote(board)
    backend = " --backend fal" if paid else ""
    rows = []
    for what, cmd in (("new take", f"composer reroll {board_arg} {index}{backend}"),
                      ("keep this take", f"composer pin {board_arg} {index}")):
        rows.append(f'<div class="cmd"><span>{what}</span><code>{escape(cmd)}</code>'
                    f'<button type="button" class="copy" data-copy="{escape(cmd)}">copy</button></div>')
    return "".join(rows)


def _seam_card(seam: Mapping[str, Any], thumbs: Mapping[int, str], fps: int, scene: str) -> str:
    before, after = seam_frames(seam)
    gate = gate_of(seam)
    rows = "".join(f"<tr><th>{escape(name)}</th><td>{value:.4g}</td></tr>" for name, value in measures(seam))
    verdict = ""
    if gate is not None:
        decision = escape(str(gate.get("decision", "—")))
        cls = ("bad", "warn", "ok")[severity(seam)]
        extra = "".join(f"<li>{escape(str(k))}: {escape(_fmt(v))}</li>" for k, v in gate.items()
                        if k not in ("decision", "takes"))
        takes = gate.get("takes")
        if isinstance(takes, list):
            extra += f"<li>takes: {len(takes)}<ol>" + "".join(
                "<li>" + escape(", ".join(f"{k}={_fmt(v)}" for k, v in t.items()) if isinstance(t, Mapping) else _fmt(t))
                + "</li>" for t in takes) + "</ol></li>"
        elif takes is not None:
            extra += f"<li>takes: {escape(_fmt(takes))}</li>"
        verdict = f'<p class="gate {cls}">gate: <b>{decision}</b></p><ul class="gate-info">{extra}</ul>'
    else:
        verdict = '<p class="gate none">no seam-gate decision recorded</p>'
    n = seam["segment"]
    return (f'<article class="seam" id="seam-{n}" data-seam="{n}"><h3>seam into <a href="#segment-{n}">segment {n}</a>'
            f' <small>({escape(scene)}) at f{seam["film_frame"]} · {format_frames(int(seam["film_frame"]), fps)}</small></h3>'
            f'<div class="pair">{_img(thumbs, before, fps, "before")}{_img(thumbs, after, fps, "after")}</div>'
            f'<div class="seam-data"><table>{rows}</table>{verdict}</div></article>')


def _segment_card(seg: Mapping[str, Any], planned: Mapping[str, Any], thumbs: Mapping[int, str], fps: int,
                  board: str, paid: bool) -> str:
    n = seg["index"]
    first, mid, last = segment_frames(planned)
    hit = seg.get("cache_hit")
    request_id = seg.get("request_id") or "—"
    colour = CHAIN_COLOURS[seg["chain"] % len(CHAIN_COLOURS)]
    return (
        f'<article class="segment" id="segment-{n}" data-segment="{n}" style="border-left-color:{colour}">'
        f'<h3>segment {n} <small>scene {escape(seg["scene"])} · chain {seg["chain"]} · film f{planned["shown_start"]}–'
        f'{planned["shown_end"]} ({format_frames(planned["shown_start"], fps)}–{format_frames(planned["shown_end"], fps)})'
        f"</small></h3>"
        f'<div class="strip">{_img(thumbs, first, fps, "first")}{_img(thumbs, mid, fps, "middle")}'
        f'{_img(thumbs, last, fps, "last")}</div>'
        f'<dl class="facts"><dt>seed</dt><dd>{seg.get("seed")}</dd><dt>cost</dt><dd>${float(seg.get("cost_usd") or 0):.2f}</dd>'
        f'<dt>cache</dt><dd class="{"hit" if hit else "new"}">{"hit" if hit else "generated"}</dd>'
        f'<dt>request id</dt><dd><code>{escape(str(request_id))}</code></dd>'
        f'<dt>frames</dt><dd>{planned["num_frames"]} ({planned["overlap"]} overlap)</dd>'
        f'<dt>time</dt><dd>{float(seg.get("seconds") or 0):.1f}s</dd></dl>'
        f'<p class="prompt">{escape(planned.get("prompt", ""))}</p>'
        f"{_commands(board, n, paid)}</article>")


def _drift_plots(manifest: Mapping[str, Any]) -> str:
    planned = {s["index"]: s for s in manifest["plan"]["segments"]}
    by_chain: dict[int, list[Mapping[str, Any]]] = {}
    for seg in manifest.get("segments", []):
        by_chain.setdefault(seg["chain"], []).append(seg)
    out = []
    for chain, segs in sorted(by_chain.items()):
        series: dict[str, list[tuple[float, float]]] = {"contrast": [], "chroma": [], "chroma hold applied": []}
        jumps: dict[str, list[tuple[float, float]]] = {"seam ΔE after matching": [], "raw overlap ΔE": []}
        for seg in segs:
            info = (seg.get("colour") or {}).get("info") or {}
            x = float(planned[seg["index"]]["shown_start"]) if seg["index"] in planned else float(seg["index"])
            for name, key, i in (("contrast", "drift", 0), ("chroma", "drift", 1), ("chroma hold applied", "hold_total", 1)):
                value = info.get(key)
                if isinstance(value, list) and len(value) == 2:
                    series[name].append((x, float(value[i])))
            seam = seg.get("seam") or {}
            for name, key in (("seam ΔE after matching", "delta_e"), ("raw overlap ΔE", "raw_overlap_delta_e")):
                if isinstance(seam.get(key), (int, float)):
                    jumps[name].append((x, float(seam[key])))
        drift = line_plot({k: v for k, v in series.items() if v}, x_label="film frame (segment start)",
                          y_label="look drift: log ratio to the chain's first segment", title=f"colour drift, chain {chain}")
        seams = line_plot({k: v for k, v in jumps.items() if v}, x_label="film frame (seam)",
                          y_label="colour jump at each seam (ΔE)", title=f"seam colour jumps, chain {chain}")
        body = (drift + seams) or '<p class="none">no colour measures recorded (colour matching off?)</p>'
        out.append(f'<figure class="drift" data-chain="{chain}"><figcaption>chain {chain} ({len(segs)} segments)'
                   f"</figcaption>{body}</figure>")
    return "".join(out)


CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#222;background:#f4f5f7}header,main{max-width:1240px;margin:0 auto;padding:12px 20px}
header{background:#1c2230;color:#eee;max-width:none}header h1{margin:0 0 4px;font-size:20px}
header .sum{color:#bbb}h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #ccd;padding-bottom:3px}
h3{font-size:14px;margin:0 0 6px}small{color:#667;font-weight:normal}code{font:12px/1.3 ui-monospace,monospace}
video{display:block;max-width:100%;max-height:50vh;margin:8px 0;background:#000}
.tl{position:relative;background:#fff;border:1px solid #ccd;padding:4px 36px 4px 0;overflow:hidden}
.tl-row{position:relative;height:24px;margin:2px 0}.tl-row.ticks{height:16px;border-bottom:1px solid #ddd}
.tl-row.fades{height:6px;margin:0}
.tick{position:absolute;font-size:10px;color:#667;border-left:1px solid #bbb;padding-left:2px;height:16px}
.tl-scene{position:absolute;height:24px;color:#fff;overflow:hidden;white-space:nowrap;font-size:12px;
padding:3px 4px;border-right:2px solid #fff;text-decoration:none}
.tl-fade{position:absolute;height:6px;background:repeating-linear-gradient(45deg,#999 0 3px,#eee 3px 6px)}
.tl-seg{position:absolute;height:22px;border:2px solid;border-radius:3px;font-size:11px;text-align:center;
color:#333;text-decoration:none;background:#f8f9fb;overflow:hidden}
.tl-row.marks{height:18px}.tl-beat,.tl-key{position:absolute;transform:translateX(-50%);font-size:13px;line-height:18px}
.tl-beat{color:#e8590c}.tl-key{color:#1971c2}.tl-key.snapped{color:#c92a2a}
.legend .tl-beat,.legend .tl-key{position:static;transform:none}
.tl-snap{position:absolute;height:18px;background:repeating-linear-gradient(90deg,#ffc9c9 0 2px,transparent 2px 4px)}
.legend,.snaps{font-size:12px;color:#556}
.seams,.segments{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:10px}
article{background:#fff;border:1px solid #d5d8de;border-radius:4px;padding:8px 10px}
.segment{border-left:5px solid}.strip,.pair{display:flex;gap:6px;flex-wrap:wrap}
.thumb{margin:0;width:160px}.thumb img,.noimg{display:block;width:160px;height:90px;object-fit:cover;background:#222}
.noimg{color:#aaa;font-size:11px;text-align:center;line-height:90px}
figcaption{font-size:11px;color:#667}.seam{display:grid;grid-template-columns:auto 1fr;gap:10px}
.seam h3{grid-column:1/3}.seam table{border-collapse:collapse;font-size:12px}
.seam th{text-align:left;font-weight:normal;color:#556;padding:1px 10px 1px 0}.seam td{font-variant-numeric:tabular-nums}
.gate{margin:6px 0 2px;font-size:13px}.gate.bad b{color:#c92a2a}.gate.warn b{color:#e67700}.gate.ok b{color:#2b8a3e}
.gate.none{color:#889;font-size:12px}.gate-info{margin:0;padding-left:18px;font-size:12px}
.facts{display:grid;grid-template-columns:auto 1fr auto 1fr auto 1fr;gap:2px 8px;margin:6px 0;font-size:12px}
.facts dt{color:#667}.facts dd{margin:0}.hit{color:#2b8a3e}.new{color:#1971c2}
.prompt{margin:4px 0;font-size:13px;color:#333;max-height:5.6em;overflow:auto}
.cmd{display:flex;gap:6px;align-items:center;font-size:12px;margin:2px 0}.cmd span{width:90px;color:#667}
.cmd code{flex:1;background:#f1f3f5;padding:2px 4px;user-select:all;word-break:break-all}
.copy{font-size:11px;padding:1px 6px}.drift{margin:0 0 10px}.drift .plot{width:49%;height:auto;margin-right:1%}
.none{color:#889}
"""

SCRIPT = """
document.addEventListener('click', function (e) {
  var b = e.target.closest('button.copy'); if (!b) return;
  var text = b.getAttribute('data-copy');
  var done = function () { b.textContent = 'copied'; setTimeout(function () { b.textContent = 'copy'; }, 1200); };
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(text).then(done, function () { select(b); });
  } else { select(b); }
});
function select(b) {
  var code = b.parentNode.querySelector('code'); var r = document.createRange(); r.selectNodeContents(code);
  var s = window.getSelection(); s.removeAllRanges(); s.addRange(r); b.textContent = 'press Ctrl-C';
}
"""


def build_page(manifest: Mapping[str, Any], thumbs: Mapping[int, str], *, video: str | None = None,
               board: str | None = None) -> str:
    """The whole review page for ``manifest``; ``thumbs`` maps film frames to image URLs
    (relative to the page), ``video`` is the film's URL when it sits beside the page."""
    plan = manifest["plan"]
    fps = plan["fps"]
    planned = {s["index"]: s for s in plan["segments"]}
    segments = [s for s in manifest.get("segments", []) if s["index"] in planned]
    board = board or (manifest.get("storyboard") or {}).get("source") or "BOARD.yaml"
    paid = not str(manifest.get("backend", "")).startswith("preview")
    title = plan.get("title") or (manifest.get("storyboard") or {}).get("title") or "untitled film"
    scene_of = {s["index"]: s["scene"] for s in segments}
    seams = worst_first([s["seam"] for s in segments if s.get("seam")])
    output = manifest.get("output") or {}
    summary = (f'{format_frames(plan["total_frames"], fps)} · {plan["total_frames"]} frames at {fps} fps · '
               f'{plan["width"]}×{plan["height"]} · {len(plan["scenes"])} scenes · {len(plan["chains"])} chains · '
               f'{len(segments)} segments ({manifest.get("cache_hits", 0)} from cache, '
               f'{manifest.get("requests_made", 0)} requests) · cost ${float(manifest.get("cost_usd") or 0):.2f} · '
               f'backend {escape(str(manifest.get("backend", "?")))}')
    ranges = output.get("ranges") or ([output["range"]] if output.get("range") else [])
    if ranges and [list(r) for r in ranges] != [[0, plan["total_frames"]]]:
        summary += " · this file holds film frames " + ", ".join(f"{a}–{b}" for a, b in ranges)
    parts = [
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>review: {escape(title)}</title><style>{CSS}</style></head><body>",
        f'<header><h1>{escape(title)}</h1><div class="sum">{summary}</div>'
        f'<div class="sum">storyboard <code>{escape(board)}</code> · composer {escape(str(manifest.get("composer_version", "")))}'
        f"</div></header><main>",
    ]
    if video:
        parts.append(f'<video controls preload="metadata" src="{escape(video)}"></video>')
    parts.append("<h2>Timeline</h2>" + _timeline(manifest))
    parts.append(f"<h2>Seams, worst first ({len(seams)})</h2>")
    parts.append('<div class="seams">' + "".join(
        _seam_card(s, thumbs, fps, scene_of.get(s["segment"], "")) for s in seams) + "</div>"
        if seams else '<p class="none">no seams: every chain is one segment</p>')
    parts.append("<h2>Colour drift along each chain</h2>" + _drift_plots(manifest))
    parts.append(f"<h2>Segments ({len(segments)})</h2>")
    parts.append('<p class="legend">Run the commands from the folder the film was rendered in; '
                 "a reroll re-renders the segment and the rest of its chain.</p>")
    parts.append('<div class="segments">' + "".join(
        _segment_card(s, planned[s["index"]], thumbs, fps, board, paid) for s in segments) + "</div>")
    parts.append(f"</main><script>{SCRIPT}</script></body></html>\n")
    return "".join(parts)
