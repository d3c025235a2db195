"""One 249-step trainee trial at batch 1: torch (ours) vs brian2 on the SAME network and input.

The network: the paper code's initial trainee (5 -> 250 LIF -> 2, ``init_trainee_weights``,
seed 0) deployed on the emulated PCM (``PCMModel.deploy``, paper_code preset: clip, jitter,
drift at t/t0 = 32); the input: the clock (5 neurons, one spike every 10 ms in their own 50 ms
window). Every side simulates these deployed weights on this input; the notes give the real-time
factor (249 ms of network time / wall time) and the spike count (torch float64 and brian2 agree
spike for spike; the reference test layer checks the same on the published weights).

Rows (group ``trial``; torch sides with 1 torch thread, best for batch 1 on this machine):

- ``trial.b1.torch.float64``: :func:`~l2l_nmhw_ros.snn.trainee.run_trial`, exact float64 MVM
  (brian2's precision): the like-for-like side of the brian2 comparison.
- ``trial.b1.torch.float32``: the same in float32 (what the package runs).
- ``trial.b1.torch.pcm_read_noise``: float32, every MVM through ``PCMModel.mvm`` (read noise,
  the meta-training and evaluation model), the step-by-step loop (the reference);
  ``...pcm_read_noise.fused``: the same trial through the fused loop
  (:func:`~l2l_nmhw_ros.snn.trainee.run_trial_fused`, what meta-training and evaluation run).
- ``trial.grad.b{1,90}.{reference,fused}``: a differentiable trial with PCM read noise, forward
  AND backward (BPTT of the readout's squared sum to the weights), at batch 1 (one shared
  matrix) and batch 90 (per-task matrices, as meta-training's test trial), step-by-step
  reference vs fused loop, timed interleaved.
- ``trial.b1.accelerator.compiled``: the accelerator's trial (``reach.accelerator.Accelerator``,
  as the ``pcm_accelerator`` node runs it: default configuration, ``fast_trials`` on): the same
  initial weights packed in the (252, 255) matrix and programmed on a
  :class:`~l2l_nmhw_ros.pcm.Crossbar` (its own devices, drift and read noise, so its spike count
  differs a little), the recurrent loop in the numba kernel of :mod:`l2l_nmhw_ros.snn.fast_trial`.
- ``trial.b1.torch.accelerator``: the same accelerator with ``fast=False`` (the torch loop of
  ``run_trial``, every MVM a ``Crossbar.mvm``).
- ``trial.b1.brian2.numpy``: :func:`~l2l_nmhw_ros.snn.brian2_reference.run_trainee_brian2`
  (brian2 2.9, numpy code-generation target), the whole call: building the network (62,250
  recurrent synapses) and running it; ``...brian2.numpy.run_only``: the ``Network.run`` part of
  the same calls (code generation and the 250-step run).
"""

from __future__ import annotations

import time

import torch

from bench.common import measure, measure_interleaved, row, skipped, torch_threads
from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.pcm import PCMModel
from l2l_nmhw_ros.snn.encoding import clock_input
from l2l_nmhw_ros.snn.trainee import init_trainee_weights, run_trial, run_trial_fused

GROUP = 'trial'
NETWORK_TIME_S = 0.249  # one trial: 249 steps of 1 ms (paper code --trajectory_length 249)
THREADS = 1

RATIOS = [
    ('brian2 (numpy) / torch float64 trial, b1, same network and input',
     'trial.b1.brian2.numpy', 'trial.b1.torch.float64'),
    ('brian2 Network.run only / torch float64 trial, b1', 'trial.b1.brian2.numpy.run_only',
     'trial.b1.torch.float64'),
    ('accelerator (crossbar) trial / float32 trial, b1', 'trial.b1.torch.accelerator',
     'trial.b1.torch.float32'),
    ('accelerator trial: torch loop / compiled kernel, b1', 'trial.b1.torch.accelerator',
     'trial.b1.accelerator.compiled'),
    ('PCM trial without gradient: reference / fused loop, b1', 'trial.b1.torch.pcm_read_noise',
     'trial.b1.torch.pcm_read_noise.fused'),
    ('PCM trial forward + backward: reference / fused loop, b1', 'trial.grad.b1.reference',
     'trial.grad.b1.fused'),
    ('PCM trial forward + backward: reference / fused loop, b90', 'trial.grad.b90.reference',
     'trial.grad.b90.fused'),
]

GOALS = [
    ('trainee trial on the emulated PCM ≥ 100× faster than real time (accelerator, b1)',
     'trial.b1.accelerator.compiled', NETWORK_TIME_S / 100, '249 ms of network time / 100'),
    ('trainee trial with PCM read noise ≥ 100× faster than real time (PCMModel, b1, fused)',
     'trial.b1.torch.pcm_read_noise.fused', NETWORK_TIME_S / 100,
     '249 ms of network time / 100'),
]


def _rtf(med: float) -> str:
    return f'{NETWORK_TIME_S / med:.1f}x real time'


def network(cfg: C.L2LConfig) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor],
                                        torch.Tensor]:
    """Return the trainee weights before and after deployment on the PCM model (float64; w_in,
    w_rec, w_out) and the clock input (time, 1, n_in) the benchmark simulates."""
    gen = torch.Generator().manual_seed(0)
    w = init_trainee_weights(cfg.trainee, gen, dtype=torch.float64)
    pcm = PCMModel(cfg.pcm)
    w_eff = {k: pcm.deploy(v, gen) for k, v in w.items()}
    x = clock_input(cfg.task, 1, n_in=cfg.trainee.n_in, dtype=torch.float64)
    return w, w_eff, x


def _brian2_rows(w: dict[str, torch.Tensor], x: torch.Tensor, cfg: C.L2LConfig, rep: int,
                 quick: bool, spikes_torch: int) -> list[dict]:
    try:
        import brian2
        from l2l_nmhw_ros.snn.brian2_reference import run_trainee_brian2
    except Exception as exc:  # noqa: BLE001 - optional side: report why it is missing
        return [skipped(GROUP, 'trial.b1.brian2.numpy', f'brian2 not importable ({exc!r})')]
    args = [w[k].numpy() for k in ('w_in', 'w_rec', 'w_out')] + [x[:, 0].numpy(), cfg.trainee]
    run_times: list[float] = []
    original = brian2.Network.run

    def timed_run(self, *a, **kw):  # records the Network.run part of each call
        t0 = time.perf_counter()
        try:
            return original(self, *a, **kw)
        finally:
            run_times.append(time.perf_counter() - t0)

    got = {}
    brian2.Network.run = timed_run
    try:
        med, spread, n = measure(lambda: got.update(res=run_trainee_brian2(*args)), repeat=rep,
                                 budget_s=8.0 if quick else None)
    finally:
        brian2.Network.run = original
    timed = sorted(run_times[-n:])
    spikes = int(got['res'].z.sum())
    agree = 'agree' if spikes == spikes_torch else 'DIFFER'
    return [row(GROUP, 'trial.b1.brian2.numpy', med, spread, n,
                f'{_rtf(med)}; build + run; {spikes} spikes (torch float64 {spikes_torch}: '
                f'{agree}); float64', rtf=NETWORK_TIME_S / med, spikes=spikes),
            row(GROUP, 'trial.b1.brian2.numpy.run_only', timed[len(timed) // 2],
                (timed[-1] - timed[0]) / 2, len(timed),
                f'{_rtf(timed[len(timed) // 2])}; Network.run of the same calls (code '
                'generation + 250 steps)')]


def run(quick: bool = False) -> list[dict]:
    """Return the batch-1 trial rows (torch sides, accelerator, brian2)."""
    cfg = C.load(C.default_config_path())
    rep = 5 if quick else 15
    w0, w64, x64 = network(cfg)
    w32 = {k: v.float() for k, v in w64.items()}
    x32 = x64.float()
    pcm = PCMModel(cfg.pcm)
    gen = torch.Generator().manual_seed(1)
    rows: list[dict] = []
    spikes64 = 0
    with torch_threads(THREADS), torch.no_grad():
        variants = {
            'float64': lambda: run_trial(w64['w_in'], w64['w_rec'], w64['w_out'], x64,
                                         cfg.trainee),
            'float32': lambda: run_trial(w32['w_in'], w32['w_rec'], w32['w_out'], x32,
                                         cfg.trainee),
            'pcm_read_noise': lambda: run_trial(w32['w_in'], w32['w_rec'], w32['w_out'], x32,
                                                cfg.trainee,
                                                lambda a, b: pcm.mvm(a, b, generator=gen)),
            'pcm_read_noise.fused': lambda: run_trial_fused(
                w32['w_in'], w32['w_rec'], w32['w_out'], x32, cfg.trainee,
                lambda a, b: pcm.mvm(a, b, generator=gen),
                read_var=lambda w: pcm.read_noise_sd(w) ** 2, generator=gen),
        }
        for name, fn in variants.items():
            med, spread, n = measure(fn, repeat=rep)
            spikes = int(fn().z.sum())
            if name == 'float64':
                spikes64 = spikes
            rows.append(row(GROUP, f'trial.b1.torch.{name}', med, spread, n,
                            f'{_rtf(med)}; {spikes} spikes; torch threads {THREADS}',
                            rtf=NETWORK_TIME_S / med, spikes=spikes))
        try:
            from l2l_nmhw_ros.reach.accelerator import Accelerator
        except ImportError as exc:
            rows.append(skipped(GROUP, 'trial.b1.torch.accelerator',
                                f'accelerator core not available ({exc})'))
        else:
            from l2l_nmhw_ros.snn import fast_trial
            # the crossbar deploys the same initial weights itself (its own devices and drift)
            weights = {k: v.float().numpy() for k, v in w0.items()}
            for name, fast in (('accelerator.compiled', True), ('torch.accelerator', False)):
                if fast and not fast_trial.available():
                    rows.append(skipped(GROUP, f'trial.b1.{name}', 'numba is not installed'))
                    continue
                acc = Accelerator(cfg, weights, 0.0, seed=2, fast=fast)
                med, spread, n = measure(lambda acc=acc: acc.run_trial(3600.0),
                                         repeat=rep * (10 if fast else 1))
                spikes = int(acc.run_trial(3600.0).z.sum())
                how = 'numba kernel' if fast else 'torch loop'
                rows.append(row(GROUP, f'trial.b1.{name}', med, spread, n,
                                f'{_rtf(med)}; {spikes} spikes; Crossbar ({cfg.pcm.preset} '
                                f'preset, as the node) read at t = 1 h; {how}; torch threads '
                                f'{THREADS}', rtf=NETWORK_TIME_S / med, spikes=spikes))
    rows += _grad_rows(cfg, w32, pcm, quick)
    rows += _brian2_rows(w64, x64, cfg, 3 if quick else 7, quick, spikes64)
    return rows


def _grad_rows(cfg: C.L2LConfig, w32: dict[str, torch.Tensor], pcm: PCMModel,
               quick: bool) -> list[dict]:
    """Forward + backward of one PCM trial, reference vs fused, batch 1 and 90."""
    return [r for batch in (1, 90) for r in _grad_pair(cfg, w32, pcm, batch, quick)]


def _grad_pair(cfg: C.L2LConfig, w32: dict[str, torch.Tensor], pcm: PCMModel, batch: int,
               quick: bool) -> list[dict]:
    gen = torch.Generator().manual_seed(5)
    noise = torch.Generator().manual_seed(6)
    if batch == 1:
        w = {k: v.clone().requires_grad_() for k, v in w32.items()}
    else:  # per-task matrices, as after the update
        w = {k: (v + 0.01 * torch.randn((batch, *v.shape), generator=gen)).requires_grad_()
             for k, v in w32.items()}
    x = clock_input(cfg.task, batch, n_in=cfg.trainee.n_in)

    def mvm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return pcm.mvm(a, b, generator=noise)

    def step(fused: bool) -> None:
        if fused:
            r = run_trial_fused(w['w_in'], w['w_rec'], w['w_out'], x, cfg.trainee, mvm,
                                read_var=lambda m: pcm.read_noise_sd(m) ** 2, generator=noise)
        else:
            r = run_trial(w['w_in'], w['w_rec'], w['w_out'], x, cfg.trainee, mvm)
        (r.y ** 2).sum().backward()

    with torch_threads(THREADS):
        res = measure_interleaved({'reference': lambda: step(False), 'fused': lambda: step(True)},
                                  repeat=3 if quick else (9 if batch == 1 else 5))
    rows = []
    for name, (med, spread, n) in res.items():
        rows.append(row(GROUP, f'trial.grad.b{batch}.{name}', med, spread, n,
                        f'{_rtf(med)}; forward + backward, PCM read noise, '
                        f'{"shared" if batch == 1 else "per-task"} weights; '
                        f'{"fused loop" if name == "fused" else "step-by-step autograd"}; '
                        f'interleaved; torch threads {THREADS}', rtf=NETWORK_TIME_S / med))
    return rows


if __name__ == '__main__':
    for r in run(quick=True):
        print(f"{r['name']:36s} {r['median_s'] or float('nan'):.3e} s  {r['notes']}")
