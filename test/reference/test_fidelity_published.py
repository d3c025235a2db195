"""The published robot checkpoint run by our implementation on brownian tasks: golden values.

Default run: 30 tasks (one batch), seed FIDELITY_SEED. With the seed fixed the run is
deterministic (tasks from one numpy Generator, device noise from one torch Generator, one torch
thread), so the golden means below are exact on one platform. The tolerance, 2 % of each mean,
only absorbs float32 summation-order differences between BLAS builds/CPUs, which can flip a
near-threshold spike in a few trials and move a task's loss by a few per cent; the effects the
test asserts (one-update improvement 17.8x in software and 3.1x on PCM, PCM/software gap 6.0x)
are two orders of magnitude larger than that tolerance. The values follow the authors' code
step by step (``test_golden_conformance.py``): the target code ``paper`` and the authors'
brownian generator (golden values re-measured 2026-12-05 after both were aligned).

The full evaluation (``l2l-nmhw fidelity``: 2700 tasks = the official code's 30 batches of 90,
relative SE below 5 % for every row) is marked slow; its numbers are in docs/fidelity.md.
"""

from __future__ import annotations

import math

import pytest

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.reference import fidelity, published
from l2l_nmhw_ros.l2l.train_cli import preset_path

# mean per-task loss 0.5 MSE(omega) + 0.5 MSE(xyz), 30 tasks, seed 2025, one batch of 30
GOLDEN_30 = {'before': 0.28332049, 'software': 0.01595535, 'software_4bit': 0.02527593,
             'before_pcm': 0.29051692, 'pcm': 0.09499848}
GOLDEN_30_DEVICES = {'software_4bit': 2567.67, 'pcm': 6788.40}  # mean per task
GOLDEN_30_RATE_HZ = {'before': 20.514055, 'before_pcm': 16.983667}
RTOL = 0.02  # see the module docstring
# the full run (l2l-nmhw fidelity --tasks 2700 --json), relative SE 1.2-4.2 % per row
GOLDEN_2700 = {'before': 0.32692308, 'software': 0.01148002, 'software_4bit': 0.02682860,
               'before_pcm': 0.32736555, 'pcm': 0.10586371}
# the authors' code on its own tasks (docs/fidelity.md): official test, 30 x 90 tasks, seed 1
# (float update, update on the 1/16 grid), and PCM model on, 990 tasks (mean, SE over batches)
AUTHORS = {'software': (0.01126, None), 'software_4bit': (0.02664, None), 'pcm': (0.1068, 0.0024)}


@pytest.fixture(scope='module')
def weights():
    from conftest import SHARED_DATA

    path = SHARED_DATA / fidelity.PUBLISHED_ROBOT
    if not path.is_file():
        pytest.skip(f'published checkpoint not found at {path} (a fresh clone has no ../shared)')
    return published.convert_robot(published.read_published(path))


def paper_cfg() -> C.L2LConfig:
    """The paper robot code's settings (preset `paper`: deterministic rounding of Delta W)."""
    return C.load(C.default_config_path(), preset_path('paper'))


def test_one_update_on_brownian_tasks_golden_30(weights):
    import torch

    torch.set_num_threads(1)
    rep = fidelity.fidelity_report(weights, paper_cfg(), 30, seed=fidelity.FIDELITY_SEED,
                                   chunk=30)
    rows = rep['rows']
    assert rep['pcm_preset'] == 'paper_code'
    for row, golden in GOLDEN_30.items():
        assert rows[row]['loss']['mean'] == pytest.approx(golden, rel=RTOL), row
        assert rows[row]['loss']['n'] == 30
    for row, golden in GOLDEN_30_DEVICES.items():
        assert rows[row]['n_programmed']['mean'] == pytest.approx(golden, rel=RTOL), row
    for row, golden in GOLDEN_30_RATE_HZ.items():
        assert rows[row]['rate_hz']['mean'] == pytest.approx(golden, rel=RTOL), row
    eff = rep['effects']
    # the one update clearly helps on every task, in software and on PCM
    assert eff['improvement_software']['ratio'] > 4.0
    assert eff['improvement_pcm']['ratio'] > 1.5
    assert eff['improvement_software']['frac_tasks_a_greater'] == 1.0
    assert eff['improvement_pcm']['frac_tasks_a_greater'] == 1.0
    # the PCM gap: after the update PCM is worse than software on (almost) every task
    assert eff['pcm_vs_software']['ratio'] > 2.0
    # before the update the PCM model costs little (drift lowers the rate, 20.5 -> 17 Hz)
    assert eff['before_pcm_vs_before']['ratio'] == pytest.approx(1.0, abs=0.1)
    # PCM counts devices (2 per polarity), the 4-bit software row counts weights
    pcm = rows['pcm']
    assert pcm['n_programmed']['mean'] > 2 * pcm['n_weights_changed']['mean']
    assert rows['software_4bit']['n_programmed']['mean'] == \
        rows['software_4bit']['n_weights_changed']['mean']


@pytest.mark.slow
def test_full_fidelity_evaluation_meets_the_standard_error_target(weights):
    import torch

    torch.set_num_threads(1)
    rep = fidelity.fidelity_report(weights, paper_cfg(), 2700)
    assert rep['se_target_met'], {r: s['loss']['rel_se'] for r, s in rep['rows'].items()}
    rows = rep['rows']
    for row, golden in GOLDEN_2700.items():
        assert rows[row]['loss']['mean'] == pytest.approx(golden, rel=RTOL), row
    # every row within 2 standard errors of the authors' code on its own tasks (their SE where
    # known, else taken equal to ours: same distribution, same n)
    for row, (mean, se_theirs) in AUTHORS.items():
        ours = rows[row]['loss']
        se = math.hypot(ours['se'], se_theirs if se_theirs is not None else ours['se'])
        assert abs(ours['mean'] - mean) <= 2 * se, (row, ours['mean'], mean, se)
    assert rep['effects']['improvement_software']['ratio'] > 20.0
    assert rep['effects']['improvement_pcm']['ratio'] > 2.5


def test_fidelity_cli_same_numbers_from_pickle_and_imported_folder(weights, tmp_path, capsys):
    import json

    from conftest import SHARED_DATA

    from l2l_nmhw_ros.cli import main

    pickle_path = SHARED_DATA / fidelity.PUBLISHED_ROBOT
    folder = tmp_path / 'imported'
    published.import_checkpoint(pickle_path, folder)
    common = ['--tasks', '3', '--chunk', '3', '--json']
    # 3 tasks cannot reach a 5 % standard error: the command says so with exit code 1
    assert main(['fidelity', '--published', str(pickle_path), *common]) == 1
    a = json.loads(capsys.readouterr().out)
    assert main(['fidelity', '--checkpoint', str(folder), *common]) == 1
    b = json.loads(capsys.readouterr().out)
    assert a['se_target_met'] is False
    assert a['n_tasks'] == 3
    assert a['source']['sha256'] == b['source']['sha256']
    for row in fidelity.ROWS:
        assert a['rows'][row]['loss']['mean'] == b['rows'][row]['loss']['mean'], row
