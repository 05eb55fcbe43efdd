"""Making the video of a job: the preview renderer (with drift), a test pattern, or a canned
clip copied after a latency; plus fal-shaped error bodies for failed jobs.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


from ...atomic import atomic_path
from ...backends.fal_catalog import output_size
from ...errors import MediaError
from .drift import preview_options
from .faults import JobFault
from .state import ERRORS_URL, SAFETY_MESSAGE, Job, _short
from .validation import conditioning_frames, validate_input
from .host import EmulatorHost

def _render_testsrc(request, workdir: Path) -> Path:
    """A plain ffmpeg test pattern of the requested size, rate and length."""
    import imageio_ffmpeg

    width, height = output_size(request.resolution, request.aspect_ratio)
    out = Path(workdir) / "testsrc.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={request.frame_rate}",
        "-frames:v", str(request.num_frames), "-c:v", "libx264", "-preset", "ultrafast",
        "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


_CANNED: dict[tuple, Path] = {}
_CANNED_LOCK = threading.Lock()
_CANNED_DIR: tempfile.TemporaryDirectory | None = None


def _canned_clip(request) -> Path:
    """A test pattern for this (size, rate, length), rendered once per process and shared by all emulators."""
    global _CANNED_DIR
    key = (output_size(request.resolution, request.aspect_ratio), request.frame_rate, request.num_frames)
    with _CANNED_LOCK:
        path = _CANNED.get(key)
        if path is None or not path.exists():
            if _CANNED_DIR is None:
                _CANNED_DIR = tempfile.TemporaryDirectory(prefix="fal-emulator-canned-")
            path = _render_testsrc(request, Path(_CANNED_DIR.name) / f"{len(_CANNED)}")
            _CANNED[key] = path
    return path


# --------------------------------------------------------------------------- the emulator


class GenerationMixin(EmulatorHost):
    """Runs one accepted job to a result or an error; mixed into ``FalEmulator``."""

    @staticmethod
    def _server_error(message: str, error_type: str | None, status: int) -> dict[str, Any]:
        headers = {"X-Fal-Retryable": "true" if status >= 500 else "false"}
        body: dict[str, Any] = {"detail": message}
        if error_type:
            headers["X-Fal-Error-Type"] = error_type
            body["error_type"] = error_type
        return {"status": status, "body": body, "headers": headers, "error": message, "error_type": error_type}

    @staticmethod
    def _validation_error(detail: list[dict[str, Any]]) -> dict[str, Any]:
        return {"status": 422, "body": {"detail": detail}, "headers": {"X-Fal-Retryable": "false"},
                "error": "Unprocessable Entity", "error_type": None}

    def _safety_error(self, job: Job, field_name: str) -> dict[str, Any]:
        value = job.body.get(field_name) if isinstance(job.body, dict) else None
        detail = [{"loc": ["body", field_name], "msg": SAFETY_MESSAGE, "type": "content_policy_violation",
                   "url": f"{ERRORS_URL}#content_policy_violation", "input": _short(value)}]
        return {"status": 422, "body": {"detail": detail},
                "headers": {"X-Fal-Error-Type": "content_policy_violation", "X-Fal-Retryable": "false"},
                "error": SAFETY_MESSAGE, "error_type": "content_policy_violation"}

    def _process(self, job: Job) -> None:
        from ...backends.base import file_url
        from ...request import GenerationRequest

        body = job.body
        if self.validate_on == "result" and not job.sync:
            detail = validate_input(body)
            if not detail:
                job.media, detail = self._resolve_media(body)
            if detail:
                self._finish(job, error=self._validation_error(detail))
                return
        request = GenerationRequest.model_validate(body)
        width, height = output_size(request.resolution, request.aspect_ratio)
        self._log(job, f"Generating {request.num_frames} frames at {width}x{height}, "
                       f"{request.frame_rate} fps, {len(request.images)} image(s), {len(request.videos)} video(s)")
        if job.held:
            self._log(job, "Waiting (held by the test)")
            while not job._release.wait(0.05):
                if self._interrupted(job):
                    return
        safety = next((f for f in job.faults if f.kind == "safety"), None)
        if safety is None and self.safety_trigger and self.safety_trigger in request.prompt:
            safety = JobFault("safety", field="prompt")
        if safety is not None:
            if self._sleep(job, self.latency):
                return
            self._finish(job, error=self._safety_error(job, safety.field))
            return
        failure = next((f for f in job.faults if f.kind == "error"), None)
        if failure is not None:
            if self._sleep(job, self.latency):
                return
            self._finish(job, error=self._server_error(failure.error, failure.error_type, failure.status))
            return

        seed = request.seed if request.seed is not None else int.from_bytes(hashlib.sha256(job.id.encode()).digest()[:4], "big")
        by_field = {m.field: m for m in job.media}
        images = [img.model_copy(update={"image_url": file_url(Path(by_field[f"images[{i}].image_url"].path))})
                  for i, img in enumerate(request.images)]
        videos = [vid.model_copy(update={"video_url": file_url(Path(by_field[f"videos[{i}].video_url"].path))})
                  for i, vid in enumerate(request.videos)]
        local = request.model_copy(update={"images": images, "videos": videos, "seed": seed})

        t0 = time.monotonic()
        dest = self._started_root / "files" / f"{job.id}.mp4"
        try:
            if self.canned:
                if self._progress_sleep(job, self.latency):
                    return
                src = self.canned_clip or self._canned_for(local)
                with atomic_path(dest) as tmp:
                    shutil.copyfile(src, tmp)
            else:
                self._log_conditioning(job, local)
                if self._progress_sleep(job, self.latency):
                    return
                workdir = self._started_root / "work" / job.id
                workdir.mkdir(parents=True, exist_ok=True)
                try:
                    out = self._ruin_clip(local.seed, self._render(local, workdir))
                    with atomic_path(dest) as tmp:
                        shutil.move(str(out), tmp)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
        except MediaError as exc:
            detail = [{"loc": ["body"], "msg": f"Could not process the conditioning media: {exc}",
                       "type": "invalid_media", "url": f"{ERRORS_URL}#invalid_media"}]
            self._finish(job, error=self._validation_error(detail))
            return
        self._log(job, f"Generated in {time.monotonic() - t0:.2f}s")
        job.output = str(dest)
        result = {
            "video": {"url": f"{self.cdn_url}/files/{dest.name}", "content_type": "video/mp4",
                      "file_name": dest.name, "file_size": dest.stat().st_size},
            "prompt": request.prompt,
            "seed": seed,
        }
        self._finish(job, result=result)

    def _log_conditioning(self, job: Job, request) -> None:
        """Say where each conditioning video lands, by LTX's rule (the renderer follows the same one)."""
        from ...backends.base import local_path
        from ...media import probe

        for i, item in enumerate(request.videos):
            path = local_path(item.video_url)
            if path is None:
                continue
            try:
                length = probe(path).num_frames
            except MediaError:  # a log line must not fail the job: the renderer judges the media
                continue
            used = conditioning_frames(item.start_frame_num, length, request.num_frames)
            self._log(job, f"videos[{i}]: {used} frame(s) in place at frames {item.start_frame_num}-"
                           f"{item.start_frame_num + used - 1} (strength {item.strength:g})")

    def _progress_sleep(self, job: Job, seconds: float) -> bool:
        """Sleep ``seconds`` in steps, logging progress like a sampler does; True when interrupted."""
        if seconds <= 0:
            return self._interrupted(job)
        steps = max(1, round(seconds / max(self.log_interval, 0.01)))
        for i in range(steps):
            if self._sleep(job, seconds / steps):
                return True
            self._log(job, f"step {i + 1}/{steps}")
        return False

    def _render(self, request, workdir: Path) -> Path:
        renderer = self.renderer
        if callable(renderer):
            self.renderer_used = getattr(renderer, "__name__", "callable")
            return Path(renderer(request, workdir))
        if renderer in ("auto", "preview"):
            try:
                from ...backends.preview import PreviewBackend
            except ImportError:
                if renderer == "preview":
                    raise
            else:
                self.renderer_used = "preview"
                return Path(PreviewBackend(**preview_options(self.drift)).generate(request, workdir).path)
        self.renderer_used = "testsrc"
        return _render_testsrc(request, workdir)

    def _canned_for(self, request) -> Path:
        """One test-pattern clip per (size, rate, length), made once per process, then copied."""
        self.renderer_used = "canned"
        return _canned_clip(request)
