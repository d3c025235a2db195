"""The restricted unpickler of the published checkpoints refuses everything it does not know.

Every malicious pickle is built here in the test; each would create a sentinel file if anything
it names were executed. The tests assert the refusal (a CheckpointError naming module.name) AND
that the sentinel does not exist afterwards.
"""

from __future__ import annotations

import functools
import io
import pickle
import pickletools
import sys
import types

import numpy as np
import pytest

from l2l_nmhw_ros.errors import CheckpointError
from l2l_nmhw_ros.reference import published as P


# ---- a tiny pickle writer (opcodes as in pickletools' documentation) --------------------------

def _str(s: str) -> bytes:
    b = s.encode()
    return b'\x8c' + bytes([len(b)]) + b  # SHORT_BINUNICODE


def _stack_global(module: str, name: str) -> bytes:
    return _str(module) + _str(name) + b'\x93'  # STACK_GLOBAL


def _call1(module: str, name: str, arg: str) -> bytes:
    """Protocol-4 pickle of module.name(arg)."""
    return b'\x80\x04' + _stack_global(module, name) + _str(arg) + b'\x85R.'  # TUPLE1 REDUCE STOP


def _write(tmp_path, data: bytes, name: str = 'evil.pickle'):
    p = tmp_path / name
    p.write_bytes(data)
    return p


# ---- malicious files ----------------------------------------------------------------------------

class _Reduce:
    """Pickles as a call of `func(*args)` (how an attacker writes a pickle with pickle itself)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _evil_pickles(sentinel):
    touch = f'touch {sentinel}'
    import subprocess

    return {
        # protocol 0: GLOBAL opcode 'os system'
        'os.system/GLOBAL': f"cos\nsystem\n(V{touch}\ntR.".encode(),
        # protocol 4: STACK_GLOBAL
        'os.system/STACK_GLOBAL': _call1('os', 'system', touch),
        'builtins.eval': _call1('builtins', 'eval', f'open({str(sentinel)!r}, "w").close()'),
        'subprocess.Popen': pickle.dumps(_Reduce(subprocess.Popen, ['touch', str(sentinel)]),
                                         protocol=5),
        # a partial (allowed) of an unknown global, nested inside a dict like the real file
        'nested partial': pickle.dumps(
            {'W_in_trainee': _Reduce(functools.partial(__import__('os').system, touch))},
            protocol=5),
    }


@pytest.mark.parametrize('case', ['os.system/GLOBAL', 'os.system/STACK_GLOBAL', 'builtins.eval',
                                  'subprocess.Popen', 'nested partial'])
def test_foreign_global_is_refused_before_anything_runs(tmp_path, case):
    sentinel = tmp_path / 'SENTINEL'
    data = _evil_pickles(sentinel)[case]
    path = _write(tmp_path, data)
    with pytest.raises(CheckpointError) as info:
        P.read_published(path)
    # the message names the refused global (os.system pickles as posix.system on Linux)
    expected = {'os.system/GLOBAL': 'os.system', 'os.system/STACK_GLOBAL': 'os.system',
                'builtins.eval': 'builtins.eval', 'subprocess.Popen': 'subprocess.Popen',
                'nested partial': f'{__import__("os").system.__module__}.system'}[case]
    assert expected in str(info.value)
    assert 'allow-list' in str(info.value)
    assert not sentinel.exists()
    # Control (so the test can fail): the file really names the dangerous callable. It is shown
    # by disassembly only; no unrestricted unpickler ever runs in this project, tests included.
    listing = io.StringIO()
    pickletools.dis(data, out=listing)
    assert expected.rsplit('.', 1)[1] in listing.getvalue()


def test_restricted_unpickler_alone_refuses_foreign_globals(tmp_path):
    # second line of defence: find_class refuses even without the static scan
    sentinel = tmp_path / 'SENTINEL'
    data = _call1('os', 'system', f'touch {sentinel}')
    with pytest.raises(CheckpointError, match=r'os\.system'):
        P.RestrictedUnpickler(io.BytesIO(data)).load()
    assert not sentinel.exists()


def test_non_literal_stack_global_is_refused(tmp_path):
    # module name produced by a call (numpy.dtype('f4')) instead of a literal string
    data = (b'\x80\x04' + _stack_global('numpy', 'dtype') + _str('f4') + b'\x85R'
            + _str('system') + b'\x93.')
    with pytest.raises(CheckpointError, match='not literal strings'):
        P.scan_pickle(data)


@pytest.mark.parametrize(('name', 'data'), [
    ('BINPERSID', b'\x80\x04' + _str('abc') + b'Q.'),
    ('PERSID', b'Pabc\n.'),
    ('EXT1', b'\x80\x02\x82\x01.'),
    ('EXT2', b'\x80\x02\x83\x01\x00.'),
])
def test_persistent_id_and_extension_opcodes_are_refused(tmp_path, name, data):
    with pytest.raises(CheckpointError, match=name):
        P.read_published(_write(tmp_path, data))


def test_persistent_load_refuses_even_without_scan():
    with pytest.raises(CheckpointError, match='persistent id'):
        P.RestrictedUnpickler(io.BytesIO(b'\x80\x04' + _str('abc') + b'Q.')).load()


def test_partial_of_an_allowed_non_variable_is_refused(tmp_path):
    # functools.partial(numpy.dtype)('f4'): both globals allowed, but calling it is refused
    data = (b'\x80\x04' + _stack_global('functools', 'partial') + _stack_global('numpy', 'dtype')
            + b'\x85R' + _str('f4') + b'\x85R.')
    with pytest.raises(CheckpointError, match='only tensorflow ResourceVariable'):
        P.read_published(_write(tmp_path, data))


def test_object_dtype_arrays_are_refused():
    with pytest.raises(CheckpointError, match='numeric dtypes only'):
        P.ALLOWED_GLOBALS[('numpy.core.numeric', '_frombuffer')](
            bytearray(8), np.dtype('O'), (1,), 'C')


def test_truncated_and_trailing_bytes_are_refused(tmp_path):
    good = _call1('numpy', 'dtype', 'f4')
    with pytest.raises(CheckpointError, match='malformed'):
        P.scan_pickle(good[:-3])
    with pytest.raises(CheckpointError, match='trailing'):
        P.scan_pickle(good + b'junk')


def test_scan_reports_the_globals_of_an_allowed_pickle():
    assert P.scan_pickle(_call1('numpy', 'dtype', 'f4')) == ['numpy.dtype']


# ---- the published format, built here with fake TensorFlow modules ------------------------------

@pytest.fixture
def fake_tensorflow(monkeypatch):
    """Register stand-in modules so that pickle writes the published files' global names."""
    names = ['tensorflow', 'tensorflow.python', 'tensorflow.python.ops',
             'tensorflow.python.ops.resource_variable_ops', 'tensorflow.python.framework',
             'tensorflow.python.framework.dtypes']
    mods = {n: types.ModuleType(n) for n in names}
    rv_mod = mods['tensorflow.python.ops.resource_variable_ops']
    dt_mod = mods['tensorflow.python.framework.dtypes']

    class ResourceVariable:
        def __init__(self, **kwargs):
            raise AssertionError('never called by the writer')

    ResourceVariable.__module__ = rv_mod.__name__
    ResourceVariable.__qualname__ = 'ResourceVariable'
    rv_mod.ResourceVariable = ResourceVariable

    def as_dtype(name):
        raise AssertionError('never called by the writer')

    as_dtype.__module__ = dt_mod.__name__
    as_dtype.__qualname__ = 'as_dtype'
    dt_mod.as_dtype = as_dtype
    for n, m in mods.items():
        monkeypatch.setitem(sys.modules, n, m)
    return ResourceVariable, as_dtype


def _variable(rv, as_dtype, name, value):
    return _Reduce(functools.partial(rv, initial_value=value, trainable=True, name=name,
                                     dtype=_Reduce(as_dtype, 'float32'), constraint=None,
                                     distribute_strategy=None))


@pytest.mark.parametrize('protocol', [4, 5])
def test_published_format_round_trip(tmp_path, fake_tensorflow, protocol):
    # protocol 5 stores arrays with _frombuffer (as the robot file), 4 with _reconstruct (as the
    # Omniglot file); numpy 2 writes numpy._core names, the published files numpy.core
    rv, as_dtype = fake_tensorflow
    rng = np.random.default_rng(0)
    w_in = rng.normal(size=(5, 7)).astype(np.float32)
    w_out = np.asfortranarray(rng.normal(size=(7, 2)).astype(np.float32))
    obj = {'W_in_trainee': _variable(rv, as_dtype, 'input_weights_trainee', w_in),
           'W_out_trainee': _variable(rv, as_dtype, 'output_weights_trainee', w_out)}
    path = _write(tmp_path, pickle.dumps(obj, protocol=protocol), 'ok.pickle')
    ckpt = P.read_published(path)
    assert list(ckpt.variables) == ['W_in_trainee', 'W_out_trainee']
    v = ckpt.variables['W_in_trainee']
    assert (v.name, v.trainable, v.dtype) == ('input_weights_trainee', True, 'float32')
    np.testing.assert_array_equal(v.value, w_in)
    np.testing.assert_array_equal(ckpt.variables['W_out_trainee'].value, w_out)
    assert 'functools.partial' in ckpt.globals
    assert 'tensorflow.python.ops.resource_variable_ops.ResourceVariable' in ckpt.globals
    array_global = {4: 'numpy._core.multiarray._reconstruct', 5: 'numpy._core.numeric._frombuffer'}
    assert array_global[protocol] in ckpt.globals


def test_variable_with_unexpected_arguments_is_refused(tmp_path, fake_tensorflow):
    rv, as_dtype = fake_tensorflow
    bad = _Reduce(functools.partial(rv, initial_value=np.zeros(2, np.float32), name='x',
                                    dtype=_Reduce(as_dtype, 'float32'), caching_device='gpu'))
    path = _write(tmp_path, pickle.dumps({'W_in_trainee': bad}, protocol=5))
    with pytest.raises(CheckpointError, match='unexpected arguments'):
        P.read_published(path)


def test_unknown_variable_set_is_not_converted(tmp_path, fake_tensorflow):
    rv, as_dtype = fake_tensorflow
    obj = {'W_in_trainee': _variable(rv, as_dtype, 'w', np.zeros((5, 250), np.float32))}
    ckpt = P.read_published(_write(tmp_path, pickle.dumps(obj, protocol=5)))
    with pytest.raises(CheckpointError, match='match neither'):
        P.detect_kind(ckpt)
