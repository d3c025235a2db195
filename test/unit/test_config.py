"""Configuration schema, strict loader and the YAML file agree."""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.errors import ConfigError


def _flat(d, prefix=''):
    for k, v in d.items():
        key = f'{prefix}{k}'
        if isinstance(v, dict):
            yield from _flat(v, key + '.')
        else:
            yield key, v


def test_yaml_equals_dataclass_defaults(repo_root):
    raw = yaml.safe_load((repo_root / 'config' / 'l2l_nmhw.yaml').read_text())
    params = raw['/**']['ros__parameters']
    defaults = C.to_dict(C.L2LConfig())
    assert dict(_flat(params)) == dict(_flat(defaults))


def test_every_float_in_yaml_has_a_decimal_point(repo_root):
    text = (repo_root / 'config' / 'l2l_nmhw.yaml').read_text()
    cfg = C.L2LConfig()
    floats = {k for k, v in _flat(C.to_dict(cfg)) if isinstance(v, float)}
    for line in text.splitlines():
        m = re.match(r'\s*(\w+): ([^#\[]+?)\s*(#|$)', line)
        if m and any(k.endswith('.' + m.group(1)) for k in floats):
            assert re.search(r'[.]', m.group(2)), line


def test_paper_defaults():
    cfg = C.load()
    assert cfg.pcm.g_max == 25.0
    assert cfg.pcm.delta_w_step == 1 / 16
    assert cfg.trainee.n_rec == 250 and cfg.trainee.v_th == 0.6 and cfg.trainee.tau_m == 0.020
    assert cfg.lsg.n_rec == 800 and cfg.lsg.v_th == 1.3 and cfg.lsg.beta == 1.6
    assert cfg.eprop.eta == 1e-4 and cfg.eprop.n_updates == 1
    assert cfg.meta.lr == 1.5e-3 and cfg.meta.batch_size == 90
    assert cfg.task.n_steps == 249


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / 'x.yaml'
    p.write_text('/**:\n  ros__parameters:\n    pcm:\n      g_maxx: 25.0\n')
    with pytest.raises(ConfigError, match=r"pcm\.g_maxx"):
        C.load(p)


def test_int_for_float_is_rejected_naming_the_key(tmp_path):
    p = tmp_path / 'x.yaml'
    p.write_text('/**:\n  ros__parameters:\n    pcm:\n      g_max: 25\n')
    with pytest.raises(ConfigError, match=r'pcm\.g_max: expected float, got int'):
        C.load(p)


def test_bounds_are_enforced_with_unit():
    with pytest.raises(ConfigError, match=r'pcm\.g_max = -1.0 \[µS\] is below'):
        C.PCMConfig(g_max=-1.0)
    with pytest.raises(ConfigError, match='not one of'):
        C.TaskConfig(family='nope')


def test_override_files_layer_in_order(tmp_path, repo_root):
    over = tmp_path / 'over.yaml'
    over.write_text('/**:\n  ros__parameters:\n    trainee:\n      v_th: 0.5\n')
    cfg = C.load(repo_root / 'config' / 'l2l_nmhw.yaml', over)
    assert cfg.trainee.v_th == 0.5
    assert cfg.trainee.tau_m == 0.020  # untouched values come from the base file


def test_overlay_keeps_the_base_config_and_limits_sections(tmp_path):
    # a checkpoint-like base that is not the default file: the overlay changes one key only
    base = dataclasses.replace(C.L2LConfig(), seed=7,
                               pcm=dataclasses.replace(C.PCMConfig(), n_devices=4))
    over = tmp_path / 'over.yaml'
    over.write_text('/**:\n  ros__parameters:\n    pcm:\n      read_noise: false\n')
    cfg = C.overlay(base, over, sections=('pcm',))
    assert cfg.pcm.read_noise is False and base.pcm.read_noise is True
    assert cfg.pcm.n_devices == 4 and cfg.seed == 7  # not the defaults (2, 42)
    assert dataclasses.replace(cfg, pcm=base.pcm) == base
    bad = tmp_path / 'bad.yaml'
    bad.write_text('/**:\n  ros__parameters:\n    trainee:\n      v_th: 0.5\n')
    with pytest.raises(ConfigError, match=r"may set only \['pcm'\], got \['trainee'\]"):
        C.overlay(base, bad, sections=('pcm',))
    assert C.overlay(base, bad).trainee.v_th == 0.5  # no restriction: any section
    with pytest.raises(FileNotFoundError, match='nope.yaml'):
        C.overlay(base, tmp_path / 'nope.yaml')


def test_config_hash_is_stable_and_sensitive():
    a = C.L2LConfig()
    b = dataclasses.replace(a, seed=43)
    assert C.config_hash(a) == C.config_hash(C.L2LConfig())
    assert C.config_hash(a) != C.config_hash(b)
    assert len(C.config_hash(a)) == 16


def test_presets_load(repo_root):
    for p in sorted((repo_root / 'config' / 'presets').glob('*.yaml')):
        C.load(repo_root / 'config' / 'l2l_nmhw.yaml', p)
