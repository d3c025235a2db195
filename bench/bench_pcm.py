"""PCM emulator throughput: MVM at 256 × 256 and one 249-step trainee trial.

Rows (group ``pcm``):

- ``pcm.mvm256.b{1,90}.{ideal,fast,per_device_ref,crossbar,crossbar_new_t}``: one MVM of a
  256 × 256 weight matrix for a batch of 1 or 90 input vectors. ``ideal``: the float MVM
  (``PCMModel`` with the ideal preset); ``fast``: ``PCMModel.mvm`` with read noise (paper_code)
  on the output (variance Σ σ² x², SD cached per weight tensor); ``per_device_ref``: a plain
  reference written here, as a direct implementation would do it (σ of every weight from the
  formula, a fresh Gaussian per weight and read, then the MVM); ``crossbar``: ``Crossbar.mvm``
  (physical preset, per-device state, 2 devices per polarity) at a fixed time;
  ``crossbar_new_t``: the same with a new time at every call (drift re-evaluated on all devices).
- ``pcm.mvm256.b90.batched_w.{fast,per_device_ref}``: meta-training shape, one weight matrix per
  task (90, 256, 256).
- ``pcm.aihwkit.b{1,90}``: IBM aihwkit 1.1 ``AnalogLinear`` with ``TorchInferenceRPUConfig`` and
  ``PCMLikeNoiseModel`` (default IO: DAC/ADC quantisation and output noise) after
  ``drift_analog_weights`` (skipped with the reason when aihwkit does not import), timed in
  alternation with ``pcm.mvm256.b{1,90}.crossbar_vs_aihwkit`` (our crossbar, same weights) so
  that both sides see the same machine load.
- ``pcm.trial249.*``: one 249-step trial of a 250-LIF trainee on the packed (252, 255) matrix
  (a minimal LIF loop written here: leak, threshold, reset by subtraction, refractory counter,
  leaky readout), with the MVM of each variant; notes give the real-time factor (249 ms of network
  time / wall time).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from bench.common import measure, measure_interleaved, row, skipped
from l2l_nmhw_ros.config import PCMConfig, TraineeConfig
from l2l_nmhw_ros.pcm import Crossbar, PCMModel
from l2l_nmhw_ros.pcm.device_model import PaperCodeDevice

GROUP = 'pcm'
QUICK_BUDGET_S = 1.5  # --quick: stop repeating a row after this long (at least one timed run)
FULL_BUDGET_S = 60.0  # full run: the same for the slow trial rows (per-device reference, b90)
N = 256
T_STEPS = 249

RATIOS = [
    ('PCM fast noisy MVM / ideal, 256x256 b90', 'pcm.mvm256.b90.fast', 'pcm.mvm256.b90.ideal'),
    ('per-device reference / fast noisy MVM, b90', 'pcm.mvm256.b90.per_device_ref',
     'pcm.mvm256.b90.fast'),
    ('per-device reference / fast, batched weights b90',
     'pcm.mvm256.b90.batched_w.per_device_ref', 'pcm.mvm256.b90.batched_w.fast'),
    ('aihwkit / our crossbar MVM, b1 (timed alternately)', 'pcm.aihwkit.b1',
     'pcm.mvm256.b1.crossbar_vs_aihwkit'),
    ('aihwkit / our crossbar MVM, b90 (timed alternately)', 'pcm.aihwkit.b90',
     'pcm.mvm256.b90.crossbar_vs_aihwkit'),
    ('noisy trial / ideal trial, b90 shared weights', 'pcm.trial249.b90.fast',
     'pcm.trial249.b90.ideal'),
]


GOALS = [
    ('crossbar MVM 256x256 at batch 1 at least as fast as aihwkit\'s inference tile',
     'pcm.mvm256.b1.crossbar_vs_aihwkit', 'pcm.aihwkit.b1',
     'PCMLikeNoiseModel, same run, timed alternately'),
]


def _cfg(**kw: object) -> PCMConfig:
    return dataclasses.replace(PCMConfig(), **kw)


def reference_noisy_mvm(x: torch.Tensor, w: torch.Tensor, cfg: PCMConfig,
                        gen: torch.Generator) -> torch.Tensor:
    """Plain per-device read noise (paper code form): σ per weight (the paper_code device model,
    N devices averaged), one Gaussian per weight and read, then the MVM. x (B, n_pre),
    w (n_post, n_pre) or (B, n_post, n_pre)."""
    g = w.abs().clamp(max=cfg.w_max) * (cfg.g_max / cfg.w_max)
    sd = PaperCodeDevice(cfg).read_noise_sd(g, 0.0, n_averaged=cfg.n_devices) * (
        cfg.w_max / cfg.g_max)
    shape = (x.shape[0],) + w.shape[-2:]
    w_noisy = w + sd * torch.randn(shape, generator=gen)
    return torch.matmul(w_noisy, x.unsqueeze(-1)).squeeze(-1)


def lif_trial(mvm, x_in: torch.Tensor, n_rec: int, tc: TraineeConfig, dt: float) -> torch.Tensor:
    """Minimal LIF trainee trial on the packed matrix; returns the readout (T, B, n_out).

    ``mvm(inp)`` maps [x_t | z_{t−1}] (B, n_in + n_rec) to (B, n_rec + n_out). The readout rows get
    z_{t−1} (one step late: fine for timing, not for accuracy)."""
    alpha, kappa = math.exp(-dt / tc.tau_m), math.exp(-dt / tc.tau_out)
    t_steps, batch, _ = x_in.shape
    v = torch.zeros(batch, n_rec)
    z = torch.zeros(batch, n_rec)
    r = torch.zeros(batch, n_rec)
    y = torch.zeros(batch, 2)
    ys = []
    for t in range(t_steps):
        cur = mvm(torch.cat([x_in[t], z], dim=-1))
        v = alpha * v + cur[:, :n_rec] - tc.v_th * z
        z = ((v > tc.v_th) & (r <= 0.1)).float()
        r = torch.clamp(r + tc.n_ref * z - 1.0, 0.0, float(tc.n_ref))
        y = kappa * y + cur[:, n_rec:]
        ys.append(y)
    return torch.stack(ys)


def _mvm_rows(quick: bool) -> list[dict]:
    rows = []
    rep = 5 if quick else 11
    gen = torch.Generator().manual_seed(0)
    w = torch.rand(N, N, generator=gen) * 2 - 1
    ideal, noisy = PCMModel(_cfg(preset='ideal')), PCMModel(_cfg())
    xb = Crossbar(_cfg(preset='physical'), N, N, 1)
    xb.program(w, 0.0)
    cfg = noisy.cfg
    for b in (1, 90):
        x = (torch.rand(b, N, generator=gen) < 0.1).float()
        number = (200 if b == 1 else 20) if not quick else (20 if b == 1 else 5)
        clock = iter(range(10 ** 9))
        variants = {
            'ideal': lambda x=x: ideal.mvm(x, w),
            'fast': lambda x=x: noisy.mvm(x, w, gen),
            'per_device_ref': lambda x=x: reference_noisy_mvm(x, w, cfg, gen),
            'crossbar': lambda x=x: xb.mvm(x, 3600.0, gen),
            'crossbar_new_t': lambda x=x, c=clock: xb.mvm(x, 3600.0 + next(c) * 1e-3, gen),
        }
        for name, fn in variants.items():
            with torch.no_grad():
                med, spread, n = measure(fn, repeat=rep, number=number,
                                         budget_s=QUICK_BUDGET_S if quick else None)
            rows.append(row(GROUP, f'pcm.mvm256.b{b}.{name}', med, spread, n,
                            f'{b * N * N / med / 1e9:.2f} GMAC/s'))
    b = 90
    wb = torch.rand(b, N, N, generator=gen) * 2 - 1
    x = (torch.rand(b, N, generator=gen) < 0.1).float()
    for name, fn in {'fast': lambda: noisy.mvm(x, wb, gen),
                     'per_device_ref': lambda: reference_noisy_mvm(x, wb, cfg, gen)}.items():
        with torch.no_grad():
            med, spread, n = measure(fn, repeat=rep, number=10 if not quick else 3,
                                     budget_s=QUICK_BUDGET_S if quick else None)
        rows.append(row(GROUP, f'pcm.mvm256.b90.batched_w.{name}', med, spread, n,
                        'one (256, 256) matrix per task, as in meta-training'))
    return rows


def _aihwkit_rows(quick: bool) -> list[dict]:
    try:
        from aihwkit.inference import PCMLikeNoiseModel
        from aihwkit.nn import AnalogLinear
        from aihwkit.simulator.configs import TorchInferenceRPUConfig
    except Exception as exc:  # noqa: BLE001 - optional side: report why it is missing
        return [skipped(GROUP, f'pcm.aihwkit.b{b}', f'aihwkit not importable ({exc!r})')
                for b in (1, 90)]
    gen = torch.Generator().manual_seed(2)
    w = torch.rand(N, N, generator=gen) * 2 - 1  # the same weights on both sides
    rpu = TorchInferenceRPUConfig()
    rpu.noise_model = PCMLikeNoiseModel(g_max=25.0)
    layer = AnalogLinear(N, N, bias=False, rpu_config=rpu)
    layer.set_weights(w)
    layer.eval()
    layer.program_analog_weights()
    layer.drift_analog_weights(3600.0)
    xb = Crossbar(_cfg(preset='physical'), N, N, 1)
    xb.program(w, 0.0)
    rows = []
    for b in (1, 90):
        x = (torch.rand(b, N, generator=gen) < 0.1).float()
        with torch.no_grad():  # alternate the two sides so that they share the machine's load
            got = measure_interleaved(
                {'aihwkit': lambda x=x: layer(x),
                 'crossbar': lambda x=x: xb.mvm(x, 3600.0, gen)},
                repeat=5 if quick else 11, number=(20 if quick else 50) if b == 1 else 10)
        rows.append(row(GROUP, f'pcm.aihwkit.b{b}', *got['aihwkit'],
                        'AnalogLinear, TorchInferenceRPUConfig default IO, PCMLikeNoiseModel, '
                        'after 1 h drift; timed alternately with crossbar_vs_aihwkit'))
        rows.append(row(GROUP, f'pcm.mvm256.b{b}.crossbar_vs_aihwkit', *got['crossbar'],
                        'our Crossbar.mvm (physical preset, same weights), timed alternately '
                        'with pcm.aihwkit'))
    return rows


def _trial_rows(quick: bool) -> list[dict]:
    tc = TraineeConfig()
    n_in, n_rec, n_out = tc.n_in, tc.n_rec, tc.n_out
    gen = torch.Generator().manual_seed(3)
    w = (torch.randn(n_rec + n_out, n_in + n_rec, generator=gen) * 0.15).clamp(-1, 1)
    w[n_rec:, :n_in] = 0.0
    ideal, noisy = PCMModel(_cfg(preset='ideal')), PCMModel(_cfg())
    cfg = noisy.cfg
    xb = Crossbar(_cfg(preset='physical'), n_rec + n_out, n_in + n_rec, 4)
    xb.program(w, 0.0)
    rows = []
    rep = 3 if quick else 5
    dt = 0.001
    for b in (1, 90):
        x_in = torch.zeros(T_STEPS, b, n_in)
        for k in range(n_in):  # the clock input: neuron k spikes every 10 ms in its 50 ms window
            x_in[50 * k:50 * k + 50:10, :, k] = 1.0
        w_eff = noisy.deploy(w, gen)
        variants = {
            'ideal': lambda inp: ideal.mvm(inp, w),
            'fast': lambda inp, w_eff=w_eff: noisy.mvm(inp, w_eff, gen),
            'per_device_ref': lambda inp, w_eff=w_eff: reference_noisy_mvm(inp, w_eff, cfg, gen),
            'crossbar': lambda inp: xb.mvm(inp, 3600.0, gen),
        }
        if b == 90:  # meta-training: one weight matrix per task
            w_b = noisy.deploy(w.expand(b, -1, -1), gen)
            variants['batched_w.fast'] = lambda inp, w_b=w_b: noisy.mvm(inp, w_b, gen)
        for name, fn in variants.items():
            slow = name == 'per_device_ref' and b == 90  # about 30 s per trial on 1 core
            if slow and quick:
                rows.append(skipped(GROUP, f'pcm.trial249.b{b}.{name}',
                                    'not in --quick (~15-30 s per trial); see the full run'))
                continue
            with torch.no_grad():
                med, spread, n = measure(
                    lambda fn=fn, x_in=x_in: lif_trial(fn, x_in, n_rec, tc, dt),
                    repeat=2 if slow else rep, number=1, warmup=0 if slow else 1,
                    budget_s=QUICK_BUDGET_S if quick else FULL_BUDGET_S)
            rows.append(row(GROUP, f'pcm.trial249.b{b}.{name}', med, spread, n,
                            f'{T_STEPS * dt / med:.1f}x real time per batch of {b} '
                            f'({b * T_STEPS * dt / med:.0f}x counting each task)'))
    return rows


def run(quick: bool = False) -> list[dict]:
    """Return the MVM, aihwkit and trial rows."""
    return _mvm_rows(quick) + _aihwkit_rows(quick) + _trial_rows(quick)


if __name__ == '__main__':
    for r in run(quick=True):
        print(f"{r['name']:42s} {r['median_s'] or float('nan'):.3e} s  {r['notes']}")
