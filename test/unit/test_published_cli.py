"""``l2l-nmhw import-checkpoint`` refuses a foreign pickle with exit code 1 and runs nothing."""

from __future__ import annotations

from l2l_nmhw_ros.cli import main


def test_import_checkpoint_cli_refuses_a_malicious_pickle(tmp_path, capsys):
    sentinel = tmp_path / 'SENTINEL'
    cmd = f'touch {sentinel}'.encode()
    # protocol-0 pickle of os.system(cmd): GLOBAL 'os system', MARK, UNICODE arg, TUPLE, REDUCE
    evil = tmp_path / 'evil.pickle'
    evil.write_bytes(b'cos\nsystem\n(V' + cmd + b'\ntR.')
    out = tmp_path / 'out'
    assert main(['import-checkpoint', str(evil), '-o', str(out)]) == 1
    assert 'os.system' in capsys.readouterr().out
    assert not sentinel.exists()
    assert not out.exists()
