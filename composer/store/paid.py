"""The bookkeeping of one paid request, shared by ``composer render`` and ``composer generate``.

Lease, journal (an intent before the submit, the request id after it), the re-attach
decision, consent to a possible double payment, and the de-duplicated cost ledger.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Cancelled, ComposerError
from .base import RESULT_TTL_S, Busy, CacheEntry, Claim, Store, default_owner, lease_ttl_s


class ConsentNeeded(ComposerError):
    """Going on could pay twice for one segment, and nobody said yes (``--yes``)."""


@dataclass
class Consent:
    """Which possible double payments a person agreed to: all (``--yes``) or these keys."""

    everything: bool = False
    keys: set[str] = field(default_factory=set)

    def allows(self, key: str) -> bool:
        return self.everything or key in self.keys


def _outcome_unknown(exc: BaseException) -> bool:
    """Whether a failure may have happened after fal accepted the submit (the id then lost)."""
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__name__ == "SubmitOutcomeUnknown" or "may have been queued" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _ago(t: float | None) -> str:
    if not t:
        return "at an unknown time"
    s = max(0.0, time.time() - t)
    return f"{s / 3600:.1f} h ago" if s >= 5400 else f"{s / 60:.0f} min ago"


def doubts(record: dict[str, Any] | None, now: float | None = None) -> str | None:
    """Why resuming this journal record might pay again (an intent, or a result fal no longer keeps)."""
    if record is None:
        return None
    now = now or time.time()
    if not record.get("request_id"):
        return (f"a run stopped {_ago(record.get('intent_at'))} while submitting it: fal may have accepted "
                "(and billed) that request with its id lost")
    submitted = record.get("submitted_at")
    if submitted and now - submitted > RESULT_TTL_S:
        return (f"its fal request {record['request_id']} was submitted {_ago(submitted)}; fal keeps results "
                "about an hour, so it has probably expired")
    return None


class PaidRequest:
    """One segment's (or one ``generate``'s) paid request, from lease to ledger.

    ``acquire()`` waits for the lease (returning the entry if another run published it
    meanwhile); ``resume_id`` is the journalled request to re-attach; the backend's
    callbacks are ``on_submitted`` and ``confirm_resubmit``; ``settle`` writes the
    ledger; ``publish`` / ``done`` / ``failed`` end it.
    """

    def __init__(self, store: Store, key: str, *, label: str, cost: float, backend: str,
                 record: dict[str, Any] | None = None, consent: Consent | None = None, owner: str | None = None,
                 ttl: float | None = None, cancelled: Callable[[], bool] | None = None,
                 on_wait: Callable[[Busy], None] | None = None, poll: float = 0.5):
        self.store, self.key, self.label, self.cost, self.backend = store, key, label, cost, backend
        self.record = dict(record or {})
        self.consent = consent or Consent()
        self.owner = owner or default_owner()
        self.ttl = lease_ttl_s() if ttl is None else ttl
        self.cancelled = cancelled or (lambda: False)
        self.on_wait = on_wait
        self.poll = poll
        self.claim: Claim | None = None
        self._resume_id: str | None = None
        self.submitted_id: str | None = None

    # -- lease ----------------------------------------------------------------
    def acquire(self, *, lookup: bool = True) -> CacheEntry | None:
        """Hold the lease on the key; an entry another run published while we waited is returned instead."""
        waited: Busy | None = None
        while True:
            if lookup:
                entry = self.store.lookup(self.key)
                if entry is not None:
                    return entry
            got = self.store.claim(self.key, self.owner, self.ttl)
            if isinstance(got, Claim):
                self.claim = got
                self._resume_id = got.request_id
                break
            if waited is None and self.on_wait is not None:
                self.on_wait(got)
            waited = got
            if self.cancelled():
                raise Cancelled("cancelled")
            time.sleep(self.poll)
        if lookup and waited is not None:  # the holder may have published just before letting go
            entry = self.store.lookup(self.key)
            if entry is not None:
                self.store.release(self.claim)
                self.claim = None
                return entry
        doubt = doubts(self.claim.journal) if self.claim.unresolved_intent else None
        if doubt is not None and not self.consent.allows(self.key):
            self.store.release(self.claim)
            raise ConsentNeeded(self._ask(doubt))
        return None

    @property
    def resume_id(self) -> str | None:
        """The journalled request to re-attach (paid by an earlier run), if any."""
        return self._resume_id

    def _ask(self, doubt: str) -> str:
        return (f"{self.label or 'this request'}: {doubt}; submitting it again may pay twice "
                f"(${self.cost:.2f}). Check https://fal.ai/dashboard/requests, then run again with --yes "
                "to submit it again")

    # -- journal ----------------------------------------------------------------
    def intend(self) -> None:
        """Journal the intent to submit, before the submit: a kill after fal accepts it is then visible."""
        assert self.claim is not None, "acquire() first"
        if self._resume_id:
            return  # the backend re-attaches it first, and asks (confirm_resubmit) before buying anew
        self.store.record(self.claim, {**self.record, "backend": self.backend, "intent_at": time.time(),
                                       "cost_usd": self.cost})

    def on_submitted(self, request_id: str) -> None:
        pause = os.environ.get("COMPOSER_TEST_PAUSE_AFTER_SUBMIT")  # tests: widen the kill window on purpose
        if pause:
            time.sleep(float(pause))
        self.submitted_id = request_id
        if self.claim is not None:
            self.store.record(self.claim, {**self.record, "request_id": request_id, "backend": self.backend,
                                           "submitted_at": time.time(), "cost_usd": self.cost})

    def confirm_resubmit(self, reason: str) -> None:
        """The journalled request cannot be fetched (unknown or expired): buy it anew only with consent."""
        journal = self.claim.journal if self.claim is not None else None
        old = (journal or {}).get("request_id")
        when = _ago((journal or {}).get("submitted_at"))
        doubt = (f"fal no longer has the result of request {old} (submitted {when}; fal keeps results about "
                 f"an hour): {reason}")
        if not self.consent.allows(self.key):
            raise ConsentNeeded(f"{self.label or 'this request'}: {doubt}; submitting it again costs "
                                f"${self.cost:.2f}: run again with --yes to pay for it")
        self._resume_id = None
        if self.claim is not None:
            self.store.record(self.claim, {**self.record, "backend": self.backend, "intent_at": time.time(),
                                           "replaces": old, "cost_usd": self.cost})

    # -- the end ------------------------------------------------------------------
    def settle(self, request_id: str | None, extra: dict[str, Any] | None = None) -> bool:
        """Write the ledger row of ``request_id`` (once per id, ever); True when it was bought by this run."""
        if not request_id:
            return False
        newly_paid = request_id != self.resume_id
        self.store.ledger_append({"request_id": request_id, "cost_usd": self.cost, "backend": self.backend,
                                  "key": self.key, **self.record, **(extra or {}),
                                  **({} if newly_paid else {"resumed": True})})
        return newly_paid

    def publish(self, video: Path, meta: dict[str, Any]) -> CacheEntry:
        """Publish the segment; its journal is cleared and the lease released."""
        return self.store.publish(self.key, video, meta, self.claim)

    def done(self) -> None:
        if self.claim is not None:
            self.store.release(self.claim, clear_journal=True)

    def failed(self, exc: BaseException) -> None:
        """Release the lease; keep the journal when fal may hold the request (an id, or an unknown outcome)."""
        if self.claim is None:
            return
        journal = self.claim.journal
        unsent = (journal is not None and not journal.get("request_id") and self.submitted_id is None
                  and isinstance(exc, Exception) and not _outcome_unknown(exc))
        self.store.release(self.claim, clear_journal=unsent)
