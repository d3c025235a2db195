"""LIF/ALIF step functions, encodings and the golden trainee trial."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from l2l_nmhw_ros.config import LSGConfig, TaskConfig, TraineeConfig
from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.snn.encoding import clock_input, encode_target, target_code_ints
from l2l_nmhw_ros.snn.lsg import alif_beta, init_lsg_weights, run_lsg
from l2l_nmhw_ros.snn.neurons import NeuronState, alif_step, decay_factor, initial_state
from l2l_nmhw_ros.snn.trainee import init_trainee_weights, run_trial


def _state(v, z=0.0, r=0.0, b=0.0) -> NeuronState:
    t = lambda a: torch.tensor([[a]], dtype=torch.float64)  # noqa: E731
    return NeuronState(t(v), t(z), t(r), t(b))


def test_lif_step_hand_computed() -> None:
    # v = 0.9 * 0.5 + 0.4 - 0.6 * 0 = 0.85 > 0.6 -> spike; psi = 0.3/0.6 * (1 - 0.25/0.6)
    st, psi = alif_step(_state(0.5), torch.tensor([[0.4]], dtype=torch.float64), alpha=0.9,
                        v_th=0.6, n_ref=5, gamma=0.3)
    assert float(st.v) == pytest.approx(0.85)
    assert float(st.z) == 1.0
    assert float(psi) == pytest.approx(0.5 * (1 - 0.25 / 0.6))
    assert float(st.r) == 4.0  # clip(0 + 5 - 1, 0, 5)
    # next step: reset by subtraction of v_th, refractory -> no spike, psi = 0
    st2, psi2 = alif_step(st, torch.tensor([[1.0]], dtype=torch.float64), alpha=0.9, v_th=0.6,
                          n_ref=5, gamma=0.3)
    assert float(st2.v) == pytest.approx(0.9 * 0.85 + 1.0 - 0.6)
    assert float(st2.z) == 0.0
    assert float(psi2) == 0.0
    assert float(st2.r) == 3.0


def test_refractory_period_blocks_four_steps() -> None:
    # constant strong drive: spikes every n_ref = 5 steps (blocked t+1..t+4)
    state = initial_state(1, 1, dtype=torch.float64)
    spikes = []
    for _ in range(21):
        state, _ = alif_step(state, torch.tensor([[5.0]], dtype=torch.float64), alpha=0.95,
                             v_th=0.6, n_ref=5, gamma=0.3)
        spikes.append(int(state.z))
    assert [i for i, s in enumerate(spikes) if s] == [0, 5, 10, 15, 20]


def test_alif_threshold_adapts_and_reset_subtracts_effective_threshold() -> None:
    beta, rho = 1.6, math.exp(-1 / 600)
    st = _state(0.0, z=1.0, b=0.5)
    st2, _ = alif_step(st, torch.tensor([[0.2]], dtype=torch.float64), alpha=0.9, v_th=1.3,
                       n_ref=0, gamma=0.3, beta=beta, rho=rho)
    b = rho * 0.5 + 1.0
    assert float(st2.b) == pytest.approx(b)
    assert float(st2.v) == pytest.approx(0.2 - (1.3 + beta * b))


def test_decay_factor_and_validation() -> None:
    assert decay_factor(0.020, 0.001) == pytest.approx(math.exp(-1 / 20))
    with pytest.raises(ValueError):
        decay_factor(0.0, 0.001)


def test_clock_input_pattern() -> None:
    x = clock_input(TaskConfig(), 2)
    assert x.shape == (249, 2, 5)
    assert int(x.sum()) == 2 * 25
    assert torch.nonzero(x[:, 0, 3]).flatten().tolist() == [150, 160, 170, 180, 190]


def _as_int(bits: list[float]) -> int:
    return sum(int(b) << i for i, b in enumerate(bits))


def test_encode_target_bits_clamped_and_paper_below_1m() -> None:
    # c = 0.5 m -> floor(1.5 * 2^15) = 49152 = 0b1100_0000_0000_0000 (bits 14 and 15); below
    # 1 m the authors' code and the clamped one agree
    xyz = torch.tensor([[[0.5, -1.0, 0.999]]])
    for name in ('paper', 'clamped'):
        code = encode_target(xyz, 16, code=name)
        assert code.shape == (1, 1, 48)
        assert torch.nonzero(code[0, 0, :16]).flatten().tolist() == [14, 15]
        assert int(code[0, 0, 16:32].sum()) == 0
        assert _as_int(code[0, 0, 32:].tolist()) == math.floor(1.999 * 2 ** 15)
    with pytest.raises(ShapeError):
        encode_target(torch.zeros(3, 2), 16, code='paper')
    with pytest.raises(ValueError, match='target code'):
        encode_target(xyz, 16, code='gray')


def test_paper_target_code_wraps_and_truncates_in_float32() -> None:
    # authors: int64(float32(c + 1) * 2^15), bits 0..15 kept. z = 1.1 m: float32(2.1) * 32768
    # = 68812.8 -> 68812 -> 68812 - 65536 = 3276, the code of -0.9 m (0.1 * 32768 = 3276.8);
    # the clamped code saturates at 65535 instead
    z = torch.tensor([[[0.0, 0.0, 1.1]], [[0.0, 0.0, -0.9]]])
    paper = target_code_ints(z, 16, 'paper')[:, 0, 2].tolist()
    assert paper == [3276, 3276]
    assert target_code_ints(z, 16, 'clamped')[:, 0, 2].tolist() == [65535, 3276]
    # float32 product then truncation: c = 0.2 gives float32(1.2) = 1.2000000477 -> 39321.6 ->
    # 39321 (in float64 the same); c = -1.25 truncates toward zero: -0.25 * 32768 = -8192 ->
    # two's complement bits 0..15 = 65536 - 8192 = 57344
    c = torch.tensor([[[0.2, -1.25, 0.0]]])
    assert target_code_ints(c, 16, 'paper')[0, 0].tolist() == [39321, 57344, 32768]
    # a value whose float64 product lies just below an integer that float32 rounds up:
    # c = 2^-15 * 5 - 1 + 1e-12 is 5 - tiny in float64, exactly 5 in float32
    c = torch.tensor([[[5 * 2.0 ** -15 - 1 - 1e-12, 0.0, 0.0]]], dtype=torch.float64)
    assert int(target_code_ints(c, 16, 'paper')[0, 0, 0]) == 5
    assert int(target_code_ints(c, 16, 'clamped')[0, 0, 0]) == 4


def test_workspace_target_code_distinct_over_the_reachable_workspace() -> None:
    # the workspace code: floor((c + 2) 2^16 / 4) on [-2, 2) m, resolution 4/2^16 m = 61 µm;
    # targets of the whole joint space (4 joints uniform in +-pi, wider than any joint limit)
    # are all inside the code's range: no code wraps or saturates
    from l2l_nmhw_ros.arm.kinematics import forward_kinematics

    assert target_code_ints(torch.tensor([-2.0, 0.0, 1.99999]), 16, 'workspace').tolist() == [
        0, 32768, 65535]
    gen = np.random.default_rng(7)
    q = gen.uniform(-math.pi, math.pi, size=(20000, 4))
    xyz = torch.as_tensor(forward_kinematics(q))
    assert float(xyz[:, :2].abs().max()) < 0.93 and -0.52 < float(xyz[:, 2].min())
    assert float(xyz[:, 2].max()) < 1.23
    ints = target_code_ints(xyz, 16, 'workspace')
    assert int(ints.min()) > 0 and int(ints.max()) < 2 ** 16 - 1
    res = 4.0 / 2 ** 16
    # the code decodes back to within one resolution step of every target (so targets that
    # differ by more than a step in some coordinate cannot share a code), and these 20000
    # random targets get 20000 distinct codes
    decoded = -2.0 + (ints.double() + 0.5) * res
    assert float((decoded - xyz).abs().max()) <= res / 2 + 1e-12
    assert torch.unique(ints, dim=0).shape[0] == 20000
    # above 1 m: distinct codes where the clamped code is blind
    hi = torch.tensor([[1.05, 0.0, 1.1], [1.05, 0.0, 1.2]])
    assert target_code_ints(hi, 16, 'clamped')[:, 2].tolist() == [65535, 65535]
    w = target_code_ints(hi, 16, 'workspace')[:, 2].tolist()
    assert w[0] != w[1]
    with pytest.raises(ValueError, match=r'\[-2.0, 2.0\) m'):
        target_code_ints(torch.tensor([0.0, 0.0, 2.0]), 16, 'workspace')
    with pytest.raises(ValueError, match='workspace'):
        target_code_ints(torch.tensor([float('nan'), 0.0, 0.0]), 16, 'workspace')


def test_golden_trainee_trial() -> None:
    # pinned: seed-1234 paper initialisation, clock input, float32 (float64 gives the same spikes)
    w = init_trainee_weights(TraineeConfig(), torch.Generator().manual_seed(1234))
    tr = run_trial(w['w_in'], w['w_rec'], w['w_out'], clock_input(TaskConfig(), 1),
                   TraineeConfig())
    assert int(tr.z.sum()) == 2537
    assert tr.z.sum((0, 1))[:5].tolist() == [7.0, 3.0, 1.0, 0.0, 6.0]
    assert tr.y[-1, 0].tolist() == pytest.approx([-0.000379175, 0.0212739], abs=2e-7)
    assert float(tr.y[:, 0, 1].sum()) == pytest.approx(10.40217, abs=1e-4)


def test_lsg_shapes_and_alif_fraction() -> None:
    cfg = LSGConfig(n_rec=20)
    beta = alif_beta(cfg)
    assert int((beta > 0).sum()) == 6
    assert float(beta[0]) == 0.0
    assert float(beta[-1]) == pytest.approx(1.6)
    w = init_lsg_weights(cfg, 53, 9, torch.Generator().manual_seed(0))
    inp = (torch.rand(30, 2, 53, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    out = run_lsg(w, inp, cfg)
    assert out.shape == (30, 2, 9)
    with pytest.raises(ShapeError):
        run_lsg(w, inp[..., :50], cfg)
