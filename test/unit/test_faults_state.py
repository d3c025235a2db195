"""Fault injection: a saved crossbar state that is corrupt, foreign or unreadable is refused with
one warning, kept aside under a new name, and the accelerator starts with the checkpoint weights
programmed afresh; checkpoint metadata of the wrong shape is a CheckpointError."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from test_graph_accelerator import N_REC, _cfg, _weights

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.errors import CheckpointError
from l2l_nmhw_ros.l2l import checkpoint as ckpt
from l2l_nmhw_ros.pcm.crossbar import Crossbar
from l2l_nmhw_ros.reach.accelerator import SIDECAR_VERSION, Accelerator

LOG = 'test_faults_state'


def _ckpt_weights(cfg: C.L2LConfig, seed: int = 0) -> dict[str, np.ndarray]:
    # an LSG readout of zeros: its bound keeps the accelerator from warning about a missing LSG
    return _weights(cfg, seed) | {'lsg.w_out': np.zeros((N_REC, cfg.lsg.n_rec), np.float32)}


def _accelerator(cfg: C.L2LConfig, weights: dict[str, np.ndarray], **kw: object) -> Accelerator:
    return Accelerator(cfg, weights, 10.0, seed=99, fast=False,
                       logger=logging.getLogger(LOG), **kw)


class Saved:
    """A device state saved by an accelerator that ran before the restart (another seed, and
    re-programmed once: nothing in it equals a fresh programming at t = 10 s with seed 99)."""

    def __init__(self, folder: Path) -> None:
        self.cfg = _cfg('paper_code')
        self.weights = _ckpt_weights(self.cfg)
        acc = Accelerator(self.cfg, self.weights, 0.0, seed=5, fast=False)
        acc.reset(3.0)
        self.acc = acc
        self.state = folder / 'pcm_state.safetensors'
        self.sidecar = folder / 'pcm_state.safetensors.json'
        acc.save(self.state)

    def sidecar_dict(self) -> dict:
        return json.loads(self.sidecar.read_text())

    def write_sidecar(self, **changes: object) -> None:
        self.sidecar.write_text(json.dumps(self.sidecar_dict() | changes))

    def rehash(self) -> None:
        """Make the sidecar's checksum match the (edited) state file again."""
        self.write_sidecar(state_sha256=hashlib.sha256(self.state.read_bytes()).hexdigest())

    def edit_arrays(self, edit: Callable[[dict[str, torch.Tensor]], None]) -> None:
        """Change the arrays of the state file (metadata kept) and re-hash: only the loader's
        own checks can catch what ``edit`` does."""
        with safe_open(str(self.state), framework='pt') as fh:
            meta = fh.metadata()
        tensors = load_file(str(self.state))
        edit(tensors)
        save_file(tensors, str(self.state), metadata=meta)
        self.rehash()

    def data_offset(self, key: str) -> int:
        """Byte offset of array ``key``'s data in the safetensors file."""
        raw = self.state.read_bytes()
        n = int.from_bytes(raw[:8], 'little')
        return 8 + n + json.loads(raw[8:8 + n])[key]['data_offsets'][0]


def _flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x40
    path.write_bytes(bytes(raw))


def _set(key: str, value: float, index: tuple[int, ...] = (0, 0, 0, 0)) -> Callable:
    def edit(t: dict[str, torch.Tensor]) -> None:
        t[key][index] = value
    return edit


def _first_set_device(s: Saved) -> int:
    """Flat index of a G+ device holding a non-zero conductance."""
    return int(torch.nonzero(s.acc.crossbar.state_dict()['g_prog'].reshape(-1))[0])


class _Trap:
    """Unpickling this creates a folder: proof that a loader ran pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.marker),))


def _pickle_payload(s: Saved) -> None:
    s.state.write_bytes(pickle.dumps(_Trap(s.state.parent / 'unpickled')))
    s.rehash()


def _npz_archive(s: Saved) -> None:
    with open(s.state, 'wb') as fh:
        np.savez(fh, g_prog=np.zeros(3), obj=np.array([{'a': 1}], dtype=object))
    s.rehash()


def _other_shape(s: Saved) -> None:
    Crossbar(s.cfg.pcm, 3, 4, 0).save(s.state)  # a well-formed state of another crossbar
    s.rehash()


def _other_pcm_config(s: Saved) -> None:
    xb = Crossbar(dataclasses.replace(s.cfg.pcm, g_max=20.0), s.acc.n_post, s.acc.n_pre, 0)
    xb.save(s.state)
    s.rehash()


def _g_on_padding(t: dict[str, torch.Tensor]) -> None:
    t['g_prog'][0, 0, -1, -1] = 1.0  # a padding device, never programmed


def _wrong_dtype(t: dict[str, torch.Tensor]) -> None:
    t['g_prog'] = t['g_prog'].double()


def _drop_nu(t: dict[str, torch.Tensor]) -> None:
    del t['nu']


# id: (corruption, words the warning must contain)
CASES: dict[str, tuple[Callable[[Saved], None], str]] = {
    # bytes changed behind the sidecar's back: the checksum catches them
    'flipped_byte_in_g': (lambda s: _flip(s.state, s.data_offset('g_prog')
                                          + 4 * _first_set_device(s) + 3), 'checksum mismatch'),
    'flipped_byte_in_header': (lambda s: _flip(s.state, 20), 'checksum mismatch'),
    'truncated_file': (lambda s: s.state.write_bytes(s.state.read_bytes()[:5000]),
                       'checksum mismatch'),
    'zero_length_file': (lambda s: s.state.write_bytes(b''), 'checksum mismatch'),
    'random_bytes': (lambda s: s.state.write_bytes(
        np.random.default_rng(0).bytes(s.state.stat().st_size)), 'checksum mismatch'),
    # content re-hashed (a buggy writer, an edit): the range checks catch it
    'nan_conductance': (lambda s: s.edit_arrays(_set('g_prog', float('nan'))),
                        "'g_prog' holds 1 non-finite"),
    'negative_g': (lambda s: s.edit_arrays(_set('g_prog', -3.0)), "'g_prog' spans [-3"),
    'g_1e38': (lambda s: s.edit_arrays(_set('g_prog', 1e38)), "'g_prog' spans"),
    'huge_t_prog': (lambda s: s.edit_arrays(_set('t_prog', 1e38)), "'t_prog' spans"),
    'nu_beyond_bound': (lambda s: s.edit_arrays(_set('nu', 5.0)), "'nu' spans"),
    'negative_program_count': (lambda s: s.edit_arrays(_set('program_counts', -1)),
                               "'program_counts' spans [-1"),
    'w_target_beyond_w_max': (lambda s: s.edit_arrays(_set('w_target', 7.0, (0, 0))),
                              "'w_target' spans"),
    'g_on_unprogrammed_device': (lambda s: s.edit_arrays(_g_on_padding), 'never programmed'),
    'wrong_dtype': (lambda s: s.edit_arrays(_wrong_dtype), "'g_prog' is (2, 2, 256, 256)"),
    'array_missing': (lambda s: s.edit_arrays(_drop_nu), "array 'nu' missing"),
    'other_shape': (_other_shape, 'expected n_post = 42'),
    'other_pcm_config': (_other_pcm_config, 'another pcm config (g_max: file 20.0'),
    'pickle_payload': (_pickle_payload, 'not a readable crossbar state file'),
    'npz_archive': (_npz_archive, 'not a readable crossbar state file'),
    # the sidecar
    'sidecar_missing': (lambda s: s.sidecar.unlink(), 'sidecar pcm_state.safetensors.json is '
                                                      'missing'),
    'sidecar_is_list': (lambda s: s.sidecar.write_text('[1, 2]'), 'holds a JSON list'),
    'sidecar_truncated_json': (lambda s: s.sidecar.write_text(s.sidecar.read_text()[:30]),
                               'not valid JSON'),
    'sidecar_binary_garbage': (lambda s: s.sidecar.write_bytes(b'\xff\xfe\x00garbage\x9c'),
                               'not valid JSON'),
    'sidecar_count_not_int': (lambda s: s.write_sidecar(devices_programmed_total='abc'),
                              "devices_programmed_total is 'abc', expected int"),
    'sidecar_negative_count': (lambda s: s.write_sidecar(devices_programmed_total=-5),
                               'devices_programmed_total -5 outside'),
    'sidecar_bad_checksum': (lambda s: s.write_sidecar(state_sha256='0' * 64),
                             'checksum mismatch'),
    'sidecar_old_format_without_checksum': (
        lambda s: s.sidecar.write_text(json.dumps({'weights_digest': s.acc.weights_digest,
                                                   'devices_programmed_total': 7})),
        "has no 'format_version'"),
    'foreign_weights': (lambda s: s.write_sidecar(weights_digest='0123456789abcdef'),
                        'belongs to other trainee weights'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_state_is_refused_kept_aside_and_reprogrammed(
        case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = Saved(tmp_path)
    corrupt, reason = CASES[case]
    corrupt(s)
    bad = {p.name: p.read_bytes() for p in (s.state, s.sidecar) if p.exists()}
    with caplog.at_level(logging.WARNING, logger=LOG):
        acc = _accelerator(s.cfg, s.weights, state_file=s.state)
    assert not acc.loaded_from_state
    # the crossbar holds the checkpoint weights, programmed afresh at t = 10 s
    fresh = _accelerator(s.cfg, s.weights)
    for key, value in fresh.crossbar.state_dict().items():
        assert torch.equal(acc.crossbar.state_dict()[key], value), key
    assert acc.devices_programmed_total == fresh.devices_programmed_total > 0
    # nothing lost: every bad file kept, byte for byte, under its moved-aside name
    assert not s.state.exists() and not s.sidecar.exists()
    kept = {p.name: p.read_bytes() for p in tmp_path.glob('pcm_state.safetensors*.rejected-*')}
    assert {re.sub(r'\.rejected-\d{8}T\d{6}Z$', '', n) for n in kept} == set(bad)
    assert sorted(kept.values()) == sorted(bad.values())
    # one warning names the file, the reason, what was moved and what happens now
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert str(s.state) in warnings[0] and reason in warnings[0], warnings[0]
    assert 'moved aside: pcm_state.safetensors -> pcm_state.safetensors.rejected-' in warnings[0]
    assert warnings[0].endswith('programming the checkpoint weights afresh')
    assert not (tmp_path / 'unpickled').exists()  # no loader ever ran pickle


def test_save_then_load_restores_the_state_bit_for_bit(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    s = Saved(tmp_path)
    sidecar = s.sidecar_dict()
    assert set(sidecar) == {'format_version', 'weights_digest', 'state_sha256',
                            'devices_programmed_total'}
    assert sidecar['format_version'] == SIDECAR_VERSION
    assert sorted(p.name for p in tmp_path.iterdir()) == [s.state.name, s.sidecar.name]
    with caplog.at_level(logging.WARNING, logger=LOG):
        acc = _accelerator(s.cfg, s.weights, state_file=s.state)
    assert acc.loaded_from_state and not caplog.records
    for key, value in s.acc.crossbar.state_dict().items():
        assert torch.equal(acc.crossbar.state_dict()[key], value), key
    # programmed at 0 s and again at 3 s: every write counted, as the devices' own counters say
    assert acc.devices_programmed_total == s.acc.devices_programmed_total == sidecar[
        'devices_programmed_total'] == int(acc.crossbar.program_counts.sum())
    assert acc.devices_programmed_total > _accelerator(s.cfg, s.weights).devices_programmed_total


def test_two_refusals_keep_both_files_and_a_new_save_loads(tmp_path: Path) -> None:
    s = Saved(tmp_path)
    for _ in range(2):  # within the same second: the second gets a -2 suffix, nothing overwritten
        s.acc.save(s.state)
        s.write_sidecar(devices_programmed_total='abc')
        acc = _accelerator(s.cfg, s.weights, state_file=s.state)
        assert not acc.loaded_from_state
    kept = sorted(p.name for p in tmp_path.glob('pcm_state.safetensors.rejected-*'))
    assert len(kept) == 2, kept
    acc.save(s.state)  # the fresh accelerator's state is saved where the bad one was
    assert _accelerator(s.cfg, s.weights, state_file=s.state).loaded_from_state


# ---- checkpoint metadata of the wrong shape -----------------------------------------------------

def _checkpoint(folder: Path) -> Path:
    cfg = C.L2LConfig()
    weights = {k: np.zeros((2, 2), np.float32) for k in ckpt.WEIGHT_KEYS}
    return ckpt.save(folder / 'ck', weights, {'config': C.to_dict(cfg), 'iteration': 3})


def _edit_meta(edit: Callable[[dict], object], *, wrap: bool = False) -> Callable[[Path], None]:
    """Edit a checkpoint's metadata.json in place (``wrap``: write ``[metadata]`` instead)."""
    def apply(folder: Path) -> None:
        f = folder / ckpt.METADATA_FILE
        meta = json.loads(f.read_text())
        edit(meta)
        f.write_text(json.dumps([meta] if wrap else meta))
    return apply


META_CASES = {
    'top_level_is_list': (_edit_meta(lambda m: None, wrap=True),
                          'metadata is a JSON list, expected an object'),
    'config_section_is_list': (_edit_meta(lambda m: m['config'].update(trainee=[6, 5])),
                               'metadata config.trainee is a list ([6, 5]), expected an object'),
    'config_section_is_string': (_edit_meta(lambda m: m['config'].update(lsg='paper')),
                                 "config.lsg is a str ('paper'), expected an object"),
    'config_is_string': (_edit_meta(lambda m: m.update(config='default')),
                         "metadata config is a str ('default'), expected an object"),
    'iteration_is_string': (_edit_meta(lambda m: m.update(iteration='3')),
                            "metadata iteration is a str ('3'), expected an integer"),
    'iteration_is_bool': (_edit_meta(lambda m: m.update(iteration=True)),
                          'metadata iteration is a bool'),
    'format_version_missing': (_edit_meta(lambda m: m.pop('format_version')),
                               'metadata has no format_version'),
    'history_tail_is_dict': (_edit_meta(lambda m: m.update(history_tail={})),
                             'history_tail is a dict'),
    'metadata_not_utf8': (lambda f: (f / ckpt.METADATA_FILE).write_bytes(b'{"\xff": 1}'),
                          'invalid JSON'),
}


@pytest.mark.parametrize('case', list(META_CASES))
def test_checkpoint_metadata_of_the_wrong_shape_is_a_checkpoint_error(case: str,
                                                                      tmp_path: Path) -> None:
    folder = _checkpoint(tmp_path)
    edit, message = META_CASES[case]
    edit(folder)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        ckpt.load(folder)


def test_deployment_sees_a_checkpoint_error_not_an_attribute_error(tmp_path: Path) -> None:
    # the deployment path (network sections from the checkpoint) used to call .items() on it
    from l2l_nmhw_ros.reach.episode import load_checkpoint

    folder = _checkpoint(tmp_path)
    _edit_meta(lambda m: m['config'].update(task='x'))(folder)
    cfg = C.from_dict({'control': {'checkpoint': str(folder)}})
    with pytest.raises(CheckpointError, match='config.task is a str'):
        load_checkpoint(cfg)
