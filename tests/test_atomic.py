"""composer.atomic: the one atomic-write helper."""
from __future__ import annotations

import pytest

from composer.atomic import atomic_path, atomic_write_text


def test_write_replaces_whole(tmp_path):
    p = tmp_path / "sub" / "m.json"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert [x.name for x in p.parent.iterdir()] == ["m.json"]


def test_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "film.mp4"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        assert tmp.suffix == ".mp4" and tmp.parent == p.parent
        tmp.write_bytes(b"half")
        raise RuntimeError("encoder died")
    assert p.read_bytes() == b"old"
    assert [x.name for x in tmp_path.iterdir()] == ["film.mp4"]


def test_nothing_written_is_an_error(tmp_path):
    p = tmp_path / "x.txt"
    with pytest.raises(FileNotFoundError), atomic_path(p):
        pass
    assert not p.exists()


def test_dir_publishes_whole_and_replaces_an_existing_one(tmp_path):
    from composer.atomic import atomic_dir

    final, staging = tmp_path / "segments" / "ab" / "abcd", tmp_path / "tmp"
    with atomic_dir(final, staging=staging, prefix="abcd-") as tmp:
        assert tmp.parent == staging and tmp.name.startswith("abcd-") and not final.exists()
        (tmp / "video.mp4").write_bytes(b"one")
    assert (final / "video.mp4").read_bytes() == b"one"
    with atomic_dir(final, staging=staging) as tmp:
        (tmp / "meta.json").write_text("{}")
    assert sorted(x.name for x in final.iterdir()) == ["meta.json"]  # the old entry is gone, not merged
    assert list(staging.iterdir()) == []


def test_dir_failure_keeps_the_old_directory_and_no_staging(tmp_path):
    from composer.atomic import atomic_dir

    final, staging = tmp_path / "entry", tmp_path / "tmp"
    final.mkdir()
    (final / "video.mp4").write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_dir(final, staging=staging) as tmp:
        (tmp / "video.mp4").write_bytes(b"half")
        raise KeyboardInterrupt
    assert (final / "video.mp4").read_bytes() == b"old"
    assert list(staging.iterdir()) == []
