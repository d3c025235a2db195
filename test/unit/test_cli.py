"""The l2l-nmhw command: subcommands registered, bad input reported in one line."""

from __future__ import annotations

from l2l_nmhw_ros import cli


def test_every_registered_subcommand_builds_its_parser():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == 'command')
    assert set(sub.choices) == set(cli.COMMANDS)
    assert {'demo', 'config', 'pcm', 'train', 'eval', 'import-checkpoint', 'fidelity'} <= set(
        cli.COMMANDS)


def test_bad_config_is_one_clear_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('/**:\n  ros__parameters:\n    pcm:\n      g_max: 25\n')
    assert cli.main(['config', '--config', str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ('l2l-nmhw config: error: pcm.g_max: expected float, got int 25 '
                           '(write floats with a decimal point, e.g. 1.0)')


def test_missing_file_is_reported_not_raised(tmp_path, capsys):
    assert cli.main(['config', '--config', str(tmp_path / 'nope.yaml')]) == 2
    assert 'configuration file not found' in capsys.readouterr().err


def test_config_json_prints_the_hash(capsys):
    assert cli.main(['config', '--json']) == 0
    out = capsys.readouterr().out
    assert '"config_hash"' in out and '"g_max": 25.0' in out


def test_reach_rejects_a_partial_point_before_touching_ros(capsys):
    assert cli.main(['reach', '0.1', '0.2']) == 2
    assert 'xyz: expected a multiple of 3 values, got 2' in capsys.readouterr().err
