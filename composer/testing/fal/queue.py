"""fal's queue protocol in the emulator: submit, status, result, cancel, synchronous run,
job threads and persistent job state (``state_dir``) that survives a restart.

Like a fal account, at most ``concurrency`` queue requests run at once; the rest wait
IN_QUEUE in submit order, with their ``queue_position`` (0 = next to start).
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any


from ...atomic import atomic_write_text
from .state import Job, MediaRef, _log, _now_iso
from .validation import validate_input
from .host import EmulatorHost

class QueueMixin(EmulatorHost):
    """Queue handlers and the job lifecycle; mixed into ``FalEmulator``."""

    def _queue_urls(self, app_id: str, request_id: str) -> dict[str, str]:
        owner_alias = "/".join(app_id.split("/")[:2])
        base = f"{self.base_url}/{owner_alias}/requests/{request_id}"
        return {"response_url": base, "status_url": base + "/status", "cancel_url": base + "/cancel"}

    def _submit(self, h, parts, query, raw, record, fault) -> None:
        app_id = "/".join(parts)
        if app_id not in self.apps:
            self._reply(h, 404, {"detail": f"Application '{app_id}' not found"}, record=record)
            return
        body = record.json
        if body is None and raw:
            self._reply(h, 422, {"detail": [{"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}]},
                        record=record)
            return
        media: list[MediaRef] = []
        if self.validate_on == "submit":
            detail = validate_input(body)
            if not detail:
                media, detail = self._resolve_media(body)
            if detail:
                self._count("submit", "rejected")
                self._reply(h, 422, {"detail": detail}, record=record)
                return
        job = Job(id=str(uuid.uuid4()), app_id=app_id, body=body, created=time.time(), media=media,
                  faults=self._take_job_faults())
        with self._lock:
            self.jobs[job.id] = job
            self.submits[app_id] += 1
        record.request_id = job.id
        self._persist(job)
        self._log(job, f"Request {job.id} queued")
        self._spawn(job)
        if fault is not None:  # after_accept: the job is queued, the answer is lost
            self._apply_fault(h, fault, record, request_id=job.id)
            return
        payload = {"request_id": job.id, **self._queue_urls(app_id, job.id),
                   "queue_position": self._queue_position(job)}
        self._reply(h, 200, payload, headers={"x-fal-request-id": job.id}, record=record)

    def _find_job(self, parts: list[str]) -> Job | None:
        i = parts.index("requests", 2)
        app_prefix = "/".join(parts[:i])
        with self._lock:
            job = self.jobs.get(parts[i + 1])
        if job is None or job.sync:
            return None
        if "/".join(job.app_id.split("/")[: len(parts[:i])]) != app_prefix:
            return None
        return job

    def _queue_position(self, job: Job) -> int:
        with self._lock:
            waiting = sorted((j for j in self.jobs.values() if j.state == "IN_QUEUE" and not j.sync),
                             key=lambda j: j.created)
        for i, j in enumerate(waiting):
            if j.id == job.id:
                return i
        return 0

    def _job_for(self, h, parts, record, fault=None) -> Job | None:
        """The job a status/result/cancel call names, or None once the reply (404, or the fault) is sent."""
        job = self._find_job(parts)
        if job is None:
            self._reply(h, 404, {"detail": "Request not found"}, record=record)
            return None
        record.request_id = job.id
        if fault is not None:
            self._apply_fault(h, fault, record, request_id=job.id)
            return None
        return job

    def _status(self, h, parts, query, raw, record, fault) -> None:
        job = self._job_for(h, parts, record)
        if job is None:
            return
        job.status_polls += 1
        with_logs = query.get("logs", ["0"])[-1].lower() in ("1", "true", "yes")
        with self._lock:
            state = job.state
            logs = [dict(entry) for entry in job.logs] if with_logs else None
        payload: dict[str, Any] = {"status": state, "request_id": job.id, **self._queue_urls(job.app_id, job.id)}
        if state == "IN_QUEUE":
            payload["queue_position"] = self._queue_position(job)
        else:
            payload["logs"] = logs
        if state == "COMPLETED":
            elapsed = (job.finished or time.time()) - (job.started or job.created)
            payload["metrics"] = {"inference_time": round(elapsed, 3)}
            if job.error:
                payload["error"] = job.error.get("error")
                payload["error_type"] = job.error.get("error_type")
        if fault is not None:
            self._apply_fault(h, fault, record, request_id=job.id)
            return
        self._reply(h, 200 if state == "COMPLETED" else 202, payload,
                    headers={"x-fal-request-id": job.id}, record=record)

    def _result(self, h, parts, query, raw, record, fault) -> None:
        job = self._job_for(h, parts, record, fault)
        if job is None:
            return
        headers = {"x-fal-request-id": job.id}
        if job.state != "COMPLETED":
            self._reply(h, 400, {"detail": "Request is still in progress"}, headers=headers, record=record)
            return
        if job.error:
            self._reply(h, job.error["status"], job.error["body"], headers={**headers, **job.error.get("headers", {})},
                        record=record)
            return
        job.result_fetches += 1
        self._count("result", "ok")
        self._reply(h, 200, job.result, headers=headers, record=record)

    def _cancel(self, h, parts, query, raw, record, fault) -> None:
        job = self._job_for(h, parts, record, fault)
        if job is None:
            return
        with self._lock:
            done = job.state == "COMPLETED"
            if not done:
                job.cancelled = True
                job._cancel.set()
        if done:
            self._reply(h, 400, {"status": "ALREADY_COMPLETED"}, record=record)
            return
        self._count("cancel", "ok")
        self._finish(job, error={
            "status": 400, "body": {"detail": "Request was cancelled", "error_type": "client_cancelled"},
            "headers": {"X-Fal-Error-Type": "client_cancelled"}, "error": "Request was cancelled",
            "error_type": "client_cancelled"})
        self._reply(h, 202, {"status": "CANCELLATION_REQUESTED"}, record=record)

    def _run(self, h, parts, query, raw, record, fault) -> None:
        app_id = "/".join(parts[1:])
        if app_id not in self.apps:
            self._reply(h, 404, {"detail": f"Application '{app_id}' not found"}, record=record)
            return
        body = record.json
        detail = validate_input(body)
        media: list[MediaRef] = []
        if not detail:
            media, detail = self._resolve_media(body)
        if detail:
            self._reply(h, 422, {"detail": detail}, record=record)
            return
        job = Job(id=str(uuid.uuid4()), app_id=app_id, body=body, created=time.time(), media=media,
                  faults=self._take_job_faults(), sync=True)
        with self._lock:
            self.jobs[job.id] = job
        record.request_id = job.id
        self._run_job(job, use_slot=False)
        if fault is not None:
            self._apply_fault(h, fault, record, request_id=job.id)
            return
        if job.error:
            self._reply(h, job.error["status"], job.error["body"], headers=job.error.get("headers", {}), record=record)
            return
        self._reply(h, 200, job.result, headers={"x-fal-request-id": job.id}, record=record)

    # ------------------------------------------------------------------ storage / CDN endpoints


    def _spawn(self, job: Job) -> None:
        t = threading.Thread(target=self._run_job, args=(job,), name=f"fal-job-{job.id[:8]}", daemon=True)
        with self._lock:
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
        t.start()

    def _log(self, job: Job, message: str, level: str = "INFO") -> None:
        with self._lock:
            job.logs.append({"message": message, "level": level, "source": "user", "timestamp": _now_iso()})

    def _interrupted(self, job: Job) -> bool:
        return job._cancel.is_set() or self._stop.is_set()

    def _sleep(self, job: Job, seconds: float) -> bool:
        """Sleep unless cancelled or stopping; True when interrupted."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return self._interrupted(job)
            if job._cancel.wait(min(left, 0.05)) or self._stop.is_set():
                return True

    def _set_state(self, job: Job, state: str) -> None:
        with self._lock:
            if job.state == "COMPLETED":
                return
            job.state = state
            if state == "IN_PROGRESS":
                job.started = time.time()
        self._persist(job)

    def _finish(self, job: Job, *, result: dict | None = None, error: dict | None = None) -> None:
        with self._lock:
            if job.state == "COMPLETED":
                return
            job.result, job.error = result, error
            job.state = "COMPLETED"
            job.finished = time.time()
        self._log(job, "Request failed" if error else "Request completed", "ERROR" if error else "INFO")
        self._persist(job)
        job._done.set()

    def _run_job(self, job: Job, use_slot: bool = True) -> None:
        try:
            wait = self.queue_delay + sum(f.seconds for f in job.faults if f.kind == "slow_queue")
            if wait and self._sleep(job, wait):
                return
            if use_slot and not self._take_slot(job):
                return
            try:
                if not use_slot:
                    if self._interrupted(job):
                        return
                    self._set_state(job, "IN_PROGRESS")
                self._process(job)
            finally:
                if use_slot:
                    self._give_slot()
        except Exception as exc:  # noqa: BLE001 — a job thread must end its job whatever failed, never leave it hanging
            _log.exception("fal emulator job %s failed", job.id)
            self._finish(job, error=self._server_error(f"{type(exc).__name__}: {exc}", "runner_server_error", 500))


    def _take_slot(self, job: Job) -> bool:
        """Wait IN_QUEUE for one of the account's ``concurrency`` slots, first come first served
        (by submit time, as fal's queue does); False when cancelled or stopping first. The job
        turns IN_PROGRESS under the same lock, so no status call sees more running than the limit."""
        entry = (job.created, job.id)
        with self._slot_cond:
            self._waiting.append(entry)
            self._waiting.sort()
            try:
                while True:
                    if self._interrupted(job):
                        return False
                    if self._running < self.concurrency and self._waiting[0] == entry:
                        self._waiting.pop(0)
                        self._running += 1
                        self.peak_running = max(self.peak_running, self._running)
                        self._set_state(job, "IN_PROGRESS")
                        self._slot_cond.notify_all()  # the next in line may fit too
                        return True
                    self._slot_cond.wait(0.05)  # wakes on a freed slot; the timeout notices a cancel
            finally:
                if entry in self._waiting:
                    self._waiting.remove(entry)
                    self._slot_cond.notify_all()

    def _give_slot(self) -> None:
        with self._slot_cond:
            self._running -= 1
            self._slot_cond.notify_all()

    def _persist(self, job: Job) -> None:
        if self.state_dir is None or job.sync:
            return
        path = self._started_root / "jobs" / f"{job.id}.json"
        with self._lock:
            data = json.dumps(job.to_json())
        atomic_write_text(path, data)

    def _load_jobs(self) -> None:
        if self.state_dir is None:
            return
        for path in sorted((self._started_root / "jobs").glob("*.json")):
            try:
                job = Job.from_json(json.loads(path.read_text()))
            except (ValueError, TypeError):
                continue
            job.faults = [f for f in job.faults if f.kind != "hold"]
            with self._lock:
                self.jobs[job.id] = job
            if job.state != "COMPLETED":  # the emulator stopped mid-job: run it again
                job.state = "IN_QUEUE"
                self._log(job, "Emulator restarted; request re-queued")
                self._spawn(job)


# --------------------------------------------------------------------------- command line
