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


def test_refractory_test_constant_is_the_trainee_one():
    from l2l_nmhw_ros.snn.brian2_reference import REFRACTORY_TEST
    from l2l_nmhw_ros.snn.neurons import REFRACTORY_EPS

    assert REFRACTORY_TEST == REFRACTORY_EPS


def test_brian2_and_run_trial_agree_spike_for_spike_on_the_published_weights(shared_data):
    import torch

    from l2l_nmhw_ros.config import L2LConfig
    from l2l_nmhw_ros.reference import published
    from l2l_nmhw_ros.snn.brian2_reference import run_trainee_brian2
    from l2l_nmhw_ros.snn.encoding import clock_input
    from l2l_nmhw_ros.snn.trainee import run_trial

    cfg = L2LConfig()
    ckpt = published.read_published(
        shared_data / 'rlimc_checkpoints' / 'robot_pretrained_weights.pickle')
    w = {k: v.astype(np.float64) for k, v in published.convert_robot(ckpt, cfg).items()}
    # PCM noise off: the imported weights as they are (float64 in both simulators)
    x = clock_input(cfg.task, 1, n_in=cfg.trainee.n_in, dtype=torch.float64)  # (249, 1, 5)
    ours = run_trial(torch.from_numpy(w['trainee.w_in']), torch.from_numpy(w['trainee.w_rec']),
                     torch.from_numpy(w['trainee.w_out']), x, cfg.trainee, dt=cfg.task.dt)
    ref = run_trainee_brian2(w['trainee.w_in'], w['trainee.w_rec'], w['trainee.w_out'],
                             x[:, 0].numpy(), cfg.trainee, dt=cfg.task.dt)
    z = ours.z[:, 0].numpy()
    assert z.shape == ref.z.shape == (cfg.task.n_steps, cfg.trainee.n_rec)
    # a whole trial, every spike of every neuron at the same step
    np.testing.assert_array_equal(z, ref.z)
    steps, neurons = np.nonzero(z)
    ours_spikes = sorted(zip(steps.tolist(), neurons.tolist(), strict=True))
    assert ours_spikes == sorted(zip(ref.spike_steps.tolist(), ref.spike_neurons.tolist(),
                                     strict=True))
    # the trial is far from trivial: golden spike count (~20 Hz, the regulariser's target)
    assert int(z.sum()) == 1277
    # membrane potentials and readouts: same map, only the float summation order differs
    # (matmul vs brian2's synaptic accumulation), so agreement to ~1e-15 relative
    np.testing.assert_allclose(ours.v[:, 0].numpy(), ref.v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.y[:, 0].numpy(), ref.y, rtol=0, atol=1e-12)
    # no spike decision was a float-rounding coin toss: every v stays >= 1e-6 from threshold
    assert np.abs(ref.v - cfg.trainee.v_th).min() > 1e-6
