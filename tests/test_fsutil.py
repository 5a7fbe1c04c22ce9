"""utils.fsutil: a file is replaced whole or not at all, with the permissions a normal file has."""
import json
import os
import stat

import pytest

from utils.fsutil import atomic_write, atomic_write_bytes, atomic_write_json


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_write_leaves_old_content_when_the_writer_fails(tmp_path, umask_022):
    target = tmp_path / "metrics.json"
    target.write_text("old")

    def half_write(tmp):
        tmp.write_text("new but incomp")
        raise KeyboardInterrupt  # e.g. the process is interrupted mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_write)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    atomic_write(target, lambda tmp: tmp.write_text("new"))
    assert target.read_text() == "new"
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode == 0o644, f"a normal file under umask 022, not mkstemp's 0600 (got {oct(mode)})"


def test_atomic_write_helpers(tmp_path, umask_022):
    atomic_write_json(tmp_path / "a.json", {"x": [1, 2]})
    atomic_write_bytes(tmp_path / "sub" / "b.bin", b"\x00\x01")
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": [1, 2]}
    assert (tmp_path / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.json", "b.bin", "sub"]
