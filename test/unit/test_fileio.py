"""atomic_write: all or nothing, ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from l2l_nmhw_ros.fileio import atomic_write


def test_writes_content_with_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic_write(tmp_path / 'sub' / 'f.txt', lambda tmp: open(tmp, 'w').write('new'))
    finally:
        os.umask(old)
    assert p.read_text() == 'new'
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    assert [f.name for f in p.parent.iterdir()] == ['f.txt']  # no temporary file left


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / 'f.txt'
    p.write_text('old')

    def broken(tmp):
        open(tmp, 'w').write('half')
        raise RuntimeError('disk full')

    with pytest.raises(RuntimeError, match='disk full'):
        atomic_write(p, broken)
    assert p.read_text() == 'old'
    assert [f.name for f in tmp_path.iterdir()] == ['f.txt']


def test_sha256_file_is_the_digest_of_the_bytes(tmp_path) -> None:
    import hashlib

    from l2l_nmhw_ros.fileio import sha256_file

    data = bytes(range(256)) * 5000  # > 1 MiB block
    (tmp_path / 'f').write_bytes(data)
    assert sha256_file(tmp_path / 'f') == hashlib.sha256(data).hexdigest()
    (tmp_path / 'e').write_bytes(b'')
    assert sha256_file(tmp_path / 'e') == (
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
