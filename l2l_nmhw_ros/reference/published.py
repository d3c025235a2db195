"""Import of the paper authors' published checkpoints without TensorFlow and without running code.

The official code of Ortner et al., Nat. Commun. 16 (2025)
(github.com/IGITUGraz/RapidLearningInMemoryComputing, Apache-2.0) ships its meta-trained weights
as pickles of TensorFlow variables: each variable is ``functools.partial(ResourceVariable)`` with
the keyword arguments ``initial_value`` (a numpy array), ``trainable``, ``name``,
``dtype = tensorflow.python.framework.dtypes.as_dtype('float32')``, ``constraint`` and
``distribute_strategy``, and the arrays are rebuilt by numpy's reconstructors
(``numpy.core.numeric._frombuffer``, or ``numpy.core.multiarray._reconstruct`` + ``ndarray``
state). ``pickle.load`` would import TensorFlow and execute whatever callables the file names.

This module reads them in two passes, neither of which executes anything the file names:

1. **Static scan** (:func:`scan_pickle`): every opcode is walked with :mod:`pickletools` and the
   pickle machine's stack is simulated just far enough to resolve the name behind every
   ``GLOBAL``/``INST``/``STACK_GLOBAL``. A name outside :data:`ALLOWED_GLOBALS`, a
   ``STACK_GLOBAL`` whose operands are not literal strings, and the opcodes that reach outside
   the stream (persistent ids ``PERSID``/``BINPERSID``, the copyreg extension registry
   ``EXT1/2/4``, out-of-band buffers) are refused with :class:`CheckpointError` naming
   ``module.name`` — before a single opcode has been executed.
2. **Restricted load** (:class:`RestrictedUnpickler`): a ``pickle.Unpickler`` whose
   ``find_class`` maps each allowed name to a harmless stand-in of this module (defence in
   depth: it refuses everything else too) and whose ``persistent_load`` refuses.

The stand-ins: ``functools.partial`` → :class:`RecordedPartial` (records the function, its
arguments and state; calling it never calls the function, it only builds a
:class:`PublishedVariable` record when the function is the ResourceVariable stand-in);
``ResourceVariable`` → :class:`ResourceVariableStandIn` (a marker, never instantiated);
``as_dtype`` → :class:`TFDType` (records the name); the numpy reconstructors → small wrappers
of this module around ``np.frombuffer`` / an empty ``np.ndarray`` that refuse object dtypes (numpy
itself fills the array from the bytes in the file with ``ndarray.__setstate__``).

:func:`convert_robot` and :func:`convert_omniglot` turn the variables into the project's
(n_post, n_pre) convention; :func:`import_checkpoint` writes them as a project checkpoint folder
(robot: :func:`l2l_nmhw_ros.l2l.checkpoint.save`; Omniglot: the same folder layout, see
:func:`save_omniglot`), with the source file's SHA-256, the source repository and its licence in
the metadata.

References: Ortner et al. 2025; paper-notes §2.3 (checkpoint statistics); Python docs,
"Restricting Globals" (pickle).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import pickle
import pickletools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from l2l_nmhw_ros.config import L2LConfig, config_hash, to_dict
from l2l_nmhw_ros.errors import CheckpointError, ShapeError
from l2l_nmhw_ros.fileio import atomic_write

__all__ = [
    'ALLOWED_GLOBALS', 'KNOWN_SOURCES', 'OMNIGLOT_KEYS', 'ROBOT_KEYS', 'SOURCE_LICENSE',
    'PUBLISHED_TARGET_CODE', 'SOURCE_REPOSITORY', 'PublishedCheckpoint', 'PublishedVariable',
    'RecordedPartial', 'ResourceVariableStandIn', 'RestrictedUnpickler', 'TFDType',
    'convert_omniglot', 'convert_robot', 'detect_kind', 'import_checkpoint', 'load_omniglot',
    'read_published', 'save_omniglot', 'scan_pickle', 'weight_statistics',
]

SOURCE_REPOSITORY = 'https://github.com/IGITUGraz/RapidLearningInMemoryComputing'
SOURCE_COMMIT = 'cc689bdf89833e6c765a35fa0f31b9b153b59f9c'
SOURCE_LICENSE = 'Apache-2.0'
IMPORT_FORMAT = 'l2l_nmhw_ros.published/1'
#: The LSG target code of the published robot weights (authors' ``int64(float32(c + 1) 2^15)``).
PUBLISHED_TARGET_CODE = 'paper'

# SHA-256 of the two files of the official repository (HEAD cc689bd), with their path there.
KNOWN_SOURCES: dict[str, tuple[str, str]] = {
    '9df7104628549bd4aac5b268a7f47428da9493ef38174593b3b6c89fbecbdf1c':
        ('robot', 'online_learning_robot/checkpoints/pretrained-weights.pickle'),
    '5eef10c1d36e209c98e3a411883319a6bfe2f98af338afcea602032110522dba':
        ('omniglot', 'few_shot_image_classification/checkpoints/pretrained-weights.pickle'),
}

# published name -> (our key, transpose to (n_post, n_pre)); shapes in the file are (n_pre, n_post)
ROBOT_KEYS: dict[str, str] = {
    'W_in_trainee': 'trainee.w_in', 'W_rec_trainee': 'trainee.w_rec',
    'W_out_trainee': 'trainee.w_out', 'W_in_lsg': 'lsg.w_in', 'W_rec_lsg': 'lsg.w_rec',
    'W_out_lsg': 'lsg.w_out',
}
# Omniglot CNN: conv kernels TF (kh, kw, c_in, c_out) -> (c_out, c_in, kh, kw) (torch conv2d and
# n_post-first), dense readout (n_features, n_classes) -> (n_classes, n_features).
OMNIGLOT_KEYS: dict[str, str] = {
    'kernel1': 'omniglot.kernel1', 'kernel2': 'omniglot.kernel2', 'kernel3': 'omniglot.kernel3',
    'kernel4': 'omniglot.kernel4', 'kernel5': 'omniglot.kernel5',
}
OMNIGLOT_MODEL = 'omniglot_cnn'
ROBOT_MODEL = 'robot'

# Largest pickle accepted [bytes]: the robot file is 3.8 MB; this bounds memory use.
MAX_PICKLE_BYTES = 256 * 1024 * 1024
# Opcodes that reach outside the byte stream (persistent ids, copyreg extension registry,
# out-of-band buffers): never needed by the published files, always refused.
FORBIDDEN_OPCODES = frozenset({'PERSID', 'BINPERSID', 'EXT1', 'EXT2', 'EXT4', 'NEXT_BUFFER',
                               'READONLY_BUFFER'})
_STRING_OPCODES = frozenset({'STRING', 'BINSTRING', 'SHORT_BINSTRING', 'UNICODE',
                             'SHORT_BINUNICODE', 'BINUNICODE', 'BINUNICODE8'})
_NUMERIC_KINDS = frozenset('biufc')
# TensorFlow dtype names the stand-in accepts (the published files use float32 only).
_TF_DTYPES = {'float16': np.float16, 'float32': np.float32, 'float64': np.float64,
              'int32': np.int32, 'int64': np.int64}
_VARIABLE_KWARGS = frozenset({'initial_value', 'trainable', 'name', 'dtype', 'constraint',
                              'distribute_strategy'})


# ---- stand-ins ---------------------------------------------------------------------------------

class ResourceVariableStandIn:
    """Marker standing in for ``tensorflow...ResourceVariable``; refuses to be instantiated."""

    def __new__(cls, *args: Any, **kwargs: Any) -> ResourceVariableStandIn:  # noqa: D102
        raise CheckpointError('the pickle calls ResourceVariable directly; the published files '
                              'only wrap it in functools.partial')


@dataclasses.dataclass(frozen=True)
class TFDType:
    """Record of ``tensorflow.python.framework.dtypes.as_dtype(name)``: only the name."""

    name: str

    @classmethod
    def from_pickle(cls, name: Any) -> TFDType:
        """Stand-in for ``as_dtype``: check `name` is a known dtype name and record it.

        Raises:
            CheckpointError: `name` is not one of the plain numeric TensorFlow dtype names.
        """
        if not isinstance(name, str) or name not in _TF_DTYPES:
            raise CheckpointError(f'as_dtype({name!r}): not a numeric TensorFlow dtype name')
        return cls(name)


@dataclasses.dataclass(frozen=True)
class PublishedVariable:
    """The recorded keyword arguments of one pickled TensorFlow variable.

    Attributes:
        name: the TensorFlow variable name (e.g. ``input_weights_trainee``).
        value: ``initial_value``, the array as stored (TensorFlow layout, (n_pre, n_post)).
        trainable: the ``trainable`` flag.
        dtype: the ``dtype`` name (``float32``).
    """

    name: str
    value: np.ndarray
    trainable: bool
    dtype: str


class RecordedPartial:
    """Stand-in for ``functools.partial`` that records and never calls its function.

    The pickle protocol builds a partial as ``partial(func)`` then ``__setstate__((func, args,
    kwargs, namespace))`` and finally calls it with ``()``. Calling this record returns a
    :class:`PublishedVariable` built from the recorded keyword arguments when the function is
    :class:`ResourceVariableStandIn`, and raises otherwise.
    """

    def __init__(self, func: Any = None, *args: Any, **kwargs: Any) -> None:
        self.func = func
        self.args = tuple(args)
        self.kwargs = dict(kwargs)
        self.namespace: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        """Record ``(func, args, kwargs, namespace)`` as ``functools.partial`` pickles it.

        Raises:
            CheckpointError: the state does not have that form.
        """
        if not isinstance(state, tuple) or len(state) != 4:
            raise CheckpointError(f'functools.partial state: expected a 4-tuple, got '
                                  f'{type(state).__name__}')
        func, args, kwargs, namespace = state
        if not isinstance(args, tuple) or not isinstance(kwargs, (dict, type(None))) \
                or not isinstance(namespace, (dict, type(None))):
            raise CheckpointError('functools.partial state: malformed (args, kwargs, namespace)')
        self.func, self.args = func, args
        self.kwargs = dict(kwargs or {})
        self.namespace = dict(namespace or {})

    def __call__(self, *args: Any, **kwargs: Any) -> PublishedVariable:
        """Return the recorded variable; calls nothing.

        Raises:
            CheckpointError: the function is not the ResourceVariable stand-in, positional
                arguments are present, or the keyword arguments are not those of a variable.
        """
        if self.func is not ResourceVariableStandIn:
            raise CheckpointError(f'functools.partial of {self.func!r}: only '
                                  'tensorflow ResourceVariable is accepted')
        if self.args or args:
            raise CheckpointError('ResourceVariable partial with positional arguments')
        kw = {**self.kwargs, **kwargs}
        unknown = set(kw) - _VARIABLE_KWARGS
        if unknown:
            raise CheckpointError(f'ResourceVariable: unexpected arguments {sorted(unknown)}')
        value, name = kw.get('initial_value'), kw.get('name')
        dtype, trainable = kw.get('dtype'), kw.get('trainable', True)
        if not isinstance(value, np.ndarray):
            raise CheckpointError(f'ResourceVariable {name!r}: initial_value is '
                                  f'{type(value).__name__}, not a numpy array')
        if not isinstance(name, str):
            raise CheckpointError('ResourceVariable: name missing or not a string')
        if not isinstance(dtype, TFDType):
            raise CheckpointError(f'ResourceVariable {name!r}: dtype is not as_dtype(...)')
        if not isinstance(trainable, bool):
            raise CheckpointError(f'ResourceVariable {name!r}: trainable is not a bool')
        for key in ('constraint', 'distribute_strategy'):
            if kw.get(key) is not None:
                raise CheckpointError(f'ResourceVariable {name!r}: {key} must be None')
        return PublishedVariable(name, value, trainable, dtype.name)


class _NDArrayToken:
    """Stands in for the ``numpy.ndarray`` class (only valid as ``_reconstruct``'s argument)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _NDArrayToken:  # noqa: D102
        raise CheckpointError('the pickle calls numpy.ndarray directly')


def _checked_dtype(dtype: Any, where: str) -> np.dtype:
    if not isinstance(dtype, np.dtype):
        raise CheckpointError(f'{where}: dtype argument is {type(dtype).__name__}, '
                              'not numpy.dtype')
    if dtype.hasobject or dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        raise CheckpointError(f'{where}: dtype {dtype} refused (numeric dtypes only)')
    return dtype


def _safe_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """Stand-in for numpy's ``_frombuffer``: a numeric array copied from the pickled bytes."""
    dt = _checked_dtype(dtype, 'numpy _frombuffer')
    if not isinstance(buf, (bytes, bytearray)):
        raise CheckpointError('numpy _frombuffer: buffer is not bytes')
    if not isinstance(shape, tuple) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise CheckpointError(f'numpy _frombuffer: bad shape {shape!r}')
    if order not in ('C', 'F'):
        raise CheckpointError(f'numpy _frombuffer: bad order {order!r}')
    try:
        return np.frombuffer(buf, dtype=dt).reshape(shape, order=order).copy(order='K')
    except ValueError as exc:
        raise CheckpointError(f'numpy _frombuffer: {exc}') from exc


def _safe_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """Stand-in for numpy's ``_reconstruct``: the empty array numpy's pickles start from.

    numpy always writes ``_reconstruct(ndarray, (0,), b'b')`` and then fills the array with
    ``ndarray.__setstate__`` from bytes in the file; anything else is refused.
    """
    if subtype is not _NDArrayToken:
        raise CheckpointError(f'numpy _reconstruct of {subtype!r}: only numpy.ndarray')
    if shape != (0,) or dtype not in (b'b', 'b'):
        raise CheckpointError(f'numpy _reconstruct{(shape, dtype)!r}: unexpected arguments')
    return np.ndarray((0,), dtype=np.uint8)


# (module, name) -> object the unpickler gets instead. numpy.core became numpy._core in numpy 2;
# both spellings map to the same wrappers (no numpy private module is ever imported).
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ('functools', 'partial'): RecordedPartial,
    ('tensorflow.python.ops.resource_variable_ops', 'ResourceVariable'): ResourceVariableStandIn,
    ('tensorflow.python.framework.dtypes', 'as_dtype'): TFDType.from_pickle,
    ('numpy.core.numeric', '_frombuffer'): _safe_frombuffer,
    ('numpy._core.numeric', '_frombuffer'): _safe_frombuffer,
    ('numpy.core.multiarray', '_reconstruct'): _safe_reconstruct,
    ('numpy._core.multiarray', '_reconstruct'): _safe_reconstruct,
    ('numpy', 'ndarray'): _NDArrayToken,
    ('numpy', 'dtype'): np.dtype,
}


# ---- pass 1: static scan -----------------------------------------------------------------------

_MARK = object()
_UNKNOWN = object()


def _refuse_global(module: str, name: str, pos: int) -> None:
    if (module, name) not in ALLOWED_GLOBALS:
        raise CheckpointError(f'pickle refers to the global {module}.{name} (byte {pos}), which '
                              'is not on the allow-list of the published-checkpoint importer; '
                              'nothing was executed')


def scan_pickle(data: bytes) -> list[str]:
    """Check a pickle statically, without executing it; return the globals it names.

    Walks every opcode (``pickletools.genops``) and simulates the stack and memo just far enough
    to know the literal strings ``STACK_GLOBAL`` consumes.

    Args:
        data: the whole pickle.

    Returns:
        ``module.name`` of every global, in order of appearance.

    Raises:
        CheckpointError: a global outside :data:`ALLOWED_GLOBALS`, a ``STACK_GLOBAL`` whose
            operands are not literal strings, a forbidden opcode (persistent id, extension
            registry, out-of-band buffer), trailing bytes after ``STOP``, or a malformed stream.
    """
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    names: list[str] = []
    stopped_at = None
    try:
        for op, arg, pos in pickletools.genops(data):
            pos = int(pos or 0)
            if op.name in FORBIDDEN_OPCODES:
                raise CheckpointError(f'pickle opcode {op.name} (byte {pos}) refused: it reaches '
                                      'outside the file (persistent ids, copyreg extensions or '
                                      'out-of-band buffers); nothing was executed')
            if op.name == 'PROTO' and not 0 <= int(arg) <= pickle.HIGHEST_PROTOCOL:
                raise CheckpointError(f'pickle protocol {arg} is not supported')
            popped: list[Any] = []
            before, after = op.stack_before, op.stack_after
            if op.name == 'MEMOIZE':  # documented as [any] -> [any]: the stack is unchanged
                before = after = []
            if pickletools.markobject in before or (op.name == 'POP' and stack
                                                     and stack[-1] is _MARK):
                while stack and stack[-1] is not _MARK:
                    stack.pop()
                if not stack:
                    raise CheckpointError(f'malformed pickle: no MARK for {op.name} at {pos}')
                stack.pop()
                n = before.index(pickletools.markobject) if op.name != 'POP' else 0
            else:
                n = len(before)
            if n:
                if len(stack) < n:
                    raise CheckpointError(f'malformed pickle: stack underflow at {op.name} {pos}')
                popped = stack[-n:]
                del stack[-n:]
            if op.name in ('GLOBAL', 'INST'):
                module, _, name = str(arg).partition(' ')
                _refuse_global(module, name, pos)
                names.append(f'{module}.{name}')
            elif op.name == 'STACK_GLOBAL':
                module, name = popped
                if not isinstance(module, str) or not isinstance(name, str):
                    raise CheckpointError(f'STACK_GLOBAL at byte {pos}: module/name are not '
                                          'literal strings; refused, nothing was executed')
                _refuse_global(module, name, pos)
                names.append(f'{module}.{name}')
            # push what the opcode leaves on the stack
            if op.name in _STRING_OPCODES:
                stack.append(arg.decode('latin-1') if isinstance(arg, bytes) else arg)
            elif op.name in ('GET', 'BINGET', 'LONG_BINGET'):
                if arg not in memo:
                    raise CheckpointError(f'malformed pickle: memo {arg} unset at {pos}')
                stack.append(memo[arg])
            elif op.name == 'DUP':
                stack.extend([popped[0], popped[0]])
            else:
                for item in after:
                    stack.append(_MARK if item is pickletools.markobject else _UNKNOWN)
            if op.name == 'MEMOIZE':
                if not stack:
                    raise CheckpointError(f'malformed pickle: MEMOIZE on empty stack at {pos}')
                memo[len(memo)] = stack[-1]
            elif op.name in ('PUT', 'BINPUT', 'LONG_BINPUT'):
                if not stack:
                    raise CheckpointError(f'malformed pickle: PUT on empty stack at {pos}')
                memo[int(arg)] = stack[-1]
            if op.name == 'STOP':
                stopped_at = pos
    except CheckpointError:
        raise
    except ValueError as exc:  # pickletools: unknown opcode, truncated argument, ...
        raise CheckpointError(f'malformed pickle: {exc}') from exc
    if stopped_at is None:
        raise CheckpointError('malformed pickle: no STOP opcode')
    if stopped_at + 1 != len(data):
        raise CheckpointError(f'pickle has {len(data) - stopped_at - 1} trailing bytes after STOP')
    return names


# ---- pass 2: restricted load -------------------------------------------------------------------

class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves globals only through :data:`ALLOWED_GLOBALS`.

    Use :func:`read_published` (which scans first); on its own this class is the second line of
    defence: it refuses any other global and every persistent id.
    """

    def find_class(self, module: str, name: str) -> Any:
        """Return the stand-in of an allowed global.

        Raises:
            CheckpointError: ``module.name`` is not allowed.
        """
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(f'pickle refers to the global {module}.{name}, which is not on '
                                  'the allow-list of the published-checkpoint importer') from None

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids (the published files have none).

        Raises:
            CheckpointError: always.
        """
        raise CheckpointError('pickle uses a persistent id; refused')


@dataclasses.dataclass(frozen=True)
class PublishedCheckpoint:
    """The variables of one published pickle, in file order.

    Attributes:
        variables: published key (dict key in the robot file, variable name in the Omniglot
            list) -> :class:`PublishedVariable`.
        sha256: SHA-256 of the file (hex).
        source_path: the file read.
        globals: ``module.name`` of every global the file names.
    """

    variables: dict[str, PublishedVariable]
    sha256: str
    source_path: str
    globals: tuple[str, ...]


def read_published(path: str | Path) -> PublishedCheckpoint:
    """Read a published pickle safely (static scan, then restricted load).

    Args:
        path: ``.pickle`` file of the official repository (robot or Omniglot).

    Returns:
        :class:`PublishedCheckpoint`.

    Raises:
        CheckpointError: unreadable or too large file, refused global or opcode, or a structure
            other than a dict / list of TensorFlow variables with finite numeric arrays.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_PICKLE_BYTES:
            raise CheckpointError(f'{p}: {size} bytes is larger than {MAX_PICKLE_BYTES}')
        data = p.read_bytes()
    except OSError as exc:
        raise CheckpointError(f'{p}: cannot read ({exc})') from exc
    names = scan_pickle(data)
    try:
        obj = RestrictedUnpickler(io.BytesIO(data)).load()
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the stream is a bad checkpoint
        raise CheckpointError(f'{p}: cannot unpickle ({type(exc).__name__}: {exc})') from exc
    if isinstance(obj, Mapping):
        items = list(obj.items())
    elif isinstance(obj, list):
        items = [(getattr(v, 'name', None), v) for v in obj]
    else:
        raise CheckpointError(f'{p}: top level is {type(obj).__name__}, expected dict or list')
    variables: dict[str, PublishedVariable] = {}
    for key, var in items:
        if not isinstance(var, PublishedVariable):
            raise CheckpointError(f'{p}: entry {key!r} is {type(var).__name__}, not a variable')
        if not isinstance(key, str) or key in variables:
            raise CheckpointError(f'{p}: bad or duplicate key {key!r}')
        v = var.value
        if v.dtype.kind not in _NUMERIC_KINDS or v.dtype.hasobject:
            raise CheckpointError(f'{p}: {key} has dtype {v.dtype}')
        if not np.isfinite(v).all():
            raise CheckpointError(f'{p}: {key} has non-finite values')
        variables[key] = var
    return PublishedCheckpoint(variables, hashlib.sha256(data).hexdigest(), str(p), tuple(names))


# ---- conversion --------------------------------------------------------------------------------

def detect_kind(ckpt: PublishedCheckpoint) -> str:
    """Return ``'robot'`` or ``'omniglot'`` from the variable names.

    Raises:
        CheckpointError: the names match neither published file.
    """
    keys = set(ckpt.variables)
    if keys == set(ROBOT_KEYS):
        return ROBOT_MODEL
    if keys == set(OMNIGLOT_KEYS):
        return 'omniglot'
    raise CheckpointError(f'{ckpt.source_path}: variables {sorted(keys)} match neither the '
                          f'robot ({sorted(ROBOT_KEYS)}) nor the Omniglot '
                          f'({sorted(OMNIGLOT_KEYS)}) file')


def _robot_shapes(cfg: L2LConfig) -> dict[str, tuple[int, int]]:
    """Expected published shapes (n_pre, n_post) for the configured sizes."""
    t, lsg = cfg.trainee, cfg.lsg
    n_lsg_in = t.n_in + 3 * lsg.bits_per_coord  # clock + binary-coded xyz target
    return {'W_in_trainee': (t.n_in, t.n_rec), 'W_rec_trainee': (t.n_rec, t.n_rec),
            'W_out_trainee': (t.n_rec, t.n_out), 'W_in_lsg': (n_lsg_in, lsg.n_rec),
            'W_rec_lsg': (lsg.n_rec, lsg.n_rec), 'W_out_lsg': (lsg.n_rec, t.n_rec)}


def convert_robot(ckpt: PublishedCheckpoint,
                  cfg: L2LConfig | None = None) -> dict[str, np.ndarray]:
    """Return the robot weights in the project's keys and (n_post, n_pre) convention (float32).

    The published (n_pre, n_post) arrays are transposed; values are kept exactly (no clipping:
    the PCM model clips at deployment; the W_rec diagonal is kept as stored and ignored by the
    trainee, which has no autapses).

    Args:
        ckpt: the read robot file.
        cfg: configuration whose sizes the shapes must match (default: the paper's).

    Returns:
        ``trainee.w_in`` (250, 5), ``trainee.w_rec`` (250, 250), ``trainee.w_out`` (2, 250),
        ``lsg.w_in`` (800, 53), ``lsg.w_rec`` (800, 800), ``lsg.w_out`` (250, 800).

    Raises:
        CheckpointError: not the robot file.
        ShapeError: a shape differs from the configured sizes.
    """
    cfg = cfg or L2LConfig()
    if detect_kind(ckpt) != ROBOT_MODEL:
        raise CheckpointError(f'{ckpt.source_path}: not the robot checkpoint')
    out: dict[str, np.ndarray] = {}
    for pub, expected in _robot_shapes(cfg).items():
        v = ckpt.variables[pub].value
        if v.shape != expected:
            raise ShapeError(f'{pub}: expected (n_pre, n_post) = {expected}, got {v.shape}')
        out[ROBOT_KEYS[pub]] = np.ascontiguousarray(v.T, dtype=np.float32)
    return out


def convert_omniglot(ckpt: PublishedCheckpoint) -> dict[str, np.ndarray]:
    """Return the Omniglot CNN weights in the project's layout (float32).

    ``omniglot.kernel1..4``: conv kernels, TF (kh, kw, c_in, c_out) = (3, 3, 1|56, 56) →
    (c_out, c_in, kh, kw) = (56, 1|56, 3, 3) (torch ``conv2d`` layout, n_post first);
    ``omniglot.kernel5``: dense readout (56, 5) → (5, 56) = (n_classes, n_features).

    Raises:
        CheckpointError: not the Omniglot file.
        ShapeError: a kernel of unexpected rank.
    """
    if detect_kind(ckpt) != 'omniglot':
        raise CheckpointError(f'{ckpt.source_path}: not the Omniglot checkpoint')
    out: dict[str, np.ndarray] = {}
    for pub, key in OMNIGLOT_KEYS.items():
        v = ckpt.variables[pub].value
        if pub == 'kernel5':
            if v.ndim != 2:
                raise ShapeError(f'{pub}: expected (n_features, n_classes), got {v.shape}')
            out[key] = np.ascontiguousarray(v.T, dtype=np.float32)
        else:
            if v.ndim != 4:
                raise ShapeError(f'{pub}: expected (kh, kw, c_in, c_out), got {v.shape}')
            out[key] = np.ascontiguousarray(v.transpose(3, 2, 0, 1), dtype=np.float32)
    return out


def weight_statistics(w: np.ndarray) -> dict[str, float]:
    """Return mean, SD, min, max and the fraction with |w| > 1 of an array (float64 sums)."""
    a = np.asarray(w, dtype=np.float64)
    return {'mean': float(a.mean()), 'std': float(a.std()), 'min': float(a.min()),
            'max': float(a.max()), 'frac_abs_gt_1': float((np.abs(a) > 1.0).mean())}


def _source_metadata(ckpt: PublishedCheckpoint, kind: str) -> dict[str, Any]:
    known = KNOWN_SOURCES.get(ckpt.sha256)
    return {
        'file': Path(ckpt.source_path).name,
        'sha256': ckpt.sha256,
        'repository': SOURCE_REPOSITORY,
        'commit': SOURCE_COMMIT if known else None,
        'path_in_repository': known[1] if known else None,
        'known_file': known is not None and known[0] == kind,
        'license': SOURCE_LICENSE,
        'tensorflow_names': {k: v.name for k, v in ckpt.variables.items()},
        'published_shapes': {k: list(v.value.shape) for k, v in ckpt.variables.items()},
        'globals': sorted(set(ckpt.globals)),
    }



def save_omniglot(path: str | Path, weights: dict[str, np.ndarray],
                  metadata: dict[str, Any]) -> Path:
    """Write the Omniglot CNN as a checkpoint folder (``weights.safetensors`` + ``metadata.json``).

    Same layout and format version as :mod:`l2l_nmhw_ros.l2l.checkpoint`, whose ``load`` requires
    the six robot keys; read this one back with :func:`load_omniglot`.

    Raises:
        CheckpointError: a key of :data:`OMNIGLOT_KEYS` is missing.
    """
    from safetensors.numpy import save_file

    from l2l_nmhw_ros.l2l import checkpoint

    missing = [k for k in OMNIGLOT_KEYS.values() if k not in weights]
    if missing:
        raise CheckpointError(f'Omniglot weights: missing {missing}')
    folder = Path(path)
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    meta = {**metadata, 'format_version': checkpoint.FORMAT_VERSION}
    text = json.dumps(meta, indent=2, sort_keys=True) + '\n'
    atomic_write(folder / checkpoint.WEIGHTS_FILE, lambda tmp: save_file(arrays, tmp))
    atomic_write(folder / checkpoint.METADATA_FILE,
                  lambda tmp: Path(tmp).write_text(text, encoding='utf-8'))
    return folder


def load_omniglot(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a folder written by :func:`save_omniglot`; returns (weights, metadata).

    Raises:
        CheckpointError: files missing, another model or format version, or keys missing.
    """
    from safetensors.numpy import load_file

    from l2l_nmhw_ros.l2l import checkpoint

    folder = Path(path)
    wfile, mfile = folder / checkpoint.WEIGHTS_FILE, folder / checkpoint.METADATA_FILE
    if not wfile.is_file() or not mfile.is_file():
        raise CheckpointError(f'{folder}: not a checkpoint folder')
    try:
        meta = json.loads(mfile.read_text(encoding='utf-8'))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f'{mfile}: invalid JSON ({exc})') from exc
    if meta.get('format_version') != checkpoint.FORMAT_VERSION or \
            meta.get('model') != OMNIGLOT_MODEL:
        raise CheckpointError(f'{folder}: not an Omniglot checkpoint of format '
                              f'{checkpoint.FORMAT_VERSION}')
    weights = load_file(str(wfile))
    missing = [k for k in OMNIGLOT_KEYS.values() if k not in weights]
    if missing:
        raise CheckpointError(f'{wfile}: missing weights {missing}')
    return weights, meta


def import_checkpoint(src: str | Path, dst: str | Path,
                      cfg: L2LConfig | None = None) -> tuple[Path, dict[str, Any]]:
    """Convert a published pickle (robot or Omniglot) into a project checkpoint folder.

    Args:
        src: the published ``.pickle``.
        dst: output folder.
        cfg: configuration recorded in the metadata (and whose sizes the robot shapes must
            match); default the schema defaults with ``lsg.target_code: paper``. The robot
            weights were meta-trained on the authors' target code, so a robot import records
            ``paper`` (:data:`PUBLISHED_TARGET_CODE`).

    Returns:
        (folder, metadata written).

    Raises:
        CheckpointError: refused or malformed pickle, unknown variable set, or (robot) a `cfg`
            whose ``lsg.target_code`` is not ``paper``.
        ShapeError: robot shapes differ from the configured sizes.
    """
    from l2l_nmhw_ros.l2l import checkpoint

    if cfg is None:
        base = L2LConfig()
        cfg = dataclasses.replace(base, lsg=dataclasses.replace(
            base.lsg, target_code=PUBLISHED_TARGET_CODE))
    ckpt = read_published(src)
    kind = detect_kind(ckpt)
    weights = convert_robot(ckpt, cfg) if kind == ROBOT_MODEL else convert_omniglot(ckpt)
    meta: dict[str, Any] = {
        'model': ROBOT_MODEL if kind == ROBOT_MODEL else OMNIGLOT_MODEL,
        'source': _source_metadata(ckpt, kind),
        'import_format': IMPORT_FORMAT,
        'shapes': {k: list(v.shape) for k, v in weights.items()},
        'statistics': {k: weight_statistics(v) for k, v in weights.items()},
        'metrics': {},
    }
    if kind == ROBOT_MODEL:
        if cfg.lsg.target_code != PUBLISHED_TARGET_CODE:
            raise CheckpointError(f'the published robot LSG was trained with the target code '
                                  f'{PUBLISHED_TARGET_CODE!r}, the configuration says '
                                  f'lsg.target_code {cfg.lsg.target_code!r}')
        meta['config'] = to_dict(cfg)
        meta['config_hash'] = config_hash(cfg)
        meta['weight_layout'] = '(n_post, n_pre); published (n_pre, n_post) transposed'
        folder = checkpoint.save(dst, weights, meta)
    else:
        meta['weight_layout'] = ('kernel1..4: (c_out, c_in, kh, kw) from TF (kh, kw, c_in, '
                                 'c_out); kernel5: (n_classes, n_features) from (56, 5)')
        folder = save_omniglot(dst, weights, meta)
    return folder, meta
