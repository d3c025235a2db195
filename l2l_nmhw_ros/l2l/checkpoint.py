"""Checkpoints in the project's own format: a folder with safetensors weights + JSON metadata.

Layout of a checkpoint folder::

    weights.safetensors       the 6 meta-learned tensors, float32, (n_post, n_pre):
                              trainee.w_in (250, 5), trainee.w_rec (250, 250),
                              trainee.w_out (2, 250), lsg.w_in (n_lsg, 53),
                              lsg.w_rec (n_lsg, n_lsg), lsg.w_out (250, n_lsg)
                              (250 + n_out rows with eprop.update_w_out)
    metadata.json             format_version, config (nested dict; its ``lsg.target_code`` is
                              the LSG's binary code of the target and is required),
                              config_hash, git_revision, iteration, metrics, files_sha256,
                              ... (anything JSON; the known keys are type-checked on load,
                              see :data:`METADATA_TYPES`)
    train_state.safetensors   optional: optimizer moments and RNG states for resuming

Never pickle. Every file is written atomically (temporary file + rename), metadata.json last: it
is the commit record and holds the SHA-256 of the files written with it (``files_sha256``), so a
save cut short between two files (power loss, a killed process) is refused on load
(:class:`~l2l_nmhw_ros.errors.CheckpointError`) instead of mixing two iterations. Metadata of
the wrong shape (a list instead of an object, a config section that is not an object, a known
key of another type) is a ``CheckpointError`` too, never an ``AttributeError`` later.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from l2l_nmhw_ros.config import TARGET_CODES, L2LConfig, to_dict
from l2l_nmhw_ros.errors import CheckpointError
from l2l_nmhw_ros.fileio import atomic_write, sha256_file

T = TypeVar('T')

__all__ = ['FORMAT_VERSION', 'METADATA_TYPES', 'NETWORKS', 'WEIGHT_KEYS', 'check_metadata',
           'check_target_code', 'load',
           'load_train_state', 'network_weights', 'save', 'save_train_state', 'target_code']

FORMAT_VERSION = 1
WEIGHT_KEYS = ('trainee.w_in', 'trainee.w_rec', 'trainee.w_out', 'lsg.w_in', 'lsg.w_rec',
               'lsg.w_out')
WEIGHTS_FILE = 'weights.safetensors'
METADATA_FILE = 'metadata.json'
TRAIN_STATE_FILE = 'train_state.safetensors'
NETWORKS = ('trainee', 'lsg')
#: JSON types of the metadata keys this package reads (each optional except format_version;
#: ``bool`` does not count as ``int``). Other keys are kept as they are.
METADATA_TYPES: dict[str, type] = {'format_version': int, 'config': dict, 'config_hash': str,
                                   'iteration': int, 'history_tail': list, 'metrics': dict,
                                   'git_revision': str, 'train': dict, 'files_sha256': dict}


def check_metadata(meta: Any, where: str = 'checkpoint') -> dict[str, Any]:
    """Return checkpoint metadata after checking its shape and the types of its known keys.

    Checked: a JSON object at the top level; ``format_version`` present and an int; every key
    of :data:`METADATA_TYPES` present is of its type (``iteration`` ≥ 0); every section of
    ``config`` that is a section of :class:`~l2l_nmhw_ros.config.L2LConfig` (``pcm``,
    ``trainee``, ...) is an object; ``files_sha256`` maps file names to 64 hex digits. Values
    inside the sections are the config loader's business (``ConfigError``).

    Raises:
        CheckpointError: the first check that fails, naming the key, what it is and what is
            expected.
    """
    if not isinstance(meta, dict):
        raise CheckpointError(f'{where}: metadata is a JSON {type(meta).__name__}, expected an '
                              'object')
    if 'format_version' not in meta:
        raise CheckpointError(f'{where}: metadata has no format_version')
    for key, kind in METADATA_TYPES.items():
        if key not in meta:
            continue
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise CheckpointError(f'{where}: metadata {key} is a {type(value).__name__} '
                                  f'({_short(value)}), expected {_JSON_NAMES[kind]}')
    if meta.get('iteration', 0) < 0:
        raise CheckpointError(f'{where}: metadata iteration is {meta["iteration"]}, expected '
                              '>= 0')
    sections = {k for k, v in to_dict(L2LConfig()).items() if isinstance(v, dict)}
    for key, value in meta.get('config', {}).items():
        if key in sections and not isinstance(value, dict):
            raise CheckpointError(f'{where}: metadata config.{key} is a {type(value).__name__} '
                                  f'({_short(value)}), expected an object')
    for name, digest in meta.get('files_sha256', {}).items():
        if not isinstance(digest, str) or not re.fullmatch('[0-9a-f]{64}', digest):
            raise CheckpointError(f'{where}: metadata files_sha256.{name} is {_short(digest)}, '
                                  'expected 64 hex digits')
    return meta


_JSON_NAMES = {int: 'an integer', str: 'a string', dict: 'an object', list: 'a list'}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + '...'


def _check_file(folder: Path, name: str, meta: Mapping[str, Any]) -> None:
    """Raise CheckpointError when ``folder/name`` differs from the SHA-256 the metadata records
    for it (nothing recorded: nothing to check)."""
    want = meta.get('files_sha256', {}).get(name)
    if want is not None and sha256_file(folder / name) != want:
        raise CheckpointError(f'{folder / name}: content differs from the SHA-256 recorded in '
                              f'{METADATA_FILE}: the checkpoint was not written completely (a '
                              'save cut short) or was changed since')


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


def save(path: str | Path, weights: dict[str, np.ndarray], metadata: dict[str, Any], *,
         train_state: dict[str, np.ndarray] | None = None) -> Path:
    """Write a checkpoint folder (train state, weights, then metadata); returns the folder.

    Each file is written atomically; metadata.json comes last and records the SHA-256 of the
    others (``files_sha256``), so a save cut short leaves either the old metadata (and
    :func:`load` refuses the new files it does not match) or a complete new checkpoint.

    Args:
        path: checkpoint folder (created if missing).
        weights: the :data:`WEIGHT_KEYS` arrays (extra keys are kept too).
        metadata: JSON-serialisable dict; ``format_version`` and ``files_sha256`` are set here.
        train_state: resumable training state (:data:`TRAIN_STATE_FILE`), written first.

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
    files = {}
    if train_state is not None:
        save_train_state(folder, train_state)
        files[TRAIN_STATE_FILE] = sha256_file(folder / TRAIN_STATE_FILE)
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(arrays, tmp))
    files[WEIGHTS_FILE] = sha256_file(folder / WEIGHTS_FILE)
    meta['files_sha256'] = files
    text = json.dumps(meta, indent=2, sort_keys=True) + '\n'
    atomic_write(folder / METADATA_FILE, lambda tmp: Path(tmp).write_text(text, encoding='utf-8'))
    return folder


def _read_metadata(folder: Path) -> tuple[Path, dict[str, Any]]:
    """Return (path, checked content) of a folder's metadata.json; CheckpointError if bad."""
    mfile = folder / METADATA_FILE
    try:
        meta = json.loads(mfile.read_bytes().decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f'{mfile}: invalid JSON ({exc})') from exc
    except OSError as exc:
        raise CheckpointError(f'{mfile}: unreadable ({exc})') from exc
    return mfile, check_metadata(meta, str(mfile))


def load(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint folder; returns (weights, metadata).

    Raises:
        CheckpointError: folder or files missing, metadata not UTF-8 JSON or of the wrong shape
            (:func:`check_metadata`), unknown format version, a file that differs from the
            SHA-256 the metadata records (a torn save), unreadable weights, missing keys, or a
            config without a valid ``lsg.target_code`` (:func:`target_code`).
    """
    folder = Path(path)
    wfile, mfile = folder / WEIGHTS_FILE, folder / METADATA_FILE
    if not wfile.is_file() or not mfile.is_file():
        raise CheckpointError(f'{folder}: not a checkpoint folder (needs {WEIGHTS_FILE} and '
                              f'{METADATA_FILE})')
    _, meta = _read_metadata(folder)
    version = meta['format_version']
    if version != FORMAT_VERSION:
        raise CheckpointError(f'{folder}: format_version {version!r}, this code reads '
                              f'{FORMAT_VERSION}')
    if 'config' in meta:
        target_code(meta, str(folder))
    _check_file(folder, WEIGHTS_FILE, meta)
    try:
        weights = load_file(str(wfile))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f'{wfile}: unreadable ({exc})') from exc
    missing = [k for k in WEIGHT_KEYS if k not in weights]
    if missing:
        raise CheckpointError(f'{wfile}: missing weights {missing}')
    return weights, meta


def save_train_state(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the resumable training state (optimizer moments, RNG states) beside the weights."""
    clean = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    atomic_write(Path(path) / TRAIN_STATE_FILE, lambda tmp: save_file(clean, tmp))


def load_train_state(path: str | Path) -> dict[str, np.ndarray] | None:
    """Return the training state of a checkpoint folder, or None when it has none.

    Raises:
        CheckpointError: the file differs from the SHA-256 the folder's metadata (when there is
            one) records for it, or is unreadable.
    """
    folder = Path(path)
    f = folder / TRAIN_STATE_FILE
    if not f.is_file():
        return None
    if (folder / METADATA_FILE).is_file():
        _check_file(folder, TRAIN_STATE_FILE, _read_metadata(folder)[1])
    try:
        return load_file(str(f))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f'{f}: unreadable ({exc})') from exc
