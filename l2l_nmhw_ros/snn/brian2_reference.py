"""brian2 reference of the trainee: the same discrete-time LIF network in an independent simulator.

Used by the ``reference`` test layer to check :func:`l2l_nmhw_ros.snn.trainee.run_trial` spike for
spike. brian2 (2.9, numpy code-generation target, explicit :class:`brian2.Network`, its own
:class:`brian2.Clock` with dt = 1 ms; no global preference or default clock is touched) wires the
network, delivers the spikes through :class:`brian2.Synapses` and schedules the updates; the neuron
update itself is the paper code's discrete map, written as an explicit ``run_regularly``
operation instead of a differential equation, so both simulators compute the SAME map (no
integration method is involved):

.. code-block:: text

    v_j^t = alpha v_j^{t-1} + sum_i W_in[j, i] x_i^t + sum_{i != j} W_rec[j, i] z_i^{t-1}
            - v_th z_j^{t-1}                                  (reset by subtraction)
    z_j^t = H((v_j^t - v_th) / v_th) * [r_j^{t-1} <= 0.1]     (refractoriness)
    r_j^t = clip(r_j^{t-1} + n_ref z_j^t - 1, 0, n_ref)
    y_k^t = kappa y_k^{t-1} + sum_j W_out[k, j] z_j^t        (leaky readout)

with alpha = exp(-dt / tau_m), kappa = exp(-dt / tau_out) (paper code ``functional/lif.py``).

How one brian2 time step s implements network step t = s (brian2's schedule inside a step is
start → groups → thresholds → synapses → resets → end):

1. ``thresholds``: the clock input (a :class:`brian2.SpikeGeneratorGroup` with spikes at
   t·dt) emits x^t; the trainee group emits a brian2 spike for every neuron whose state ``z``
   (z^{t-1}, computed in step t-1) is 1 (threshold condition ``z > 0.5``, no reset).
2. ``synapses``: input and recurrent synapses (``on_pre: I_post += w``; no autapses: the recurrent
   synapses connect only i != j) add W_in x^t + W_rec z^{t-1} into the accumulator ``I``. The
   readout synapses add W_out z^{t-1} into ``y`` after the readout's own decay
   (``y = kappa * y`` run in ``before_synapses``).
3. ``after_synapses``: the trainee's ``run_regularly`` applies the map above and clears ``I``.

Hence the spike z_j^t shows up in a :class:`brian2.SpikeMonitor` at (t + 1)·dt, and the readout
state after step s is y^{s-1}; the trial runs T + 1 steps and :func:`run_trainee_brian2` undoes
both offsets. Everything is float64 (brian2's default).

References: Ortner et al., Nat. Commun. 16 (2025), official code ``functional/lif.py``;
Stimberg, Brette, Goodman, eLife 8:e47314 (2019) (brian2).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from l2l_nmhw_ros.config import TraineeConfig
from l2l_nmhw_ros.errors import ShapeError

__all__ = ['Brian2Trial', 'REFRACTORY_TEST', 'run_trainee_brian2']

# A neuron may spike when its refractory counter r^{t-1} is at most this (paper code:
# ``tf.greater(r, .1)`` blocks the spike); kept equal to snn.neurons.REFRACTORY_EPS by a test.
REFRACTORY_TEST = 0.1


class Brian2Trial(NamedTuple):
    """Result of one brian2 trial (network-step indexing, as :class:`TrialResult`).

    Fields: z spikes (time, n_rec) 0/1; v membrane potentials (time, n_rec); y readouts
    (time, n_out); spike_steps (n_spikes,) and spike_neurons (n_spikes,): the
    :class:`brian2.SpikeMonitor` record converted to network steps.
    """

    z: np.ndarray
    v: np.ndarray
    y: np.ndarray
    spike_steps: np.ndarray
    spike_neurons: np.ndarray


def run_trainee_brian2(w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray, x: np.ndarray,
                       cfg: TraineeConfig, *, dt: float = 0.001) -> Brian2Trial:
    """Simulate the trainee in brian2 (numpy target) on one input spike train.

    Args:
        w_in: input weights (n_rec, n_in).
        w_rec: recurrent weights (n_rec, n_rec); the diagonal is ignored (no autapses).
        w_out: readout weights (n_out, n_rec).
        x: input spikes (time, n_in), values 0/1.
        cfg: trainee configuration (v_th, tau_m, tau_out, n_ref).
        dt: network time step [s].

    Returns:
        :class:`Brian2Trial` (float64).

    Raises:
        ShapeError: inconsistent shapes.
        ValueError: `x` has values other than 0 and 1, or `dt` is not positive.
    """
    import brian2 as b2
    from brian2.codegen.runtime.numpy_rt import NumpyCodeObject

    w_in, w_rec, w_out = (np.asarray(a, dtype=np.float64) for a in (w_in, w_rec, w_out))
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ShapeError(f'x: expected (time, n_in), got {x.shape}')
    n_steps, n_in = x.shape
    n = w_rec.shape[0]
    if w_rec.shape != (n, n):
        raise ShapeError(f'w_rec: expected (n_rec, n_rec), got {w_rec.shape}')
    if w_in.shape != (n, n_in):
        raise ShapeError(f'w_in: expected ({n}, {n_in}), got {w_in.shape}')
    if w_out.ndim != 2 or w_out.shape[1] != n:
        raise ShapeError(f'w_out: expected (n_out, {n}), got {w_out.shape}')
    if not np.isin(x, (0.0, 1.0)).all():
        raise ValueError('x: spikes must be 0 or 1')
    if dt <= 0:
        raise ValueError(f'dt must be positive, got {dt} s')
    n_out = w_out.shape[0]
    code = NumpyCodeObject
    clock = b2.Clock(dt=dt * b2.second, name='trainee_clock')
    namespace = {'alpha': math.exp(-dt / cfg.tau_m), 'kappa': math.exp(-dt / cfg.tau_out),
                 'v_th': float(cfg.v_th), 'n_ref': float(cfg.n_ref), 'r_test': REFRACTORY_TEST}

    steps, neurons = np.nonzero(x)
    clock_in = b2.SpikeGeneratorGroup(n_in, neurons, steps * dt * b2.second, clock=clock,
                                      codeobj_class=code, name='clock_input')
    trainee = b2.NeuronGroup(n, 'v : 1\nz : 1\nr : 1\nI : 1', threshold='z > 0.5', reset='',
                             clock=clock, codeobj_class=code, name='trainee', namespace=namespace)
    update = trainee.run_regularly(
        'v = alpha * v + I - v_th * z\n'
        'z = int((v - v_th) / v_th > 0) * int(r <= r_test)\n'
        'r = clip(r + n_ref * z - 1, 0, n_ref)\n'
        'I = 0',
        when='after_synapses', codeobj_class=code, name='trainee_lif_map')
    readout = b2.NeuronGroup(n_out, 'y : 1', clock=clock, codeobj_class=code, name='readout',
                             namespace=namespace)
    decay = readout.run_regularly('y = kappa * y', when='before_synapses', codeobj_class=code,
                                  name='readout_decay')

    s_in = b2.Synapses(clock_in, trainee, 'w : 1', on_pre='I_post += w', clock=clock,
                       codeobj_class=code, name='w_in')
    pre, post = np.meshgrid(np.arange(n_in), np.arange(n), indexing='ij')
    s_in.connect(i=pre.ravel(), j=post.ravel())
    s_in.w = w_in[post.ravel(), pre.ravel()]

    s_rec = b2.Synapses(trainee, trainee, 'w : 1', on_pre='I_post += w', clock=clock,
                        codeobj_class=code, name='w_rec')
    pre, post = np.meshgrid(np.arange(n), np.arange(n), indexing='ij')
    keep = pre.ravel() != post.ravel()  # no autapses
    s_rec.connect(i=pre.ravel()[keep], j=post.ravel()[keep])
    s_rec.w = w_rec[post.ravel()[keep], pre.ravel()[keep]]

    s_out = b2.Synapses(trainee, readout, 'w : 1', on_pre='y_post += w', clock=clock,
                        codeobj_class=code, name='w_out')
    pre, post = np.meshgrid(np.arange(n), np.arange(n_out), indexing='ij')
    s_out.connect(i=pre.ravel(), j=post.ravel())
    s_out.w = w_out[post.ravel(), pre.ravel()]

    mon = b2.StateMonitor(trainee, ['v', 'z'], record=True, when='end', clock=clock,
                          codeobj_class=code, name='trainee_state')
    mon_y = b2.StateMonitor(readout, 'y', record=True, when='end', clock=clock,
                            codeobj_class=code, name='readout_state')
    spikes = b2.SpikeMonitor(trainee, codeobj_class=code, name='trainee_spikes')
    net = b2.Network(clock_in, trainee, update, readout, decay, s_in, s_rec, s_out, mon, mon_y,
                     spikes)
    net.run((n_steps + 1) * dt * b2.second, namespace=namespace)

    v = np.asarray(mon.v).T[:n_steps]            # (time, n): record s = network step s
    z = np.asarray(mon.z).T[:n_steps]
    y = np.asarray(mon_y.y).T[1:n_steps + 1]     # record s holds y^{s-1}
    spike_steps = np.rint(np.asarray(spikes.t / b2.second) / dt).astype(np.int64) - 1
    return Brian2Trial(z, v, y, spike_steps, np.asarray(spikes.i, dtype=np.int64))
