"""Compiled batch-1 trainee trial for inference: the accelerator's hot loop (numba).

:func:`l2l_nmhw_ros.snn.trainee.run_trial` is written for autograd and batches: at batch 1 its
~20 small torch operations per step cost ~170 µs, so a 249-step trial takes ~40 ms. The
accelerator node needs no gradient, so its trials can run one compiled loop instead. This module
computes the same recurrent part as ``run_trial`` with the PAPER spike mode and LIF neurons
(paper-notes §2, the paper code's ``LIFCell``), per step t and neuron j::

    p      = [x^t ; z^{t-1}]                                  (inputs, last spikes)
    I_j    = Σ_i W_ji p_i + sqrt(Σ_i σ²_ji p_i²) · ξ_j^t       (crossbar read with read noise)
    z̄_j    = α z̄_j + z_j^{t-1}                                 (presynaptic trace of e-prop)
    v_j    = α v_j + I_j − v_th z_j^{t-1}                       (reset by subtraction)
    u_j    = (v_j − v_th) / v_th
    z_j^t  = H(u_j) · [r_j ≤ 0.1]                              (no spike while refractory)
    ψ_j    = γ / v_th · max(0, 1 − |u_j|) · [r_j ≤ 0.1]
    r_j    = clip(r_j + n_ref z_j^t − 1, 0, n_ref)

with W the crossbar's effective weights [W_in | W_rec] at the read time and σ² their read-noise
variance (:meth:`~l2l_nmhw_ros.pcm.crossbar.Crossbar.effective_weights`,
:meth:`~l2l_nmhw_ros.pcm.crossbar.Crossbar.read_noise_sd`): the same Gaussian output-noise model
as ``Crossbar.mvm``. Only the non-zero inputs are summed (spikes are sparse: ~6 of 255 per step),
in float64. The readout ``W_out z`` is one batched crossbar read after the loop, as in
``run_trial``.

Differences from the torch loop: the standard normals ξ are drawn in one call per trial (the torch
loop draws them step by step), so a seeded trial sees another noise sample of the same
distribution; without read noise the two agree spike for spike (a test). Import cost: numba
compiles the kernel at its first call (~2 s, then cached on disk next to this file when it is
writable). When numba is not installed, :func:`available` is False and callers use ``run_trial``.
"""

from __future__ import annotations

import numpy as np

try:  # optional: the accelerator falls back to the torch loop without it
    import numba
except ImportError:  # pragma: no cover - numba is in requirements.txt
    numba = None

from l2l_nmhw_ros.errors import ShapeError

#: refractory test of the paper code (as :data:`l2l_nmhw_ros.snn.neurons.REFRACTORY_EPS`)
_EPS = 0.1


def available() -> bool:
    """True when numba imports (the compiled kernel can run)."""
    return numba is not None


def _lif_kernel(w_t: np.ndarray, var_t: np.ndarray, x: np.ndarray, xi: np.ndarray, alpha: float,
                v_th: float, n_ref: float, gamma: float, z: np.ndarray, v: np.ndarray,
                psi: np.ndarray, zbar: np.ndarray) -> None:  # pragma: no cover - compiled
    # w_t, var_t: TRANSPOSED (n_in + n, n) so that the sum over the active inputs runs along
    # contiguous rows (SIMD)
    n_steps, n_in = x.shape
    n = w_t.shape[1]
    v_now = np.zeros(n)
    z_now = np.zeros(n)
    r = np.zeros(n)
    zb = np.zeros(n)
    cur = np.zeros(n)
    q = np.zeros(n)
    for t in range(n_steps):
        cur[:] = 0.0
        q[:] = 0.0
        for i in range(n_in + n):
            p = x[t, i] if i < n_in else z_now[i - n_in]
            if p != 0.0:
                pp = p * p
                for j in range(n):
                    cur[j] += w_t[i, j] * p
                    q[j] += var_t[i, j] * pp
        for j in range(n):
            zb[j] = alpha * zb[j] + z_now[j]
            current = cur[j] + np.sqrt(q[j]) * xi[t, j]
            vj = alpha * v_now[j] + current - v_th * z_now[j]
            u = (vj - v_th) / v_th
            free = 1.0 if r[j] <= _EPS else 0.0
            zj = free if u > 0.0 else 0.0
            du = 1.0 - abs(u)
            psi[t, j] = gamma / v_th * (du if du > 0.0 else 0.0) * free
            rj = r[j] + n_ref * zj - 1.0
            r[j] = 0.0 if rj < 0.0 else (n_ref if rj > n_ref else rj)
            v_now[j] = vj
            z_now[j] = zj
            z[t, j] = zj
            v[t, j] = vj
            zbar[t, j] = zb[j]


_compiled = None


def _kernel():
    global _compiled
    if _compiled is None:
        if numba is None:
            raise RuntimeError('numba is not installed: use snn.trainee.run_trial')
        _compiled = numba.njit(cache=True, nogil=True)(_lif_kernel)
    return _compiled


def warm_up() -> None:
    """Compile the kernel (or load it from numba's disk cache) with a 2-step toy trial.

    Raises:
        RuntimeError: numba is not installed.
    """
    lif_recurrent(np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 1)), np.zeros((2, 2)),
                  alpha=0.9, v_th=1.0, n_ref=1, gamma=0.3)


def lif_recurrent(w: np.ndarray, var_w: np.ndarray, x: np.ndarray, xi: np.ndarray, *,
                  alpha: float, v_th: float, n_ref: int, gamma: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the recurrent LIF population of one batch-1 trial (module docstring equations).

    Args:
        w: effective weights [W_in | W_rec] [1], (n, n_in + n); the W_rec diagonal is used as
            given (the crossbar's devices; the trainee has none).
        var_w: read-noise variance of each weight [1], (n, n_in + n), ≥ 0 (zeros: no noise).
        x: input spikes (time, n_in).
        xi: standard normals of the read noise (time, n).
        alpha: membrane decay exp(-dt / tau_m).
        v_th: threshold.
        n_ref: refractory period [steps].
        gamma: dampening factor of the pseudo-derivative.

    Returns:
        (z, v, psi, z_bar), each (time, n) float64: spikes, membrane potentials, pseudo-
        derivatives, presynaptic traces z̄ (as ``TrialResult``).

    Raises:
        ShapeError: inconsistent shapes.
        RuntimeError: numba is not installed.
    """
    w = np.asarray(w, dtype=np.float64)
    var_w = np.asarray(var_w, dtype=np.float64)
    x = np.ascontiguousarray(x, dtype=np.float64)
    xi = np.ascontiguousarray(xi, dtype=np.float64)
    if w.ndim != 2 or var_w.shape != w.shape:
        raise ShapeError(f'w, var_w: expected equal (n, n_in + n), got {w.shape}, {var_w.shape}')
    n = w.shape[0]
    n_in = w.shape[1] - n
    if n_in < 0 or x.ndim != 2 or x.shape[1] != n_in:
        raise ShapeError(f'x: expected (time, {n_in}), got {x.shape} for w {w.shape}')
    if xi.shape != (x.shape[0], n):
        raise ShapeError(f'xi: expected {(x.shape[0], n)}, got {xi.shape}')
    out = [np.empty((x.shape[0], n)) for _ in range(4)]
    _kernel()(np.ascontiguousarray(w.T), np.ascontiguousarray(var_w.T), x, xi, float(alpha),
              float(v_th), float(n_ref), float(gamma), *out)
    return out[0], out[1], out[2], out[3]
