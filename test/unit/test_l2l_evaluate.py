"""``l2l-nmhw eval``: rows, the no-update identity, JSON output."""

from __future__ import annotations

import dataclasses
import json

import pytest

from l2l_nmhw_ros import cli
from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.l2l.evaluate import evaluate, paired_ratio_ci, summary
from l2l_nmhw_ros.l2l.meta import MetaTrainer


def _tiny() -> C.L2LConfig:
    return C.L2LConfig(
        trainee=C.TraineeConfig(n_rec=6),
        lsg=C.LSGConfig(n_rec=8, bits_per_coord=4),
        task=C.TaskConfig(n_steps=30, clock_window=6, clock_interval=2, smoothing_window=10),
        meta=C.MetaConfig(batch_size=4, pcm_in_loop=False))


def test_without_update_software_rows_equal_before() -> None:
    cfg = _tiny()
    cfg = dataclasses.replace(cfg, eprop=dataclasses.replace(cfg.eprop, eta=0.0))
    w = MetaTrainer(cfg).numpy_weights()
    res = evaluate(w, cfg, 'reach', 7, chunk=3)
    assert res['software']['xyz_mse'] == pytest.approx(res['before']['xyz_mse'], rel=1e-6)
    assert res['software_4bit']['n_programmed'] == 0.0
    assert res['pcm']['n_programmed'] == 0.0
    # drift at deployment shrinks the weights: the PCM trainee is not the float one
    assert res['before_pcm']['omega_mse'] != res['before']['omega_mse']
    s = summary(res)
    assert s['xyz_improvement_software'] == pytest.approx(1.0, rel=1e-6)


def test_a_rows_numbers_do_not_depend_on_the_other_rows() -> None:
    # each backend has its own noise stream: the PCM row (device noise, stochastic rounding) is
    # the same whether or not the software 4-bit row (stochastic rounding) ran before it
    cfg = _tiny()
    w = MetaTrainer(cfg).numpy_weights()
    full = evaluate(w, cfg, 'brownian', 6, chunk=3)
    only = evaluate(w, cfg, 'brownian', 6, chunk=3, rows=('software', 'pcm'))
    assert only['pcm']['xyz_mse'] == full['pcm']['xyz_mse']
    assert only['pcm']['n_programmed'] == full['pcm']['n_programmed']
    assert only['software']['xyz_mse'] == full['software']['xyz_mse']
    # and the PCM improvement is read against the PCM row before the update
    s = summary(full)
    assert s['xyz_improvement_pcm'] == pytest.approx(
        full['before_pcm']['xyz_mse'] / full['pcm']['xyz_mse'], rel=1e-12)


def test_eval_cli_json(tmp_path, capsys) -> None:
    cfg = _tiny()
    MetaTrainer(cfg).save(str(tmp_path / 'ck'), train_state=False)
    rc = cli.main(['eval', '--checkpoint', str(tmp_path / 'ck'), '--tasks', '3',
                   '--family', 'reach', 'brownian', '--json'])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    rows = out['families']['brownian']['rows']
    assert set(rows) == {'before', 'software', 'software_4bit', 'before_pcm', 'pcm',
                         'mean_path_baseline'}
    assert rows['pcm']['distance'] > 0
    assert 'xyz_improvement_pcm' in \
        out['families']['reach']['summary']


def test_eval_few_updates_curve(tmp_path, capsys) -> None:
    # --updates 0 1 2: zero updates is the learning trial (software row = before); every count
    # has its rows; final distances are reported (median <= p90)
    cfg = _tiny()
    MetaTrainer(cfg).save(str(tmp_path / 'ck'), train_state=False)
    rc = cli.main(['eval', '--checkpoint', str(tmp_path / 'ck'), '--tasks', '4',
                   '--family', 'reach', '--updates', '0', '1', '2', '--json'])
    assert rc == 0
    fam = json.loads(capsys.readouterr().out)['families']['reach']
    assert set(fam['updates']) == {'0', '1', '2'}
    zero = fam['updates']['0']['rows']
    assert zero['software']['xyz_mse'] == zero['before']['xyz_mse']
    assert zero['pcm']['n_programmed'] == 0.0
    one, two = fam['updates']['1']['rows'], fam['updates']['2']['rows']
    # software counts every weight with a non-zero Delta W, once per update
    assert two['software']['n_programmed'] == 2 * one['software']['n_programmed'] > 0
    for row in one.values():
        assert 0 <= row['final_distance_median'] <= row['final_distance_p90']
    assert fam['rows'] == zero  # the top-level rows: the first count asked for


def test_eval_pcm_config_changes_only_the_pcm_rows(tmp_path, capsys) -> None:
    # --pcm-config: the same tasks and network; the software rows are bit-identical, the PCM
    # rows run the overridden device model (here: no device noise, no drift, no rounding noise,
    # so the PCM row becomes the 4-bit software row with deterministic rounding)
    cfg = _tiny()
    cfg = dataclasses.replace(cfg, pcm=dataclasses.replace(cfg.pcm, stochastic_rounding=False))
    MetaTrainer(cfg).save(str(tmp_path / 'ck'), train_state=False)
    args = ['eval', '--checkpoint', str(tmp_path / 'ck'), '--tasks', '4', '--json']
    assert cli.main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    ideal = tmp_path / 'ideal.yaml'
    ideal.write_text('/**:\n  ros__parameters:\n    pcm:\n      preset: ideal\n')
    assert cli.main(args + ['--pcm-config', str(ideal)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out['pcm_overrides'] == {'preset': 'ideal'}
    a, b = plain['families']['reach']['rows'], out['families']['reach']['rows']
    assert b['software'] == a['software'] and b['before'] == a['before']
    assert b['pcm']['xyz_mse'] != a['pcm']['xyz_mse']
    assert b['pcm']['xyz_mse'] == pytest.approx(b['software_4bit']['xyz_mse'], rel=1e-5)
    assert b['before_pcm']['xyz_mse'] == pytest.approx(b['before']['xyz_mse'], rel=1e-5)
    # a file that touches the network is refused with the reason, nothing evaluated
    bad = tmp_path / 'bad.yaml'
    bad.write_text('/**:\n  ros__parameters:\n    eprop:\n      eta_out: 0.1\n')
    assert cli.main(args + ['--pcm-config', str(bad)]) != 0
    assert "may set only ['pcm'], got ['eprop']" in capsys.readouterr().err


def test_eval_repeat_measures_read_noise_only(tmp_path, capsys) -> None:
    # --repeat: the same adapted network run twice. Software and the 4-bit row are
    # deterministic (exactly 0); on PCM the two runs differ, and only through the read noise:
    # without it (programming noise, jitter and drift are frozen in the devices) they are equal.
    # The second run has its own noise stream, so every other number is unchanged.
    cfg = _tiny()
    MetaTrainer(cfg).save(str(tmp_path / 'ck'), train_state=False)
    args = ['eval', '--checkpoint', str(tmp_path / 'ck'), '--tasks', '6', '--json']
    assert cli.main(args) == 0
    plain = json.loads(capsys.readouterr().out)['families']['reach']['rows']
    assert cli.main(args + ['--repeat']) == 0
    rows = json.loads(capsys.readouterr().out)['families']['reach']['rows']
    for row in ('software', 'software_4bit'):
        assert rows[row]['repeat_final_distance_median'] == 0.0
        assert rows[row]['repeat_xyz_var'] == 0.0
    assert rows['pcm']['repeat_xyz_var'] > 0.0
    assert rows['pcm']['repeat_final_distance_median'] > 0.0
    assert 'repeat_xyz_var' not in rows['before'] and 'repeat_xyz_var' not in rows['before_pcm']
    for row, vals in plain.items():
        assert {k: rows[row][k] for k in vals} == vals
    no_read = tmp_path / 'no_read.yaml'
    no_read.write_text('/**:\n  ros__parameters:\n    pcm:\n      read_noise: false\n')
    assert cli.main(args + ['--repeat', '--pcm-config', str(no_read)]) == 0
    rows = json.loads(capsys.readouterr().out)['families']['reach']['rows']
    assert rows['pcm']['repeat_xyz_var'] == 0.0
    assert rows['pcm']['xyz_mse'] != plain['pcm']['xyz_mse']  # the devices still are noisy


def test_paired_ratio_ci() -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    b = rng.lognormal(0.0, 1.0, 200)
    # a fixed multiple of b: every resample has the same ratio, the interval is that point
    lo, hi = paired_ratio_ci(1.1 * b, b)
    assert lo == pytest.approx(0.1, abs=1e-12) and hi == pytest.approx(0.1, abs=1e-12)
    # paired noise: the interval holds the point estimate and shrinks like 1/sqrt(n)
    def width(n: int) -> tuple[float, float, float]:
        bb = rng.lognormal(0.0, 1.0, n)
        aa = bb * rng.lognormal(0.0, 0.3, n)
        lo, hi = paired_ratio_ci(aa, bb)
        return lo, aa.mean() / bb.mean() - 1, hi
    lo, mid, hi = width(200)
    assert lo < mid < hi
    lo4, mid4, hi4 = width(3200)
    assert lo4 < mid4 < hi4
    assert 0.15 < (hi4 - lo4) / (hi - lo) < 0.4  # 1/4 expected for 16x the tasks
    with pytest.raises(ValueError, match='n_tasks >= 2'):
        paired_ratio_ci(np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match='positive mean'):
        paired_ratio_ci(np.ones(3), np.zeros(3))
