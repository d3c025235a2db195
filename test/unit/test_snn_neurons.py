"""LIF/ALIF step functions, encodings and the golden trainee trial."""

from __future__ import annotations

import math

import pytest
import torch

from l2l_nmhw_ros.config import LSGConfig, TaskConfig, TraineeConfig
from l2l_nmhw_ros.errors import ShapeError
from l2l_nmhw_ros.snn.encoding import clock_input, encode_target
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


def test_encode_target_bits() -> None:
    # c = 0.5 m -> floor(1.5 * 2^15) = 49152 = 0b1100_0000_0000_0000 (bits 14 and 15)
    xyz = torch.tensor([[[0.5, -1.0, 0.999]]])
    code = encode_target(xyz, 16)
    assert code.shape == (1, 1, 48)
    assert torch.nonzero(code[0, 0, :16]).flatten().tolist() == [14, 15]
    assert int(code[0, 0, 16:32].sum()) == 0
    expect = math.floor(1.999 * 2 ** 15)
    assert sum(int(b) << i for i, b in enumerate(code[0, 0, 32:].tolist())) == expect
    with pytest.raises(ShapeError):
        encode_target(torch.zeros(3, 2), 16)


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
