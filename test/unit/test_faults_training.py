"""Fault injection for ``l2l-nmhw train``: Ctrl-C / SIGTERM save a resumable checkpoint (exit 130,
the resume command printed), an existing run is never overwritten by accident, ``--resume``
without a checkpoint or with ``--init-from`` is refused, a torn checkpoint is refused."""

from __future__ import annotations

import json
import os
import shlex
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from l2l_nmhw_ros import cli
from l2l_nmhw_ros.l2l import checkpoint as ckpt
from l2l_nmhw_ros.l2l.meta import MetaTrainer

# 6 trainee and 8 LSG neurons, 30 steps, 2 tasks per iteration, float inner loop: ~50 ms/iteration
TINY = '''/**:
  ros__parameters:
    trainee: {n_rec: 6, n_ref: 5}
    lsg: {n_rec: 8, bits_per_coord: 4, n_ref: 5}
    task: {n_steps: 30, clock_window: 6, clock_interval: 2, smoothing_window: 10}
    eprop: {eta: 0.05}
    meta: {batch_size: 2, families: [reach], checkpoint_every: 2, pcm_in_loop: false}
'''


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / 'tiny.yaml'
    path.write_text(TINY)
    return path


def _train(tiny: Path, out: Path, *args: str) -> int:
    return cli.main(['train', '--config', str(tiny), '--out', str(out), '--no-progress', *args])


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


def _weights(folder: Path) -> dict[str, np.ndarray]:
    return ckpt.load(folder)[0]


def _iteration(folder: Path) -> int:
    return json.loads((folder / ckpt.METADATA_FILE).read_text())['iteration']


def _interrupt_step(monkeypatch: pytest.MonkeyPatch, at_call: int,
                    interrupt: Callable[[MetaTrainer], None]) -> None:
    """Make call number ``at_call`` of MetaTrainer.step run ``interrupt(trainer)`` first."""
    step, calls = MetaTrainer.step, []

    def patched(self: MetaTrainer) -> dict[str, float]:
        calls.append(1)
        if len(calls) == at_call:
            interrupt(self)
        return step(self)

    monkeypatch.setattr(MetaTrainer, 'step', patched)


def _ctrl_c(trainer: MetaTrainer) -> None:
    raise KeyboardInterrupt


def _signal_after_the_weights_changed(sig: int) -> Callable[[MetaTrainer], None]:
    """The step's optimizer update runs, then the signal arrives: mid-iteration."""
    def arm(trainer: MetaTrainer) -> None:
        update = trainer.optimizer.step

        def update_then_signal(*a: object, **k: object) -> object:
            out = update(*a, **k)
            os.kill(os.getpid(), sig)
            return out
        trainer.optimizer.step = update_then_signal
    return arm


# ---- refused before anything starts ------------------------------------------------------------

def _with_checkpoint(tiny: Path, out: Path) -> None:
    assert _train(tiny, out, '--iterations', '1') == 0


def _weights_only(tiny: Path, out: Path) -> None:
    _with_checkpoint(tiny, out)
    (out / ckpt.METADATA_FILE).unlink()


REFUSED = {
    # id: (set-up of --out, extra arguments, words of the one error line)
    'overwrite_without_resume_or_force': (_with_checkpoint, [],
                                          'already holds a checkpoint; add --resume to continue '
                                          'it, or --force to start afresh and overwrite it'),
    'resume_without_checkpoint': (lambda tiny, out: None, ['--resume'],
                                  'holds no checkpoint (metadata.json missing)'),
    'resume_in_folder_without_metadata': (_weights_only, ['--resume'],
                                          'holds no checkpoint (metadata.json missing)'),
    'resume_with_init_from': (_with_checkpoint, ['--resume', '--init-from', 'elsewhere'],
                              'cannot be combined with --init-from'),
}


@pytest.mark.parametrize('case', list(REFUSED))
def test_refused_before_anything_starts(case: str, tiny: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    setup, extra, message = REFUSED[case]
    out, log = tmp_path / 'run', tmp_path / 'train.jsonl'
    setup(tiny, out)
    log.write_text('{"iteration": 1}\n')
    before = _files(out)
    capsys.readouterr()
    assert _train(tiny, out, '--iterations', '3', '--log', str(log), *extra) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('l2l-nmhw train: error: ')
    assert message in err, err
    assert _files(out) == before  # the old checkpoint byte for byte (or still nothing)
    assert log.read_text() == '{"iteration": 1}\n'  # the log untouched


def test_force_overwrites_an_existing_checkpoint(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / 'run'
    assert _train(tiny, out, '--iterations', '2') == 0
    assert _iteration(out) == 2
    assert _train(tiny, out, '--iterations', '1', '--force') == 0
    assert _iteration(out) == 1


# ---- Ctrl-C and SIGTERM ------------------------------------------------------------------------

def test_ctrl_c_saves_a_resumable_checkpoint_and_prints_the_resume_command(
        tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out, log = tmp_path / 'run', tmp_path / 'train.jsonl'
    _interrupt_step(monkeypatch, 4, _ctrl_c)  # Ctrl-C after 3 (the last periodic save: 2)
    capsys.readouterr()
    assert _train(tiny, out, '--iterations', '5', '--log', str(log)) == 130
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    lines = [ln for ln in err.splitlines() if 'resume with: ' in ln]
    assert len(lines) == 1, err
    assert lines[0].startswith(f'l2l-nmhw train: interrupted; checkpoint of iteration 3 saved '
                               f'in {out}; resume with: ')
    command = shlex.split(lines[0].split('resume with: ')[1])
    assert command == ['l2l-nmhw', 'train', '--config', str(tiny), '--out', str(out),
                       '--iterations', '5', '--log', str(log), '--no-progress', '--resume']
    assert _iteration(out) == 3
    assert int(ckpt.load_train_state(out)['iteration'][0]) == 3
    # the printed command continues the run: 5 iterations in all, the same as never interrupted
    monkeypatch.undo()
    assert cli.main(command[1:]) == 0
    assert _iteration(out) == 5
    assert [json.loads(ln)['iteration'] for ln in log.read_text().splitlines()] == [1, 2, 3, 4, 5]
    assert _train(tiny, tmp_path / 'straight', '--iterations', '5') == 0
    for key, value in _weights(tmp_path / 'straight').items():
        np.testing.assert_array_equal(_weights(out)[key], value, err_msg=key)


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['sigint', 'sigterm'])
def test_signal_mid_iteration_discards_it_and_saves_the_last_complete_one(
        sig: int, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    out = tmp_path / 'run'
    _interrupt_step(monkeypatch, 2, _signal_after_the_weights_changed(sig))
    assert _train(tiny, out, '--iterations', '4') == 130
    assert '(the iteration in progress was discarded)' in capsys.readouterr().err
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    # the checkpoint is iteration 1 exactly as an uninterrupted 1-iteration run leaves it
    monkeypatch.undo()
    assert _iteration(out) == 1
    assert _train(tiny, tmp_path / 'one', '--iterations', '1') == 0
    for key, value in _weights(tmp_path / 'one').items():
        np.testing.assert_array_equal(_weights(out)[key], value, err_msg=key)
    assert _train(tiny, out, '--iterations', '2', '--resume') == 0
    assert _iteration(out) == 2


def test_signal_during_a_checkpoint_save_waits_until_the_save_is_complete(
        tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, saves = tmp_path / 'run', []
    save_train_state, save = ckpt.save_train_state, ckpt.save

    def state_then_signal(*a: object, **k: object) -> None:
        save_train_state(*a, **k)  # the first of three files is written ...
        os.kill(os.getpid(), signal.SIGINT)  # ... when Ctrl-C comes

    def recorded(*a: object, **k: object) -> Path:
        saves.append('started')
        folder = save(*a, **k)
        saves[-1] = 'complete'
        return folder

    monkeypatch.setattr(ckpt, 'save_train_state', state_then_signal)
    monkeypatch.setattr(ckpt, 'save', recorded)
    assert _train(tiny, out, '--iterations', '4') == 130
    # the periodic save at iteration 2 finished before the interrupt took effect, then the
    # interrupt's own save (the same state) finished too; the checkpoint is whole and resumes
    assert saves == ['complete', 'complete']
    monkeypatch.undo()
    assert _iteration(out) == 2
    assert int(ckpt.load_train_state(out)['iteration'][0]) == 2


@pytest.mark.parametrize('torn', [ckpt.WEIGHTS_FILE, ckpt.TRAIN_STATE_FILE])
def test_a_torn_checkpoint_is_refused_on_resume(torn: str, tiny: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # a save cut short by a power loss: one file of the next save written, the metadata not
    out, later = tmp_path / 'run', tmp_path / 'later'
    assert _train(tiny, out, '--iterations', '1') == 0
    assert _train(tiny, later, '--iterations', '2') == 0
    (out / torn).write_bytes((later / torn).read_bytes())
    capsys.readouterr()
    assert _train(tiny, out, '--iterations', '3', '--resume') == 2
    assert f'{torn}: content differs from the SHA-256 recorded in metadata.json' in (
        capsys.readouterr().err)


def test_keep_best_saves_the_lowest_validation(tiny: Path, tmp_path: Path) -> None:
    # --keep-best DIR holds the state of the validation with the lowest loss of the run (which
    # the log shows), with its training state, so a noisy run can be continued from its best
    cfg = tmp_path / 'val.yaml'
    cfg.write_text(TINY.replace('checkpoint_every: 2,', 'checkpoint_every: 2, validate_every: 1, '
                                'validation_batches: 1, validation_tasks: 2, lr: 0.05,'))
    log, best = tmp_path / 'log.jsonl', tmp_path / 'best'
    assert cli.main(['train', '--config', str(cfg), '--out', str(tmp_path / 'run'),
                     '--no-progress', '--iterations', '6', '--log', str(log),
                     '--keep-best', str(best)]) == 0
    vals = [json.loads(x) for x in log.read_text().splitlines()]
    vals = [v for v in vals if 'val_loss' in v]
    assert len(vals) == 6
    i_best = min(vals, key=lambda v: v['val_loss'])['iteration']
    assert _iteration(best) == i_best
    assert i_best != vals[-1]['iteration']  # so saving at every validation would fail here
    meta = json.loads((best / ckpt.METADATA_FILE).read_text())
    assert meta['metrics']['val_loss'] == min(v['val_loss'] for v in vals)
    assert (best / 'train_state.safetensors').exists()
    # the losses differ between validations (lr 0.05), so the test can tell the best apart
    assert len({round(v['val_loss'], 12) for v in vals}) > 1
