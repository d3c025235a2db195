"""The package's own small launcher: runs a ROS 2 YAML launch file without ``ros2 launch``.

``l2l-nmhw launch [l2l_nmhw_ros] reach.launch.yaml [name:=value ...]`` does what ``ros2 launch``
does for the subset of the format in :mod:`l2l_nmhw_ros.ros.tools.launch_file`:

- one subprocess per node, started from its console script (``<venv>/bin/<exec>``; then
  ``<prefix>/lib/<pkg>/<exec>`` for every ``AMENT_PREFIX_PATH`` prefix; then ``PATH``), with
  ``--ros-args -r __node:= -r __ns:= --params-file <from> ... --params-file <single params>
  -r from:=to`` (single parameters typed as launch_ros does, written to
  ``<log_dir>/<node>.params.yaml``);
- the DDS environment of the design (§3) forced on every child: ``ROS_AUTOMATIC_DISCOVERY_RANGE=
  LOCALHOST`` (``ROS_LOCALHOST_ONLY`` removed, Kilted ignores it), ``ROS_DOMAIN_ID`` kept when set
  else a private one in 101..200 (printed), ``ROS_LOG_DIR`` kept when set else a fresh temporary
  folder, ``AMENT_PREFIX_PATH`` including this venv, ``PYTHONUNBUFFERED=1``;
- each child in its own process group (``setsid``) with ``PR_SET_PDEATHSIG = SIGTERM`` on Linux,
  so neither a Ctrl-C at the terminal nor the launcher's death leaves an orphan;
- output: every node's stdout/stderr goes to ``<log_dir>/<node>.log``; ``output: screen`` (or
  ``both``) also echoes it, prefixed ``[node]``;
- shutdown on SIGINT/SIGTERM, or when a node with ``on_exit: shutdown`` exits: SIGINT to every
  process group, SIGTERM after ``sigterm_timeout`` s, SIGKILL after another ``sigkill_timeout`` s
  (the defaults of ``launch``), then SIGKILL to whatever is left in the groups.

Exit code: 0 when every node exited with status 0 within the SIGINT grace period; 1 otherwise
(a node crashed, needed SIGTERM/SIGKILL, or could not start); 2 for an invalid launch file.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import yaml

from l2l_nmhw_ros.ros.tools.launch_file import (LaunchDescription, LaunchError, NodeSpec,
                                          find_package_share, load_launch_file)

#: seconds between SIGINT and SIGTERM, and between SIGTERM and SIGKILL (launch's defaults)
SIGTERM_TIMEOUT = 5.0
SIGKILL_TIMEOUT = 5.0
_PR_SET_PDEATHSIG = 1


def ros_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return ``base`` (default ``os.environ``) with the DDS settings of design.md §3 forced.

    ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` always; ``ROS_DOMAIN_ID`` kept when set, else a
    random one in 101..200; ``ROS_LOG_DIR`` kept when set, else a new temporary folder;
    ``AMENT_PREFIX_PATH`` gets this interpreter's prefix; ``RMW_IMPLEMENTATION`` defaults to
    FastDDS.
    """
    env = dict(os.environ if base is None else base)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.pop('ROS_LOCALHOST_ONLY', None)
    if not env.get('ROS_DOMAIN_ID', '').strip():
        env['ROS_DOMAIN_ID'] = str(101 + random.SystemRandom().randrange(100))
    if not env.get('ROS_LOG_DIR'):
        env['ROS_LOG_DIR'] = tempfile.mkdtemp(prefix='l2l_nmhw_roslog_')
    prefix = sys.prefix
    ament = [p for p in env.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    if prefix not in ament:
        ament.insert(0, prefix)
    env['AMENT_PREFIX_PATH'] = os.pathsep.join(ament)
    env.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    env['PYTHONUNBUFFERED'] = '1'
    return env


def resolve_executable(node: NodeSpec, env: Mapping[str, str],
                       exec_dirs: Sequence[Path] = ()) -> str:
    """Find the executable of ``node``.

    Raises:
        LaunchError: if it is nowhere (e.g. ``rviz2`` on a pip-only install).
    """
    candidates = [Path(d) / node.exec for d in exec_dirs]
    candidates.append(Path(sys.executable).parent / node.exec)
    for prefix in env.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / 'lib' / node.pkg / node.exec)
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which(node.exec, path=env.get('PATH'))
    if found:
        return found
    raise LaunchError(f'executable {node.exec!r} of package {node.pkg!r} not found '
                      f'(looked in {[str(c.parent) for c in candidates]} and PATH); '
                      'rviz2 and robot_state_publisher need a ROS 2 distro')


def _child_setup(libc: ctypes.CDLL | None) -> None:  # runs in the child between fork and exec
    os.setsid()
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class _Proc:
    def __init__(self, spec: NodeSpec, popen: subprocess.Popen, log_path: Path) -> None:
        self.spec = spec
        self.popen = popen
        self.log_path = log_path
        self.thread: threading.Thread | None = None
        self.escalated = ''


class Launcher:
    """Start the nodes of a :class:`LaunchDescription` as subprocesses and shut them down cleanly.

    Use as a context manager (``with Launcher(desc) as launch: launch.wait()``) so the children are
    always stopped.

    Args:
        desc: the parsed launch file.
        log_dir: folder for ``<node>.log`` (default: ``$ROS_LOG_DIR/launch``).
        echo: echo nodes with ``output: screen``/``both`` to ``stream``.
        env: base environment (default ``os.environ``), passed through :func:`ros_environment`.
        exec_dirs: folders searched first for executables (tests).
        sigterm_timeout: s between SIGINT and SIGTERM.
        sigkill_timeout: s between SIGTERM and SIGKILL.
        stream: where echoed output and launcher messages go.
    """

    def __init__(self, desc: LaunchDescription, *, log_dir: str | Path | None = None,
                 echo: bool = True, env: Mapping[str, str] | None = None,
                 exec_dirs: Sequence[str | Path] = (), sigterm_timeout: float = SIGTERM_TIMEOUT,
                 sigkill_timeout: float = SIGKILL_TIMEOUT, stream: IO[str] | None = None) -> None:
        self.desc = desc
        self.env = ros_environment(env)
        self.log_dir = Path(log_dir) if log_dir else Path(self.env['ROS_LOG_DIR']) / 'launch'
        self.echo = echo
        self.exec_dirs = [Path(d) for d in exec_dirs]
        self.sigterm_timeout = sigterm_timeout
        self.sigkill_timeout = sigkill_timeout
        self.stream = stream if stream is not None else sys.stdout
        self.procs: list[_Proc] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.unexpected: list[str] = []
        self.returncodes: dict[str, int] = {}
        self._shut_down = False

    # -- messages ----------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        with self._lock:
            self.stream.write(f'[launch] {text}\n')
            self.stream.flush()

    def _pump(self, proc: _Proc) -> None:
        echo = self.echo and proc.spec.output in ('screen', 'both')
        assert proc.popen.stdout is not None
        with open(proc.log_path, 'a', encoding='utf-8', errors='replace') as log:
            for line in proc.popen.stdout:
                log.write(line)
                log.flush()
                if echo:
                    with self._lock:
                        self.stream.write(f'[{proc.spec.label}] {line}')
                        self.stream.flush()

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start every node (all processes first, then the output threads).

        Raises:
            LaunchError: an executable is missing (nothing is started then).
        """
        exes = [resolve_executable(n, self.env, self.exec_dirs) for n in self.desc.nodes]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        argvs = []
        for n, exe in zip(self.desc.nodes, exes, strict=True):
            pfile = None
            if n.params:
                pfile = self.log_dir / f'{n.label}.params.yaml'
                pfile.write_text(yaml.safe_dump({'/**': {'ros__parameters': n.parameter_values()}},
                                                sort_keys=False), encoding='utf-8')
            argvs.append((n, n.command_line(exe, None if pfile is None else str(pfile))))
        try:
            libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
            libc.prctl  # noqa: B018 - present on Linux only
        except (OSError, AttributeError):
            libc = None
        self._say(f"ROS_DOMAIN_ID={self.env['ROS_DOMAIN_ID']} ROS_AUTOMATIC_DISCOVERY_RANGE="
                  f"LOCALHOST ROS_LOG_DIR={self.env['ROS_LOG_DIR']} logs={self.log_dir}")
        for spec, argv in argvs:
            log_path = self.log_dir / f'{spec.label}.log'
            log_path.write_text(' '.join(argv) + '\n', encoding='utf-8')
            popen = subprocess.Popen(  # noqa: S603 - argv built from the launch file
                argv, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, bufsize=1,
                preexec_fn=lambda: _child_setup(libc))  # noqa: PLW1509
            self.procs.append(_Proc(spec, popen, log_path))
            self._say(f'started {spec.label} [pid {popen.pid}]: {spec.exec}')
        for p in self.procs:
            p.thread = threading.Thread(target=self._pump, args=(p,), daemon=True,
                                        name=f'launch-{p.spec.label}')
            p.thread.start()

    def request_shutdown(self) -> None:
        """Ask :meth:`wait` to return (signal-safe)."""
        self._stop.set()

    def running(self) -> list[str]:
        """Labels of the nodes whose process is still alive."""
        return [p.spec.label for p in self.procs if p.popen.poll() is None]

    def wait(self, timeout: float | None = None) -> bool:
        """Block until shutdown is requested, a node exits, or ``timeout`` s pass.

        A node that exits with a non-zero status, or any node with ``on_exit: shutdown``, requests
        shutdown; one that exits with 0 does not (as ``ros2 launch``).

        Returns:
            True if shutdown was requested (by a signal, :meth:`request_shutdown` or a node),
            False on timeout or when every node has exited.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: set[str] = set()
        while not self._stop.is_set():
            alive = 0
            for p in self.procs:
                rc = p.popen.poll()
                if rc is None:
                    alive += 1
                elif p.spec.label not in seen:
                    seen.add(p.spec.label)
                    self.returncodes[p.spec.label] = rc
                    self._say(f'{p.spec.label} exited with status {rc} (log: {p.log_path})')
                    if rc != 0 or p.spec.on_exit_shutdown:
                        self.unexpected.append(p.spec.label)
                        self._stop.set()
            if not alive:
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._stop.wait(0.1)
        return True

    def _signal_all(self, sig: int, procs: list[_Proc]) -> None:
        for p in procs:
            try:
                os.killpg(p.popen.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def _wait_all(self, procs: list[_Proc], timeout: float) -> list[_Proc]:
        deadline = time.monotonic() + timeout
        left = [p for p in procs if p.popen.poll() is None]
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [p for p in left if p.popen.poll() is None]
        return left

    def shutdown(self) -> int:
        """Stop every node (SIGINT → SIGTERM → SIGKILL per process group); return the exit code."""
        if self._shut_down:
            return self.exit_code
        self._shut_down = True
        left = [p for p in self.procs if p.popen.poll() is None]
        if left:
            self._say(f"sending SIGINT to {', '.join(p.spec.label for p in left)}")
        self._signal_all(signal.SIGINT, left)
        left = self._wait_all(left, self.sigterm_timeout)
        for sig, timeout in ((signal.SIGTERM, self.sigkill_timeout), (signal.SIGKILL, 5.0)):
            if not left:
                break
            for p in left:
                p.escalated = p.escalated or signal.Signals(sig).name
            self._say(f"{signal.Signals(sig).name} to {', '.join(p.spec.label for p in left)} "
                      '(did not stop in time)')
            self._signal_all(sig, left)
            left = self._wait_all(left, timeout)
        # whatever a node left behind in its process group goes too
        self._signal_all(signal.SIGKILL, self.procs)
        for p in self.procs:
            p.popen.wait()
            self.returncodes.setdefault(p.spec.label, p.popen.returncode)
            if p.thread is not None:
                p.thread.join(timeout=2.0)
        return self.exit_code

    @property
    def exit_code(self) -> int:
        """0 if every node exited with 0 without escalation and none died early; else 1."""
        bad = [p for p in self.procs if p.escalated or p.popen.returncode != 0]
        return 1 if (bad or self.unexpected) else 0

    def __enter__(self) -> Launcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


# ---- command line ----------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``l2l-nmhw launch``."""
    parser.add_argument('target', nargs='+', metavar='[PKG] FILE [name:=value ...]',
                        help='a launch file path, or a package and a file in its share/launch; '
                             'then launch arguments as name:=value')
    parser.add_argument('--show-args', action='store_true',
                        help='print the declared launch arguments and exit')
    parser.add_argument('--quiet', action='store_true', help='do not echo node output')


def _split_target(target: Sequence[str]) -> tuple[Path, dict[str, str]]:
    pos = [t for t in target if ':=' not in t]
    assignments = [t for t in target if ':=' in t]
    if len(pos) == 1:
        path = Path(pos[0])
    elif len(pos) == 2:
        path = find_package_share(pos[0]) / 'launch' / pos[1]
    else:
        raise LaunchError(f'expected [PKG] FILE, got {pos}')
    values = {}
    for a in assignments:
        k, v = a.split(':=', 1)
        values[k] = v
    return path, values


def run(args: argparse.Namespace) -> int:
    """Run a launch file until SIGINT/SIGTERM; return the exit code."""
    try:
        path, values = _split_target(args.target)
        desc = load_launch_file(path, {} if args.show_args else values)
        if args.show_args:
            for a in desc.args:
                extra = f" (choices: {', '.join(a.choices)})" if a.choices else ''
                print(f"'{a.name}': {a.description}{extra}\n    (default: '{a.default}')")
            return 0
        launcher = Launcher(desc, echo=not args.quiet)
        launcher.start()
    except (LaunchError, FileNotFoundError) as exc:
        print(f'[launch] error: {exc}', file=sys.stderr)
        return 2
    previous = {s: signal.signal(s, lambda *_: launcher.request_shutdown())
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        launcher.wait()
    finally:
        code = launcher.shutdown()
        for s, h in previous.items():
            signal.signal(s, h)
    print(f'[launch] exit {code}: ' + ', '.join(f'{k}={v}' for k, v in
                                                 launcher.returncodes.items()))
    return code
