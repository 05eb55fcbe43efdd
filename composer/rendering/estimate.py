"""How long a render waits for the model: list-schedule a plan's requests over its
dependency graph at a latency per request under a concurrency limit. Pure: no I/O, no
clock; the figure leaves out composer's own work and the assembly after the last request.
"""
from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


def parents(seg: Any) -> list[int]:
    """The segments whose output a segment's request needs: ``seg.parents`` where plans have
    it (a bridge has two), else its one ``depends_on`` predecessor."""
    got = getattr(seg, "parents", None)
    if got is not None:
        return [int(p) for p in got]
    return [seg.depends_on] if seg.depends_on is not None else []


@dataclass(frozen=True)
class WallEstimate:
    requests: int  # requests a render would make
    critical_path: int  # the longest chain of those that wait for one another
    waves: int  # rounds of ``latency_s`` the schedule takes
    concurrency: int
    latency_s: float
    wall_s: float  # from the first submit to the last request done

    def describe(self) -> str:
        if not self.requests:
            return "nothing to generate"
        return (f"{self.requests} request{'s' if self.requests != 1 else ''}, {self.concurrency} at once: "
                f"{self.waves} wave{'s' if self.waves != 1 else ''} (critical path {self.critical_path}) × "
                f"{self.latency_s:g} s ≈ {format_seconds(self.wall_s)} waiting for the model")


def format_seconds(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _children(graph: Mapping[int, Collection[int]]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {n: [] for n in graph}
    for n, ps in graph.items():
        for p in ps:
            if p in children:
                children[p].append(n)
    return children


def longest_paths(graph: Mapping[int, Collection[int]]) -> dict[int, int]:
    """For each request, the most requests on a dependency chain from it to the end (itself included)."""
    children = _children(graph)
    waiting = {n: sum(1 for p in ps if p in graph) for n, ps in graph.items()}
    order = [n for n, k in waiting.items() if k == 0]
    for n in order:  # Kahn's order, iterative: a chain can be thousands long
        for c in children[n]:
            waiting[c] -= 1
            if waiting[c] == 0:
                order.append(c)
    if len(order) != len(graph):
        raise ValueError("the plan's dependencies form a cycle")
    memo: dict[int, int] = {}
    for n in reversed(order):
        memo[n] = 1 + max((memo[c] for c in children[n]), default=0)
    return memo


def schedule(graph: Mapping[int, Collection[int]], latency_s: float, concurrency: int) -> dict[int, float]:
    """Start time of every request: one starts when all its parents in ``graph`` are done and one
    of ``concurrency`` slots is free; among ready requests the longest remaining chain goes first
    (then the lower index). Parents outside ``graph`` count as done already (cached)."""
    concurrency = max(1, int(concurrency))
    rank = longest_paths(graph)
    waiting = {n: sum(1 for p in ps if p in graph) for n, ps in graph.items()}
    children = _children(graph)
    ready = [(-rank[n], n) for n, k in waiting.items() if k == 0]
    heapq.heapify(ready)
    running: list[tuple[float, int]] = []
    starts: dict[int, float] = {}
    now = 0.0
    while ready or running:
        while ready and len(running) < concurrency:
            _, n = heapq.heappop(ready)
            starts[n] = now
            heapq.heappush(running, (now + latency_s, n))
        now, n = heapq.heappop(running)
        finished = [n]
        while running and running[0][0] <= now:
            finished.append(heapq.heappop(running)[1])
        for f in finished:
            for c in children[f]:
                waiting[c] -= 1
                if waiting[c] == 0:
                    heapq.heappush(ready, (-rank[c], c))
    return starts


def estimate(plan: Any, *, latency_s: float, concurrency: int, done: Iterable[int] = ()) -> WallEstimate:
    """The wall-time estimate of rendering ``plan``'s segments not in ``done`` (cached)."""
    skip = set(done)
    graph = {s.index: parents(s) for s in plan.segments if s.index not in skip}
    # Every request takes the same time, so the schedule in units of one latency is the schedule.
    starts = schedule(graph, 1.0, concurrency)
    waves = round(max((t + 1.0 for t in starts.values()), default=0.0))
    return WallEstimate(requests=len(graph), critical_path=max(longest_paths(graph).values(), default=0),
                        waves=waves, concurrency=max(1, int(concurrency)), latency_s=float(latency_s),
                        wall_s=waves * float(latency_s))


__all__ = ["WallEstimate", "estimate", "format_seconds", "longest_paths", "parents", "schedule"]
