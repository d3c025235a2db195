"""The shipped checkpoint: loads, has the contract shapes, one update helps on reach tasks."""

from __future__ import annotations

from l2l_nmhw_ros.l2l import checkpoint as ckpt
from l2l_nmhw_ros.l2l.evaluate import config_from_metadata, default_checkpoint, evaluate


def test_default_checkpoint_loads_with_contract_shapes() -> None:
    weights, meta = ckpt.load(default_checkpoint())
    cfg = config_from_metadata(meta)
    n_lsg = cfg.lsg.n_rec
    assert weights['trainee.w_in'].shape == (250, 5)
    assert weights['trainee.w_rec'].shape == (250, 250)
    assert weights['trainee.w_out'].shape == (2, 250)
    assert weights['lsg.w_in'].shape == (n_lsg, 53)
    assert weights['lsg.w_rec'].shape == (n_lsg, n_lsg)
    assert weights['lsg.w_out'].shape == (250, n_lsg)
    assert float(abs(weights['trainee.w_rec'].diagonal()).max()) == 0.0
    assert meta['format_version'] == ckpt.FORMAT_VERSION
    assert meta['config_hash']


def test_default_checkpoint_one_update_lowers_reach_error() -> None:
    # 8 unseen reach tasks, software rows only (a few seconds). The shipped model card reports
    # 200-task numbers; here only the direction is pinned, with a margin: after < 0.7 x before.
    weights, meta = ckpt.load(default_checkpoint())
    res = evaluate(weights, config_from_metadata(meta), 'reach', 8, rows=('before', 'software'))
    assert res['software']['xyz_mse'] < 0.7 * res['before']['xyz_mse']
