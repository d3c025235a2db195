"""Meta-gradient through one inner update, meta-training, checkpoints and resuming."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.errors import CheckpointError
from l2l_nmhw_ros.l2l import checkpoint as ckpt
from l2l_nmhw_ros.l2l.inner import FloatBackend, adapt, quantize_ste
from l2l_nmhw_ros.l2l.meta import MetaTrainer, make_backend, outer_loss
from l2l_nmhw_ros.l2l.tasks import make_tasks
from l2l_nmhw_ros.snn.lsg import init_lsg_weights, lsg_n_in
from l2l_nmhw_ros.snn.neurons import PAPER, smooth_mode
from l2l_nmhw_ros.snn.trainee import init_trainee_weights


def _tiny_cfg(n_ref: int = 5, **meta) -> C.L2LConfig:
    # 5 clock neurons x 6 steps = 30 steps; 6 trainee neurons, 8 LSG neurons, 4 bits per coord
    return C.L2LConfig(
        trainee=C.TraineeConfig(n_rec=6, n_ref=n_ref),
        lsg=C.LSGConfig(n_rec=8, bits_per_coord=4, n_ref=n_ref),
        task=C.TaskConfig(n_steps=30, clock_window=6, clock_interval=2, smoothing_window=10),
        eprop=C.EpropConfig(eta=0.05),
        meta=C.MetaConfig(**({'batch_size': 4, 'families': ('brownian', 'reach'),
                              'validation_batches': 1, 'validation_tasks': 4} | meta)))


def _weights(cfg: C.L2LConfig, scale_in: float = 3.0):
    gen = torch.Generator().manual_seed(3)
    tw = init_trainee_weights(cfg.trainee, gen, dtype=torch.float64)
    tw['w_in'] = tw['w_in'] * scale_in  # make the tiny trainee spike
    tw['w_out'] = tw['w_out'] * 20
    lw = init_lsg_weights(cfg.lsg, lsg_n_in(cfg.lsg, cfg.trainee.n_in), cfg.trainee.n_rec, gen,
                          dtype=torch.float64)
    lw['w_in'] = lw['w_in'] * 3
    lw['w_out'] = lw['w_out'] * 30
    return {f'trainee.{k}': v.requires_grad_() for k, v in tw.items()} | \
        {f'lsg.{k}': v.requires_grad_() for k, v in lw.items()}


def _loss(params, cfg, tasks, mode):
    tr = {k[8:]: v for k, v in params.items() if k.startswith('trainee.')}
    ls = {k[4:]: v for k, v in params.items() if k.startswith('lsg.')}
    res = adapt(tr, ls, tasks, cfg, backend=FloatBackend(), mode=mode)
    return outer_loss(res, tasks, cfg)[0], res


def _directional_check(params, cfg, tasks, mode, names, h=1e-6):
    loss, res = _loss(params, cfg, tasks, mode)
    grads = torch.autograd.grad(loss, [params[k] for k in names])
    gen = torch.Generator().manual_seed(11)
    out = {}
    for name, g in zip(names, grads, strict=True):
        d = torch.randn(params[name].shape, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            plus = {k: (v + h * d if k == name else v) for k, v in params.items()}
            minus = {k: (v - h * d if k == name else v) for k, v in params.items()}
            fd = (_loss(plus, cfg, tasks, mode)[0] - _loss(minus, cfg, tasks, mode)[0]) / (2 * h)
        out[name] = (float((g * d).sum()), float(fd))
    return out, res


def test_meta_gradient_matches_finite_differences_smooth_mode() -> None:
    # With a sigmoid spike (smooth_mode), no refractoriness and the reset attached, the whole
    # forward pass is differentiable: this proves that autograd's meta-gradient follows every
    # path of the inner loop (learning trial -> psi, traces; LSG -> L; e-prop Delta W;
    # reprogram; test trial; FK loss) with no accidental stop-gradient.
    cfg = _tiny_cfg(n_ref=0)
    tasks = make_tasks('brownian', cfg.task, 3, np.random.default_rng(0), dtype=torch.float64)
    params = _weights(cfg)
    names = list(params)
    out, res = _directional_check(params, cfg, tasks, smooth_mode(0.3), names)
    assert float((res.test.y - res.learn.y).detach().abs().max()) > 1e-3  # the update matters
    for name, (ad, fd) in out.items():
        assert ad == pytest.approx(fd, rel=1e-5, abs=1e-9), name
        assert abs(fd) > 1e-8, name  # a real dependence, not 0 == 0


def test_meta_gradient_readout_matches_finite_differences_paper_mode() -> None:
    # With the real (Heaviside) spikes the loss is piecewise constant in the weights that move
    # spikes, but smooth in the trainee readout W_out (spikes do not depend on it): there
    # autograd through the whole inner loop must equal central differences exactly.
    cfg = _tiny_cfg()
    tasks = make_tasks('reach', cfg.task, 3, np.random.default_rng(1), dtype=torch.float64)
    params = _weights(cfg)
    out, res = _directional_check(params, cfg, tasks, PAPER, ['trainee.w_out'])
    assert float(res.test.z.detach().sum()) > 10
    ad, fd = out['trainee.w_out']
    assert ad == pytest.approx(fd, rel=1e-6)


def test_quantize_ste_rounds_forward_and_passes_gradient() -> None:
    dw = torch.tensor([0.03, 0.032, -0.1, 0.2], requires_grad=True)
    q = quantize_ste(dw, 1 / 16)
    assert q.tolist() == pytest.approx([0.0, 0.0625, -0.125, 0.1875])
    q.sum().backward()
    assert dw.grad.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_quantize_ste_stochastic_is_unbiased_and_passes_gradient() -> None:
    # 0.03 = 0.48 steps of 1/16: each entry is 0 or 1/16, 1/16 with probability 0.48, so the mean
    # of 20,000 draws is 0.03 within 4 SE (SE = sqrt(0.48 * 0.52 / 20000) / 16 = 2.2e-4); -0.1 =
    # -1.6 steps gives -1/16 or -2/16 (P(-2/16) = 0.6).
    gen = torch.Generator().manual_seed(3)
    dw = torch.tensor([0.03, -0.1]).repeat(20000, 1).requires_grad_(True)
    q = quantize_ste(dw, 1 / 16, stochastic=True, generator=gen)
    steps = (q.detach() * 16).round()
    assert torch.allclose(q.detach() * 16, steps, atol=1e-5)  # on the grid
    assert set(steps[:, 0].tolist()) == {0.0, 1.0}
    assert set(steps[:, 1].tolist()) == {-1.0, -2.0}
    mean = q.detach().mean(dim=0)
    assert float(mean[0]) == pytest.approx(0.03, abs=4 * 2.2e-4)
    assert float(mean[1]) == pytest.approx(-0.1, abs=4 * 2.2e-4)
    q.sum().backward()
    assert torch.equal(dw.grad, torch.ones_like(dw))
    # the software backend follows pcm.stochastic_rounding
    cfg = _tiny_cfg()
    cfg = dataclasses.replace(cfg, pcm=dataclasses.replace(cfg.pcm, stochastic_rounding=True))
    b = make_backend(cfg, pcm=False, quantize=True)
    assert isinstance(b, FloatBackend) and b.stochastic and b.step == cfg.pcm.delta_w_step


def test_meta_training_lowers_the_loss_after_the_update() -> None:
    # 80 iterations of a tiny meta-training: the post-update loss on fixed validation tasks
    # must fall clearly (seeded; measured 0.076 -> 0.047 = 0.61x with the authors' brownian
    # generator and the workspace target code; 40 iterations gave 0.71x).
    cfg = _tiny_cfg(lr=1e-2, quantize_in_loop=False, pcm_in_loop=False, batch_size=8,
                    families=('brownian',))
    cfg = dataclasses.replace(cfg, task=dataclasses.replace(cfg.task, omega_scale=0.08))
    tr = MetaTrainer(cfg)
    v0 = tr.validate(batches=2, tasks_per_batch=8)['val_loss']
    tr.train(80)
    v1 = tr.validate(batches=2, tasks_per_batch=8)['val_loss']
    assert v1 < 0.7 * v0


def test_checkpoint_round_trip_and_resume_is_deterministic(tmp_path) -> None:
    cfg = _tiny_cfg(lr=1e-2, pcm_in_loop=False)
    a = MetaTrainer(cfg)
    a.train(3)
    a.save(str(tmp_path / 'a'))
    w, meta = ckpt.load(tmp_path / 'a')
    assert meta['config_hash'] == C.config_hash(cfg)
    assert meta['iteration'] == 3
    assert w['trainee.w_rec'].shape == (6, 6)
    assert w['lsg.w_out'].shape == (6, 8)
    a.train(5)
    b = MetaTrainer(cfg)
    b.load(str(tmp_path / 'a'))
    b.train(5)
    for k, v in a.params.items():
        assert torch.equal(v, b.params[k]), k
    # a fresh trainer with the same seed reproduces the run exactly
    c = MetaTrainer(cfg)
    c.train(5)
    for k, v in a.params.items():
        assert torch.equal(v, c.params[k]), k
    other = dataclasses.replace(cfg, seed=7)
    with pytest.raises(CheckpointError, match='config hash'):
        MetaTrainer(other).load(str(tmp_path / 'a'))


def test_checkpoint_rejects_missing_keys_and_bad_version(tmp_path) -> None:
    with pytest.raises(CheckpointError, match='missing'):
        ckpt.save(tmp_path / 'x', {'trainee.w_in': np.zeros((2, 2))}, {})
    weights = {k: np.zeros((2, 2), np.float32) for k in ckpt.WEIGHT_KEYS}
    ckpt.save(tmp_path / 'y', weights, {'a': 1})
    meta_file = tmp_path / 'y' / ckpt.METADATA_FILE
    text = meta_file.read_text().replace('"format_version": 1', '"format_version": 99')
    meta_file.write_text(text)
    with pytest.raises(CheckpointError, match='format_version'):
        ckpt.load(tmp_path / 'y')
    with pytest.raises(CheckpointError, match='not a checkpoint'):
        ckpt.load(tmp_path / 'nothing')


def test_checkpoint_records_and_enforces_the_lsg_target_code(tmp_path) -> None:
    # the trainer records its code; loading selects it; no code, an unknown one or a different
    # one than the configuration feeds the LSG is an error, never a silent default
    from l2l_nmhw_ros.reach.episode import network_config

    cfg = _tiny_cfg(pcm_in_loop=False)
    assert cfg.lsg.target_code == 'workspace'
    a = MetaTrainer(cfg)
    a.save(str(tmp_path / 'a'))
    _, meta = ckpt.load(tmp_path / 'a')
    assert ckpt.target_code(meta) == 'workspace'
    paper = dataclasses.replace(cfg, lsg=dataclasses.replace(cfg.lsg, target_code='paper'))
    with pytest.raises(CheckpointError, match="trained with lsg.target_code 'workspace'"):
        MetaTrainer(paper).load(str(tmp_path / 'a'), strict_config=False)
    MetaTrainer(paper).load(str(tmp_path / 'a'), strict_config=False, same_target_code=False)
    # the nodes take the checkpoint's network sections, the code included
    merged, diffs = network_config(paper, meta)
    assert merged.lsg.target_code == 'workspace'
    assert "lsg.target_code: 'paper' -> 'workspace'" in diffs
    for bad in (None, 'gray'):
        meta_file = tmp_path / 'a' / ckpt.METADATA_FILE
        m = meta_file.read_text()
        broken = m.replace('"target_code": "workspace"',
                           '"target_code": "gray"' if bad else '"other": 0')
        assert broken != m
        (tmp_path / 'b').mkdir(exist_ok=True)
        (tmp_path / 'b' / ckpt.WEIGHTS_FILE).write_bytes(
            (tmp_path / 'a' / ckpt.WEIGHTS_FILE).read_bytes())
        (tmp_path / 'b' / ckpt.METADATA_FILE).write_text(broken)
        with pytest.raises(CheckpointError, match=f'target_code is {bad!r}'):
            ckpt.load(tmp_path / 'b')
        with pytest.raises(CheckpointError, match='target_code'):
            network_config(cfg, json.loads(broken))


def test_mixed_pcm_batch_splits_tasks_between_backends() -> None:
    # pcm_fraction 0.5 of 4 tasks: 2 through the PCM model (programming counts are devices),
    # 2 in software; the loss is that of the whole batch: the per-task terms averaged over the
    # 4 tasks, the firing-rate regularisers on the rates of all 4 (not per half)
    from l2l_nmhw_ros.l2l.meta import loss_terms, rate_reg

    cfg = _tiny_cfg(pcm_in_loop=True, pcm_fraction=0.5, pcm_read_noise_in_loop=False)
    tr = MetaTrainer(cfg)
    assert not tr.backend.cfg.read_noise
    tasks = make_tasks('reach', cfg.task, 4, np.random.default_rng(2))
    loss, parts = tr._adapt_loss(tasks, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    halves = [adapt(tr.trainee_weights(), tr.lsg_weights(), tasks.subset(0, 2), cfg,
                    backend=tr.backend, generator=gen),
              adapt(tr.trainee_weights(), tr.lsg_weights(), tasks.subset(2, 4), cfg,
                    backend=tr.soft_backend, generator=gen)]
    assert int(halves[0].n_programmed.min()) > int(halves[1].n_programmed.max())  # devices
    data = sum(float(loss_terms(r, tasks.subset(2 * i, 2 * i + 2), cfg)['data'].detach())
               for i, r in enumerate(halves)) / 4
    z_tr = torch.cat([torch.cat([r.learn.z, r.test.z], dim=0) for r in halves], dim=1)
    z_lsg = torch.cat([r.lsg_z for r in halves], dim=1)
    dt = cfg.task.dt
    reg = float((rate_reg(z_tr, cfg.trainee.rate_target, cfg.trainee.rate_reg, dt)
                 + rate_reg(z_lsg, cfg.lsg.rate_target, cfg.lsg.rate_reg, dt)).detach())
    assert reg > 1e-4  # the regulariser is part of the comparison
    assert float(loss.detach()) == pytest.approx(data + reg, rel=1e-6)
    assert parts['loss'] == pytest.approx(float(loss.detach()), rel=1e-6)
    # and not the mean of the two halves' own losses (regulariser per half)
    per_half = [outer_loss(r, tasks.subset(2 * i, 2 * i + 2), cfg)[1]['loss']
                for i, r in enumerate(halves)]
    assert abs(float(loss.detach()) - sum(per_half) / 2) > 1e-6


def test_final_position_term_of_the_reach_loss() -> None:
    # task_errors: final_distance is the last point's distance to the target's last point, and
    # final_sq the squared distance to that point averaged over the last `final_window` steps;
    # outer_loss adds loss_final_weight * final_sq (hand-computed on a 2-step, 1-task case)
    from l2l_nmhw_ros.l2l.meta import task_errors
    from l2l_nmhw_ros.l2l.tasks import TaskBatch

    q = torch.zeros(2, 1, 2, dtype=torch.float64)
    xyz = torch.tensor([[[1.0, 0.0, 0.0]], [[0.9, 0.0, 0.3]]], dtype=torch.float64)
    tasks = TaskBatch(torch.zeros(2, 1, 2, dtype=torch.float64), q, xyz,
                      torch.zeros(1, 2, dtype=torch.float64), ('t',))
    y = torch.zeros(2, 1, 2, dtype=torch.float64)
    y[1, 0, 0] = 10.0  # step 0 at home, step 1 with the base turned by 0.01 * 10 = 0.1 rad
    from l2l_nmhw_ros.arm.kinematics import forward_kinematics

    p0 = torch.as_tensor(forward_kinematics(np.zeros(2)))
    p1 = torch.as_tensor(forward_kinematics(np.array([0.1, 0.0])))
    d0, d1 = p0 - xyz[-1, 0], p1 - xyz[-1, 0]
    err = task_errors(y, tasks, 0.01, final_window=2)
    assert float(err['final_distance'][0]) == pytest.approx(float(d1.norm()))
    expect = 0.5 * float((d0 ** 2).sum() + (d1 ** 2).sum())
    assert float(err['final_sq'][0]) == pytest.approx(expect)
    assert float(task_errors(y, tasks, 0.01)['final_sq'][0]) == pytest.approx(
        float((d1 ** 2).sum()))

