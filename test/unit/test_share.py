"""Share files are found in the ament index first, else in the source tree; misses name places."""

from __future__ import annotations

import pytest

from l2l_nmhw_ros import share


def test_finds_files_and_folders_of_the_checkout(repo_root):
    assert share.find_share('config/l2l_nmhw.yaml').read_bytes() == (
        repo_root / 'config' / 'l2l_nmhw.yaml').read_bytes()
    assert share.find_share('checkpoints/default', directory=True).name == 'default'


def test_source_root_is_the_last_resort(monkeypatch, tmp_path):
    monkeypatch.setattr(share, 'SOURCE_ROOT', tmp_path)
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path / 'nowhere'))
    (tmp_path / 'urdf').mkdir()
    (tmp_path / 'urdf' / 'x.urdf').write_text('<robot/>')
    assert share.find_share('urdf/x.urdf') == tmp_path / 'urdf' / 'x.urdf'
    with pytest.raises(FileNotFoundError, match=r'urdf/missing\.urdf not found \(looked in'):
        share.find_share('urdf/missing.urdf')
