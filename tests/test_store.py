"""The storage interface on its three kinds of store: a local folder, ``memory://`` (fsspec)
and S3 (moto's server on loopback, reached through ``AWS_ENDPOINT_URL`` as AWS tools do)."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from composer.errors import CacheError
from composer.rendering import SegmentCache
from composer.store import Busy, Claim, LocalStore, open_store
from composer.store.remote import RemoteStore
from composer.testing.s3 import s3_bucket, s3_server


def blob(tmp_path: Path, name: str, size: int = 50_000) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def key_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(params=["local", "memory", "s3"])
def where(request, tmp_path):
    """A fresh store location of each kind, and a maker of store instances ("machines") on it."""
    if request.param == "local":
        root = tmp_path / "cache"
        return lambda machine="a": LocalStore(root)
    if request.param == "memory":
        url = f"memory://composer-{uuid.uuid4().hex[:8]}/team"
    else:
        url, _ = request.getfixturevalue("s3_bucket")
    return lambda machine="a": RemoteStore(url, tmp_path / f"layer-{machine}")


def test_published_entry_is_found_whole_by_another_machine(where, tmp_path):
    video = blob(tmp_path, "clip.mp4")
    key = key_of("one")
    a = where("a")
    assert a.lookup(key) is None and not a.exists(key)
    entry = a.publish(key, video, {"segment": 0, "request_id": "r-1"})
    assert entry.meta["sha256"] == hashlib.sha256(video.read_bytes()).hexdigest()
    b = where("b")  # its own local layer: a cold read
    assert b.exists(key)
    got = b.lookup(key)
    assert got is not None and got.video.read_bytes() == video.read_bytes()
    assert got.meta["request_id"] == "r-1" and got.video.is_relative_to(b.root)
    assert [e.key for e in b.entries()] == [key]


def test_a_damaged_entry_is_never_used(where, tmp_path):
    video = blob(tmp_path, "clip.mp4")
    key = key_of("damaged")
    a = where("a")
    a.publish(key, video, {})
    if isinstance(a, RemoteStore):
        (name,) = [p for p in a.fs.ls(a._entry_dir(key), detail=False) if p.endswith(".mp4")]
        a.fs.pipe_file(name, b"half an upload")  # the bytes the manifest describes are gone
        b = where("b")
        assert b.lookup(key) is None
        assert not b.exists(key)  # unpublished: the next render makes it and can publish it again
        b.publish(key, video, {})
        assert where("c").lookup(key).video.read_bytes() == video.read_bytes()
    else:
        (a.root / "segments" / key[:2] / key / "video.mp4").write_bytes(b"half a copy")
        assert a.lookup(key) is None
        assert not (a.root / "segments" / key[:2] / key).exists()  # removed, so it is made again


def test_a_lease_is_exclusive_and_carries_the_journal(where, tmp_path):
    key = key_of("leased")
    a, b = where("a"), where("b")
    first = a.claim(key, "machine-a", ttl=30)
    assert isinstance(first, Claim) and first.journal is None
    busy = b.claim(key, "machine-b", ttl=30)
    assert isinstance(busy, Busy) and "machine-a" in busy.owner
    a.record(first, {"request_id": "req-42", "submitted_at": time.time()})
    a.release(first)
    second = b.claim(key, "machine-b", ttl=30)
    assert isinstance(second, Claim) and second.request_id == "req-42"  # re-attach, not buy again
    b.publish(key, blob(tmp_path, "v.mp4"), {}, second)  # publishing clears the journal and frees the lease
    assert b.journal_get(key) is None
    assert isinstance(a.claim(key, "machine-a", ttl=30), Claim)


def test_an_intent_without_id_is_reported_as_unresolved(where):
    key = key_of("intent")
    a = where("a")
    claim = a.claim(key, "a", ttl=30)
    assert isinstance(claim, Claim)
    a.record(claim, {"intent_at": time.time(), "segment": 3})
    a.release(claim)
    again = where("b").claim(key, "b", ttl=30)
    assert isinstance(again, Claim) and again.unresolved_intent and again.request_id is None


def test_the_ledger_keeps_one_row_per_request_id(where):
    a, b = where("a"), where("b")
    assert a.ledger_append({"request_id": "r-1", "cost_usd": 0.04})
    assert not b.ledger_append({"request_id": "r-1", "cost_usd": 0.04, "resumed": True})
    assert b.ledger_append({"request_id": "r-2", "cost_usd": 0.04})
    rows = a.ledger()
    assert sorted(r["request_id"] for r in rows) == ["r-1", "r-2"] and "resumed" not in rows[0]
    assert a.info().paid_requests == 2 and a.info().paid_usd == pytest.approx(0.08)


def test_prune_removes_oldest_first(where, tmp_path):
    a = where("a")
    keys = [key_of(f"p{i}") for i in range(3)]
    for i, k in enumerate(keys):
        a.publish(k, blob(tmp_path, f"{i}.mp4", 10_000), {})
        time.sleep(0.01)
    assert a.prune(max_bytes=25_000) == 1
    b = where("b")
    assert not b.exists(keys[0]) and b.exists(keys[1]) and b.exists(keys[2])
    assert b.prune() == 2 and list(b.entries()) == []


@pytest.mark.parametrize("kind", ["memory", "s3"])
def test_a_dead_holders_lease_expires_and_is_taken_over(kind, tmp_path, request):
    url = (f"memory://composer-{uuid.uuid4().hex[:8]}/team" if kind == "memory"
           else request.getfixturevalue("s3_bucket")[0])
    key = key_of("expiring")
    dead = RemoteStore(url, tmp_path / "dead")
    claim = dead.claim(key, "dead-machine", ttl=30)
    assert isinstance(claim, Claim)
    dead.record(claim, {"request_id": "req-7", "submitted_at": time.time()})
    dead.close()  # its heartbeat stops, as when the process dies
    alive = RemoteStore(url, tmp_path / "alive")
    assert isinstance(alive.claim(key, "alive", ttl=30), Busy)
    assert dead.renew(claim, -1.0)  # its last heartbeat, now in the past: the lease has expired
    taken = alive.claim(key, "alive", ttl=30)
    assert isinstance(taken, Claim) and taken.request_id == "req-7"
    assert not dead.renew(claim, 30)  # the old holder learns it lost the lease
    assert isinstance(RemoteStore(url, tmp_path / "third").claim(key, "third", ttl=30), Busy)


def test_a_live_holders_heartbeat_keeps_its_lease(s3_bucket, tmp_path):
    url, _ = s3_bucket
    key = key_of("beating")
    holder = RemoteStore(url, tmp_path / "h")
    assert isinstance(holder.claim(key, "holder", ttl=3.0), Claim)
    other = RemoteStore(url, tmp_path / "o")
    time.sleep(7.0)  # more than twice the ttl: only the heartbeat (every ttl/3) keeps it
    assert isinstance(other.claim(key, "other", ttl=30), Busy)
    holder.close()


def test_two_s3_claimers_at_once_get_one_lease(s3_bucket, tmp_path):
    """The conditional create (If-None-Match: *) decides: of many simultaneous claims, one wins."""
    from concurrent.futures import ThreadPoolExecutor

    url, _ = s3_bucket
    key = key_of("race")
    stores = [RemoteStore(url, tmp_path / f"m{i}") for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: stores[i].claim(key, f"m{i}", 30), range(8)))
    assert sum(isinstance(g, Claim) for g in got) == 1
    for s in stores:
        s.close()


def test_a_local_lease_dies_with_its_process(tmp_path):
    root = tmp_path / "cache"
    key = key_of("kernel")
    LocalStore(root)
    code = ("import sys, time; from composer.store import LocalStore; "
            f"c = LocalStore({str(root)!r}).claim({key!r}, 'child', 30); print(type(c).__name__, flush=True); "
            "time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        assert child.stdout.readline().strip() == "Claim"
        busy = LocalStore(root).claim(key, "parent", 30)
        assert isinstance(busy, Busy) and busy.owner == "child"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
    assert isinstance(LocalStore(root).claim(key, "parent", 30), Claim)


def test_the_local_layer_is_bounded_and_evicts_the_least_recently_used(s3_bucket, tmp_path):
    url, _ = s3_bucket
    keys = [key_of(f"lru{i}") for i in range(3)]
    writer = RemoteStore(url, tmp_path / "writer")
    for i, k in enumerate(keys):
        writer.publish(k, blob(tmp_path, f"{i}.mp4", 100_000), {})
    layer = tmp_path / "layer"
    first = RemoteStore(url, layer, layer_bytes=250_000)
    assert first.lookup(keys[0]) is not None
    time.sleep(0.02)
    assert first.lookup(keys[1]) is not None
    later = RemoteStore(url, layer, layer_bytes=250_000)  # a later run on the same machine
    assert later.lookup(keys[2]) is not None
    local = {e.key for e in LocalStore(layer).entries()}
    assert local == {keys[1], keys[2]}  # the oldest went; 200 kB <= 250 kB
    assert later.layer.size() <= 250_000
    assert later.lookup(keys[0]) is not None  # fetched again from the bucket


def test_segment_cache_keeps_the_folder_layout(tmp_path):
    """Caches written before the store existed stay valid: same folders, same files."""
    root = tmp_path / "old"
    video = blob(tmp_path, "v.mp4")
    key = key_of("old")
    d = root / "segments" / key[:2] / key
    d.mkdir(parents=True)
    (d / "video.mp4").write_bytes(video.read_bytes())
    (d / "meta.json").write_text(json.dumps({"key": key, "size": video.stat().st_size,
                                             "sha256": hashlib.sha256(video.read_bytes()).hexdigest()}))
    (root / "ledger.jsonl").write_text(json.dumps({"request_id": "old-1", "cost_usd": 0.04}) + "\n")
    cache = SegmentCache(root)
    assert cache.has(key) and cache.get(key).video == d / "video.mp4"
    assert [r["request_id"] for r in cache.ledger()] == ["old-1"]
    new_key = key_of("new")
    cache.put(new_key, video, {"segment": 1})
    assert (root / "segments" / new_key[:2] / new_key / "video.mp4").read_bytes() == video.read_bytes()


def test_an_s3_url_with_no_such_bucket_is_a_clear_error(s3_server, monkeypatch, tmp_path):
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(CacheError, match=r"cannot write to the cache at s3://no-such-bucket-x/p .*nothing was spent"):
        SegmentCache("s3://no-such-bucket-x/p", local_root=tmp_path / "l", writable=True)


def test_open_store_picks_by_location(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPOSER_LOCAL_CACHE_DIR", str(tmp_path / "layer"))
    assert isinstance(open_store(tmp_path / "folder"), LocalStore)
    remote = open_store("memory://bucket/x")
    assert isinstance(remote, RemoteStore) and remote.root == tmp_path / "layer"
