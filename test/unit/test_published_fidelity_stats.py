"""Statistics of the fidelity report (reference.fidelity) on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.reference.fidelity import per_task_metrics, required_n, summarize


def test_required_n_for_a_relative_standard_error():
    # SE = sd / sqrt(n) <= 0.05 mean  <=>  n >= (sd / (0.05 mean))^2
    assert required_n(1.0, 1.0) == 400
    assert required_n(0.5, 2.0) == 25
    assert required_n(0.5, -2.0) == 25
    assert required_n(0.3, 1.0, target_rel_se=0.1) == 9
    assert required_n(0.301, 1.0, target_rel_se=0.1) == 10  # ceil
    with pytest.raises(ValueError):
        required_n(1.0, 0.0)
    with pytest.raises(ValueError):
        required_n(1.0, 1.0, target_rel_se=0.0)


def _metrics(loss):
    z = np.zeros_like(loss)
    return {m: (loss if m == 'loss' else z) for m in
            ('loss', 'omega_mse', 'xyz_mse', 'distance', 'n_programmed', 'n_weights_changed',
             'rate_hz')}


def test_summarize_means_standard_errors_and_paired_effects():
    before = np.array([1.0, 2.0, 3.0, 4.0])
    after = np.array([0.5, 1.0, 1.5, 2.0])
    rep = summarize({'before': _metrics(before), 'software': _metrics(after)})
    st = rep['rows']['before']['loss']
    sd = math.sqrt(5 / 3)  # sample SD of 1..4
    assert st['mean'] == pytest.approx(2.5)
    assert st['sd'] == pytest.approx(sd)
    assert st['se'] == pytest.approx(sd / 2)
    assert st['rel_se'] == pytest.approx(sd / 2 / 2.5)
    assert st['n'] == 4
    assert st['n_required'] == math.ceil((sd / (0.05 * 2.5)) ** 2)  # 107
    eff = rep['effects']['improvement_software']
    assert eff['ratio'] == pytest.approx(2.0)
    assert eff['diff_mean'] == pytest.approx(1.25)
    assert eff['diff_se'] == pytest.approx(math.sqrt(5 / 12) / 2)  # SD of 0.5..2 step 0.5
    assert eff['frac_tasks_a_greater'] == 1.0
    assert 'pcm_vs_software' not in rep['effects']  # rows absent
    assert rep['se_target_met'] is False  # 26 % relative SE
    rep = summarize({'before': _metrics(np.full(4, 2.0))})
    assert rep['se_target_met'] is True


def test_fidelity_refuses_stochastic_rounding() -> None:
    # the fidelity rows reproduce the robot code (rounding to nearest); with the project's
    # default (stochastic) the weight counts would be wrong, so it is a clear error
    with pytest.raises(ValueError, match='stochastic_rounding'):
        per_task_metrics({}, C.L2LConfig(), 1)
