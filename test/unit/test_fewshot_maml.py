"""MAML inner loop of the few-shot CNN (l2l_nmhw_ros.fewshot.maml, .pcm, .train).

The closed-form readout gradient must equal autograd's; the float inner loop must equal plain SGD
with autograd gradients; the 1/16-grid and PCM variants must write updates on the grid and only
on the changed entries; the meta-gradient through the inner loop must match finite differences;
a resumed meta-training must equal an uninterrupted one.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from l2l_nmhw_ros.config import PCMConfig
from l2l_nmhw_ros.errors import CheckpointError, ShapeError
from l2l_nmhw_ros.fewshot import maml as ML
from l2l_nmhw_ros.fewshot import pcm as FP
from l2l_nmhw_ros.fewshot import train as T
from l2l_nmhw_ros.fewshot.data import CharacterSet
from l2l_nmhw_ros.fewshot.model import CNNWeights, readout_logits
from l2l_nmhw_ros.pcm import PCMModel


def _task(seed: int, e: int = 3, n: int = 10, c: int = 7, k: int = 5, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(e, n, c, generator=g, dtype=dtype)
    w = 0.3 * torch.randn(e, k, c, generator=g, dtype=dtype)
    y = torch.randint(0, k, (e, n), generator=g)
    return f, w, y


def test_readout_grad_equals_autograd() -> None:
    f, w, y = _task(0)
    w = w.requires_grad_(True)
    z = readout_logits(f, w)
    ML.cross_entropy(z, y).sum().backward()
    g = ML.readout_grad(f, z.detach(), y)
    assert g.shape == w.shape
    assert torch.allclose(g, w.grad, atol=1e-6)
    with pytest.raises(ShapeError):
        ML.readout_grad(f, z.detach(), y[:, :3])


def test_float_inner_loop_equals_sgd_with_autograd() -> None:
    f, w0, y = _task(1)
    model = PCMModel(FP.variant_config('float', PCMConfig()))
    res = ML.inner_loop(lambda s: f, w0, y, model, steps=4, lr=0.1)
    w = w0.clone()
    losses = []
    for _ in range(4):
        w.requires_grad_(True)
        loss = ML.cross_entropy(readout_logits(f, w), y)
        losses.append(loss.detach())
        (gw,) = torch.autograd.grad(loss.sum(), w)
        w = (w - 0.1 * gw).detach()
    assert torch.allclose(res.w_out, w, atol=1e-6)
    assert torch.allclose(torch.stack(res.losses), torch.stack(losses), atol=1e-6)
    assert bool((res.losses[-1] < res.losses[0]).all())  # 4 steps lower the support loss


def test_grid_inner_loop_updates_on_the_1_16_grid() -> None:
    f, w0, y = _task(2)
    f = 3.0 * f  # gradients large enough that some rounded updates are non-zero
    model = PCMModel(FP.variant_config('grid', PCMConfig()))
    res = ML.inner_loop(lambda s: f, w0, y, model, generator=torch.Generator().manual_seed(0))
    steps16 = (res.w_out - w0) * 16
    assert torch.allclose(steps16, steps16.round(), atol=1e-5)
    changed = int(((res.w_out - w0).abs() > 1e-7).sum())
    assert changed > 0
    # every changed weight was written at least once, N = 2 devices per write
    assert int(res.devices.sum()) >= 2 * changed
    assert int(res.devices.sum()) % 2 == 0


def test_meta_gradient_through_inner_loop_matches_finite_differences() -> None:
    f, w0, y = _task(3, e=1, n=6, c=4, k=3, dtype=torch.float64)
    fq, _, yq = _task(4, e=1, n=6, c=4, k=3, dtype=torch.float64)
    model = PCMModel(FP.variant_config('float', PCMConfig()))

    def query_loss(w: torch.Tensor) -> torch.Tensor:
        res = ML.inner_loop(lambda s: f, w, y, model, steps=4, lr=0.5)
        return ML.cross_entropy(readout_logits(fq, res.w_out), yq).sum()

    w = w0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(query_loss(w), w)
    fd = torch.zeros_like(w0)
    h = 1e-6
    for idx in np.ndindex(*w0.shape):
        wp, wm = w0.clone(), w0.clone()
        wp[idx] += h
        wm[idx] -= h
        fd[idx] = (query_loss(wp) - query_loss(wm)) / (2 * h)
    assert torch.allclose(g, fd, atol=1e-7)
    # second-order terms matter: the first-order (no gradient through the inner updates)
    # approximation differs
    wf = w0.clone().requires_grad_(True)
    res = ML.inner_loop(lambda s: f, wf.detach(), y, model, steps=4, lr=0.5)
    w_first = wf + (res.w_out - wf).detach()
    (g1,) = torch.autograd.grad(ML.cross_entropy(readout_logits(fq, w_first), yq).sum(), wf)
    assert float((g1 - g).abs().max()) > 1e-3


def _tiny_weights(seed: int = 0) -> CNNWeights:
    return CNNWeights.glorot(torch.Generator().manual_seed(seed), channels=8, ways=3)


def _images(seed: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g)


def test_pcm_learn_reprograms_only_changed_readout_entries() -> None:
    w = _tiny_weights()
    clf = FP.FewShotClassifier(w, FP.variant_config('pcm', PCMConfig()),
                               generator=torch.Generator().manual_seed(1))
    kernels_before = [k.clone() for k in clf._kernels]
    clf.reset_readout()
    x, y = _images(5, 9), torch.arange(3).repeat_interleave(3)
    # learn() redeploys the readout first with the same generator state: replay it
    state = clf.generator.get_state()
    rep = clf.learn(x, y)
    clf.generator.set_state(state)
    w_dep = clf.model.deploy(w.readout, clf.generator)
    changed = int((clf.w_out != w_dep).sum())
    assert 0 < changed < w.readout.numel()  # masked re-programming: most entries untouched
    assert rep.devices >= 2 * changed
    assert all(torch.equal(a, b) for a, b in zip(kernels_before, clf._kernels, strict=True))
    cls, conf = clf.predict(_images(6, 6))
    assert cls.shape == (6,) and cls.dtype == torch.int64
    assert bool(((conf > 1 / 3 - 1e-6) & (conf <= 1)).all())
    with pytest.raises(ValueError, match='labels'):
        clf.learn(x, y + 5)


def test_float_classifier_features_equal_exact_network() -> None:
    from l2l_nmhw_ros.fewshot.model import features

    w = _tiny_weights(2)
    clf = FP.FewShotClassifier(w, FP.variant_config('float', PCMConfig()))
    x = _images(7, 5)
    assert torch.equal(clf.features(x, 'batch'), features(x, w.kernels, 'batch'))
    # PCM without any noise source: the im2col MVM path equals the exact one
    quiet = dataclasses.replace(PCMConfig(), prog_noise=False, drift=False, read_noise=False,
                                deploy_jitter=0.0)
    clf_q = FP.FewShotClassifier(w, quiet)
    assert torch.allclose(clf_q.features(x, 'batch'), features(x, w.kernels, 'batch'),
                          atol=1e-4)


def test_accuracy_interval_student_t() -> None:
    # 4 episodes (0.6, 0.8, 0.8, 1.0): mean 0.8, s = 0.16330, t(0.975, 3) = 3.18245
    m, lo, hi = FP.accuracy_interval(np.array([0.6, 0.8, 0.8, 1.0]), bounds=(-9.0, 9.0))
    assert m == pytest.approx(0.8)
    assert hi - m == pytest.approx(3.182446 * 0.1632993 / 2, rel=1e-5)
    assert m - lo == pytest.approx(hi - m)
    # clipped to [0, 1] (a t interval can leave it for few episodes)
    m, lo, hi = FP.accuracy_interval(np.array([1.0, 1.0, 0.6]))
    assert hi == 1.0 and lo == pytest.approx(0.86667 - 4.302653 * 0.23094 / 3 ** 0.5, rel=1e-4)
    d = FP.accuracy_interval(np.array([-0.2, 0.0, -0.4]), bounds=(-1.0, 1.0))
    assert d[0] == pytest.approx(-0.2) and d[1] < -0.2 < d[2] < 1.0


def _synthetic_chars() -> CharacterSet:
    g = torch.Generator().manual_seed(0)
    imgs = tuple(torch.rand(4, 28, 28, generator=g) for _ in range(6))
    return CharacterSet(tuple(f'A/c{i}' for i in range(6)), imgs)


def test_meta_training_resumes_exactly(tmp_path) -> None:
    chars = _synthetic_chars()
    s = T.TrainSettings(iterations=4, batch=2, ways=3, shots=2, queries=2, channels=4,
                        checkpoint_every=2)
    a = T.meta_train(chars, tmp_path / 'a', s, progress=False)
    s2 = dataclasses.replace(s, iterations=2)
    T.meta_train(chars, tmp_path / 'b', s2, progress=False)
    b = T.meta_train(chars, tmp_path / 'b', s, progress=False)  # resumes at 2
    wa, ma = T.load_weights(a)
    wb, mb = T.load_weights(b)
    assert ma['iteration'] == mb['iteration'] == 4
    for x, z in zip((*wa.kernels, wa.readout), (*wb.kernels, wb.readout), strict=True):
        assert torch.equal(x, z)
    init = CNNWeights.glorot(torch.Generator().manual_seed(0), 4, 3)
    assert not torch.equal(wa.readout, init.readout)  # training changed the weights
    with pytest.raises(CheckpointError, match='other settings'):
        T.meta_train(chars, b, dataclasses.replace(s, lr=0.5), progress=False)
    (b / 'train_state.safetensors').unlink()  # a shipped checkpoint: weights only
    with pytest.raises(CheckpointError, match='without a train state'):
        T.meta_train(chars, b, dataclasses.replace(s, iterations=6), progress=False)
    assert T.load_weights(b)[1]['iteration'] == 4  # untouched
