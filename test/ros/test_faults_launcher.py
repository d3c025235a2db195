"""The pip-only launcher under node faults: respawn, a dead node, on_exit: shutdown, shutdown.

Faults injected: a node killed with SIGKILL (respawned after ``respawn_delay`` with a new pid,
the launcher and the other nodes running on); a node without respawn killed (the others run
on, as in ros2 launch); a node with ``on_exit: shutdown`` killed (the launch ends, no respawn);
shutdown while a respawn is pending (cancelled); a node that crashes at once, again and again
(``respawn_max_retries`` stops it). The nodes are a fake script (no rclpy) that appends its pid
to a file at every start.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ._graph_helpers import pid_alive, write_executable
from l2l_nmhw_ros.ros.tools import launch_file as LF
from l2l_nmhw_ros.ros.tools.launcher import Launcher

FAKE = '''\
#!{python}
import os, signal, sys, time
argv = sys.argv[1:]
mode = argv[argv.index('--mode') + 1]
out = argv[argv.index('--out') + 1]
with open(out + '.pids', 'a') as fh:
    fh.write(f'{{os.getpid()}}\\n')
stop = []
signal.signal(signal.SIGINT, signal.SIG_IGN if mode == 'ignore_sigint'
              else lambda *_: stop.append(1))
print('fake node up', os.getpid(), flush=True)
if mode == 'crash':
    sys.exit(3)
while not stop:
    time.sleep(0.02)
print('fake node got SIGINT', flush=True)
'''


def _wait_for(pred: Callable[[], bool], timeout: float = 20.0) -> float:
    """Wait until ``pred()``; return the seconds it took."""
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError('condition not met in time')
        time.sleep(0.02)
    return time.monotonic() - t0


@pytest.fixture
def bindir(tmp_path: Path) -> Path:
    return write_executable(tmp_path / 'bin', 'fake_node', FAKE.format(python=sys.executable))


def _launch(tmp_path: Path, nodes: dict[str, tuple[str, str]]) -> Path:
    """A launch file of fake nodes ``name: (mode, extra attributes as YAML flow text)``."""
    text = 'launch:\n- arg: {name: respawn, default: "true"}\n'
    for name, (mode, extra) in nodes.items():
        more = f', {extra}' if extra else ''
        text += textwrap.dedent(f'''\
            - node: {{pkg: fake_pkg, exec: fake_node, name: {name}, output: screen,
                      args: "--mode {mode} --out {tmp_path}/{name}"{more}}}
            ''')
    path = tmp_path / 'faults.launch.yaml'
    path.write_text(text, encoding='utf-8')
    return path


def _pids(tmp_path: Path, name: str) -> list[int]:
    f = tmp_path / f'{name}.pids'
    return [int(x) for x in f.read_text().split()] if f.exists() else []


def _launcher(tmp_path: Path, bindir: Path, nodes: dict[str, tuple[str, str]],
              out: io.StringIO) -> Launcher:
    desc = LF.load_launch_file(_launch(tmp_path, nodes))
    return Launcher(desc, log_dir=tmp_path / 'logs', exec_dirs=[bindir], stream=out,
                    echo=False, sigterm_timeout=3.0, sigkill_timeout=2.0)


def test_killed_node_is_respawned_and_the_launch_goes_on(tmp_path: Path, bindir: Path) -> None:
    """``l2l-nmhw launch``: SIGKILL a respawning node; it is back in ~respawn_delay, new pid."""
    path = _launch(tmp_path, {'phoenix': ('normal', 'respawn: "$(var respawn)", '
                                                    'respawn_delay: 0.5'),
                              'bystander': ('normal', '')})
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}",
               ROS_LOG_DIR=str(tmp_path / 'roslog'))
    proc = subprocess.Popen([sys.executable, '-m', 'l2l_nmhw_ros.cli', 'launch', str(path),
                             '--quiet'], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: _pids(tmp_path, 'phoenix') and _pids(tmp_path, 'bystander'), 60)
        (old,), (bystander,) = _pids(tmp_path, 'phoenix'), _pids(tmp_path, 'bystander')
        os.kill(old, signal.SIGKILL)
        took = _wait_for(lambda: len(_pids(tmp_path, 'phoenix')) == 2, 0.5 + 10.0)
        new = _pids(tmp_path, 'phoenix')[1]
        assert new != old and pid_alive(new) and not pid_alive(old)
        assert took >= 0.4  # respawn_delay 0.5 s (measured from the kill, minus polling)
        time.sleep(0.3)
        assert proc.poll() is None  # the launcher runs on
        assert _pids(tmp_path, 'bystander') == [bystander] and pid_alive(bystander)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert f'respawned phoenix [pid {new}] (respawn 1; pid {old} exited with signal SIGKILL)' \
        in out, out
    assert proc.returncode == 1, out  # a node crashed (the exit code says so, respawn or not)
    assert 'exit 1: phoenix=0, bystander=0' in out, out
    assert not pid_alive(new) and not pid_alive(bystander)
    assert len(_pids(tmp_path, 'phoenix')) == 2  # the exit at shutdown was not respawned
    log = (tmp_path / 'roslog' / 'launch' / 'phoenix.log').read_text()
    assert log.count('fake node up') == 2  # both processes' output in the one log
    assert (f'[launch] respawned phoenix (respawn 1) after pid {old} exited with signal SIGKILL'
            in log), log
    assert log.index(f'fake node up {old}') < log.index('[launch] respawned') \
        < log.index(f'fake node up {new}')


def test_a_node_without_respawn_that_dies_leaves_the_others_running(tmp_path: Path,
                                                                    bindir: Path) -> None:
    out = io.StringIO()
    launcher = _launcher(tmp_path, bindir, {'victim': ('normal', ''), 'other': ('normal', '')},
                         out)
    with launcher:
        _wait_for(lambda: _pids(tmp_path, 'victim') and _pids(tmp_path, 'other'))
        (victim,), (other,) = _pids(tmp_path, 'victim'), _pids(tmp_path, 'other')
        os.kill(victim, signal.SIGKILL)
        _wait_for(lambda: launcher.unexpected == ['victim'])
        assert launcher.wait(timeout=0.7) is False  # no shutdown requested
        assert launcher.running() == ['other'] and pid_alive(other)
        assert _pids(tmp_path, 'victim') == [victim]  # not respawned
    assert launcher.returncodes == {'victim': -signal.SIGKILL, 'other': 0}
    assert launcher.exit_code == 1
    assert f'victim [pid {victim}] exited with signal SIGKILL' in out.getvalue()
    assert 'fake node got SIGINT' in (tmp_path / 'logs' / 'other.log').read_text()


def test_on_exit_shutdown_ends_the_launch_and_wins_over_respawn(tmp_path: Path,
                                                                 bindir: Path) -> None:
    out = io.StringIO()
    launcher = _launcher(tmp_path, bindir, {
        'keystone': ('normal', 'on_exit: shutdown, respawn: true, respawn_delay: 0.0'),
        'other': ('normal', '')}, out)
    with launcher:
        _wait_for(lambda: _pids(tmp_path, 'keystone') and _pids(tmp_path, 'other'))
        os.kill(_pids(tmp_path, 'keystone')[0], signal.SIGKILL)
        assert launcher.wait(timeout=20.0) is True  # shutdown requested by the node's exit
    assert len(_pids(tmp_path, 'keystone')) == 1  # never respawned
    assert launcher.returncodes == {'keystone': -signal.SIGKILL, 'other': 0}
    assert launcher.exit_code == 1
    assert 'keystone has on_exit: shutdown' in out.getvalue()
    assert 'fake node got SIGINT' in (tmp_path / 'logs' / 'other.log').read_text()


def test_shutdown_cancels_a_pending_respawn(tmp_path: Path, bindir: Path) -> None:
    """A respawn due while the launcher shuts down (a stubborn node holds it up) never comes."""
    out = io.StringIO()
    desc = LF.load_launch_file(_launch(tmp_path, {
        'slow': ('normal', 'respawn: true, respawn_delay: 0.5'),
        'stubborn': ('ignore_sigint', '')}))
    launcher = Launcher(desc, log_dir=tmp_path / 'logs', exec_dirs=[bindir], stream=out,
                        echo=False, sigterm_timeout=1.5, sigkill_timeout=2.0)
    launcher.start()
    try:
        _wait_for(lambda: _pids(tmp_path, 'slow') and _pids(tmp_path, 'stubborn'))
        os.kill(_pids(tmp_path, 'slow')[0], signal.SIGKILL)
        _wait_for(lambda: 'slow: respawning in 0.5 s' in out.getvalue())
    finally:
        t0 = time.monotonic()
        launcher.shutdown()
    assert time.monotonic() - t0 > 0.5 + 0.5  # the respawn fell due during the shutdown
    time.sleep(0.3)
    assert len(_pids(tmp_path, 'slow')) == 1
    assert 'respawned' not in (tmp_path / 'logs' / 'slow.log').read_text()
    assert launcher.returncodes == {'slow': -signal.SIGKILL, 'stubborn': -signal.SIGTERM}
    assert launcher.exit_code == 1


def test_respawn_max_retries_stops_a_crash_loop(tmp_path: Path, bindir: Path) -> None:
    out = io.StringIO()
    launcher = _launcher(tmp_path, bindir, {'crasher': (
        'crash', 'respawn: true, respawn_delay: 0.0, respawn_max_retries: 2')}, out)
    with launcher:
        assert launcher.wait(timeout=30.0) is False  # every node exited, none to respawn
    assert len(_pids(tmp_path, 'crasher')) == 3  # the start and two respawns
    log = (tmp_path / 'logs' / 'crasher.log').read_text()
    assert 'respawned crasher (respawn 1 of 2) after pid' in log
    assert 'respawned crasher (respawn 2 of 2) after pid' in log
    assert 'exited with status 3' in log
    assert 'crasher: not respawned (respawn_max_retries=2 reached)' in out.getvalue()
    assert launcher.unexpected == ['crasher'] * 3
    assert launcher.returncodes == {'crasher': 3}
    assert launcher.exit_code == 1
