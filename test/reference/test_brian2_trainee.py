"""brian2 (numpy target, explicit Network) against our trainee: the same discrete LIF map.

The brian2 side is :mod:`l2l_nmhw_ros.snn.brian2_reference` (equations and scheduling in its
docstring). First the reference itself is checked on a hand-computed two-neuron case, then it is
compared with :func:`l2l_nmhw_ros.snn.trainee.run_trial` on the imported published weights.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from l2l_nmhw_ros.config import TraineeConfig

brian2 = pytest.importorskip('brian2', reason='layer reference: brian2 is not installed')
# brian2 2.9 parses its equations with pyparsing's deprecated camelCase API
pytestmark = pytest.mark.filterwarnings('ignore:.*deprecated, use:DeprecationWarning')


def test_brian2_reference_on_a_hand_computed_two_neuron_case():
    from l2l_nmhw_ros.snn.brian2_reference import run_trainee_brian2

    cfg = TraineeConfig()  # v_th 0.6, tau_m = tau_out = 20 ms, n_ref 5
    a = math.exp(-1 / 20)
    x = np.ones((16, 1))  # the input neuron spikes at every step
    w_in = np.array([[1.0], [0.0]])
    # neuron 0 drives neuron 1 with 0.7; the autapse of neuron 0 (100) must be ignored
    w_rec = np.array([[100.0, 0.0], [0.7, 0.0]])
    w_out = np.array([[1.0, 0.0], [0.0, 2.0]])
    res = run_trainee_brian2(w_in, w_rec, w_out, x, cfg)
    # neuron 0: over threshold at every step, so it fires as soon as the refractory counter
    # allows: r = 4, 3, 2, 1, 0 after a spike -> one spike every 5 steps
    assert np.flatnonzero(res.z[:, 0]).tolist() == [0, 5, 10, 15]
    # neuron 1: 0.7 > 0.6 one step after each spike of neuron 0
    assert np.flatnonzero(res.z[:, 1]).tolist() == [1, 6, 11]
    # reset by subtraction, no autapse: v0^1 = a * 1 + 1 - 0.6 (not + 100)
    assert res.v[1, 0] == pytest.approx(a + 1.0 - 0.6, abs=1e-12)
    # v1^2 = a * 0.7 - 0.6 (reset by subtraction), v1^6 = a^4 v1^2 + 0.7
    assert res.v[2, 1] == pytest.approx(0.7 * a - 0.6, abs=1e-12)
    assert res.v[6, 1] == pytest.approx(a ** 4 * (0.7 * a - 0.6) + 0.7, abs=1e-12)
    # leaky readout y^t = kappa y^{t-1} + W_out z^t (kappa = a here)
    assert res.y[0, 0] == pytest.approx(1.0, abs=1e-12)
    assert res.y[4, 0] == pytest.approx(a ** 4, abs=1e-12)
    assert res.y[5, 0] == pytest.approx(a ** 5 + 1.0, abs=1e-12)
    assert res.y[1, 1] == pytest.approx(2.0, abs=1e-12)
    # the SpikeMonitor, shifted by its one-step delay, agrees with the recorded z
    z = np.zeros_like(res.z)
    z[res.spike_steps, res.spike_neurons] = 1.0
    np.testing.assert_array_equal(z, res.z)
