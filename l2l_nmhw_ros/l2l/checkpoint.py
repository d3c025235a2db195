"""Checkpoints in the project's own format: a folder with safetensors weights + JSON metadata.

Layout of a checkpoint folder::

    weights.safetensors       the 6 meta-learned tensors, float32, (n_post, n_pre):
                              trainee.w_in (250, 5), trainee.w_rec (250, 250),
                              trainee.w_out (2, 250), lsg.w_in (n_lsg, 53),
                              lsg.w_rec (n_lsg, n_lsg), lsg.w_out (250, n_lsg)
    metadata.json             format_version, config (nested dict; its ``lsg.target_code`` is
                              the LSG's binary code of the target and is required),
                              config_hash, git_revision, iteration, metrics, ... (anything JSON)
    train_state.safetensors   optional: optimizer moments and RNG states for resuming

Never pickle. Writes are atomic (temporary file + rename).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from safetensors.numpy import load_file, save_file

from l2l_nmhw_ros.config import TARGET_CODES
from l2l_nmhw_ros.errors import CheckpointError
from l2l_nmhw_ros.fileio import atomic_write

T = TypeVar('T')

__all__ = ['FORMAT_VERSION', 'NETWORKS', 'WEIGHT_KEYS', 'check_target_code', 'load',
           'load_train_state', 'network_weights', 'save', 'save_train_state', 'target_code']

FORMAT_VERSION = 1
WEIGHT_KEYS = ('trainee.w_in', 'trainee.w_rec', 'trainee.w_out', 'lsg.w_in', 'lsg.w_rec',
               'lsg.w_out')
WEIGHTS_FILE = 'weights.safetensors'
METADATA_FILE = 'metadata.json'
TRAIN_STATE_FILE = 'train_state.safetensors'
NETWORKS = ('trainee', 'lsg')


def network_weights(weights: Mapping[str, T], network: str) -> dict[str, T]:
    """Return one network's entries of checkpoint weights, keys without the prefix.

    ``network_weights({'trainee.w_in': a, 'lsg.w_in': b}, 'trainee') == {'w_in': a}``.

    Raises:
        ValueError: `network` is not one of :data:`NETWORKS`.
    """
    if network not in NETWORKS:
        raise ValueError(f'network: expected one of {list(NETWORKS)}, got {network!r}')
    prefix = network + '.'
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}


def target_code(metadata: Any, where: str = 'checkpoint') -> str:
    """Return the LSG target code a checkpoint was trained with (``config.lsg.target_code``).

    The code is part of what the LSG learnt (:func:`l2l_nmhw_ros.snn.encoding.encode_target`),
    so it is never guessed.

    Raises:
        CheckpointError: the metadata has no config, or no valid ``lsg.target_code`` in it.
    """
    cfg = metadata.get('config') if isinstance(metadata, dict) else None
    lsg = cfg.get('lsg') if isinstance(cfg, dict) else None
    code = lsg.get('target_code') if isinstance(lsg, dict) else None
    if code not in TARGET_CODES:
        raise CheckpointError(
            f'{where}: metadata config.lsg.target_code is {code!r}, expected one of '
            f'{list(TARGET_CODES)}; the LSG only works with the target code it was trained with '
            '(published weights: re-import them with `l2l-nmhw import-checkpoint`, which records '
            "'paper'; a checkpoint of this project trained before the code was recorded used "
            "'clamped')")
    return code


def check_target_code(metadata: Any, code: str, where: str = 'checkpoint') -> None:
    """Raise CheckpointError unless the checkpoint's target code (:func:`target_code`) is `code`,
    the code the caller's configuration would feed its LSG."""
    ck = target_code(metadata, where)
    if ck != code:
        raise CheckpointError(f'{where}: trained with lsg.target_code {ck!r}, but the '
                              f'configuration feeds its LSG {code!r}; set lsg.target_code: {ck} '
                              '(or use the configuration stored in the checkpoint)')


def save(path: str | Path, weights: dict[str, np.ndarray], metadata: dict[str, Any]) -> Path:
    """Write a checkpoint folder (weights + metadata); returns the folder.

    Args:
        path: checkpoint folder (created if missing).
        weights: the :data:`WEIGHT_KEYS` arrays (extra keys are kept too).
        metadata: JSON-serialisable dict; ``format_version`` is set here.

    Raises:
        CheckpointError: a weight key is missing or an array is not finite.
    """
    folder = Path(path)
    missing = [k for k in WEIGHT_KEYS if k not in weights]
    if missing:
        raise CheckpointError(f'checkpoint weights: missing {missing}')
    arrays = {}
    for k, v in weights.items():
        a = np.ascontiguousarray(np.asarray(v, dtype=np.float32))
        if not np.isfinite(a).all():
            raise CheckpointError(f'checkpoint weights: {k} has non-finite values')
        arrays[k] = a
    meta = dict(metadata)
    meta['format_version'] = FORMAT_VERSION
    text = json.dumps(meta, indent=2, sort_keys=True) + '\n'
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(arrays, tmp))
    atomic_write(folder / METADATA_FILE, lambda tmp: Path(tmp).write_text(text, encoding='utf-8'))
    return folder


def load(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint folder; returns (weights, metadata).

    Raises:
        CheckpointError: folder or files missing, unknown format version, missing keys, or a
            config without a valid ``lsg.target_code`` (:func:`target_code`).
    """
    folder = Path(path)
    wfile, mfile = folder / WEIGHTS_FILE, folder / METADATA_FILE
    if not wfile.is_file() or not mfile.is_file():
        raise CheckpointError(f'{folder}: not a checkpoint folder (needs {WEIGHTS_FILE} and '
                              f'{METADATA_FILE})')
    try:
        meta = json.loads(mfile.read_text(encoding='utf-8'))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f'{mfile}: invalid JSON ({exc})') from exc
    version = meta.get('format_version')
    if version != FORMAT_VERSION:
        raise CheckpointError(f'{folder}: format_version {version!r}, this code reads '
                              f'{FORMAT_VERSION}')
    if 'config' in meta:
        target_code(meta, str(folder))
    weights = load_file(str(wfile))
    missing = [k for k in WEIGHT_KEYS if k not in weights]
    if missing:
        raise CheckpointError(f'{wfile}: missing weights {missing}')
    return weights, meta


def save_train_state(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the resumable training state (optimizer moments, RNG states) beside the weights."""
    clean = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    atomic_write(Path(path) / TRAIN_STATE_FILE, lambda tmp: save_file(clean, tmp))


def load_train_state(path: str | Path) -> dict[str, np.ndarray] | None:
    """Return the training state of a checkpoint folder, or None when it has none."""
    f = Path(path) / TRAIN_STATE_FILE
    return load_file(str(f)) if f.is_file() else None
