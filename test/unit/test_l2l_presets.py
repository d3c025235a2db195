"""Presets: both load, keep the paper's trainee, and the paper preset is the paper code's setup."""

from __future__ import annotations

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.l2l.train_cli import preset_path


def test_presets_keep_trainee_and_paper_matches_paper_code() -> None:
    base = C.default_config_path()
    paper = C.load(base, preset_path('paper'))
    small = C.load(base, preset_path('small'))
    for cfg in (paper, small):
        assert (cfg.trainee.n_in, cfg.trainee.n_rec, cfg.trainee.n_out) == (5, 250, 2)
    assert paper.lsg.n_rec == 800 and paper.meta.batch_size == 90  # noqa: PT018
    assert paper.meta.iterations == 100000 and paper.meta.pcm_in_loop  # noqa: PT018
    assert paper.meta.families == ('brownian',)
    assert small.lsg.n_rec < paper.lsg.n_rec
