"""The package's own small launcher: runs a ROS 2 YAML launch file without ``ros2 launch``.

``l2l-nmhw launch [l2l_nmhw_ros] reach.launch.yaml [name:=value ...]`` does what ``ros2 launch``
does for the subset of the format in :mod:`l2l_nmhw_ros.ros.tools.launch_file`:

- one subprocess per node, started from its console script (``<venv>/bin/<exec>``; then
  ``<prefix>/lib/<pkg>/<exec>`` for every ``AMENT_PREFIX_PATH`` prefix; then ``PATH``), with
  ``--ros-args -r __node:= -r __ns:= --params-file <from> ... --params-file <single params>
  -r from:=to`` (single parameters typed as launch_ros does, written to
  ``<log_dir>/<node>.params.yaml``);
- the DDS environment of the design (§3) forced on every child (:func:`ros_environment`):
  ``ROS_DOMAIN_ID`` kept when set else a private one in 101..200 (printed), ``ROS_LOG_DIR`` kept
  when set else a fresh temporary folder, ``AMENT_PREFIX_PATH`` including this venv,
  ``PYTHONUNBUFFERED=1``, ``ROS_LOCALHOST_ONLY`` removed (Kilted ignores it), and DDS on loopback
  (:func:`dds_environment`): the package's Fast DDS profile ``config/dds/fastdds_loopback.xml``
  (every DDS socket bound to 127.0.0.1, discovery by unicast to 127.0.0.1) with
  ``ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT``, or ``LOCALHOST`` without that profile (a
  profile of the user's own, ``L2L_NMHW_DDS=network``, another RMW);
- each child in its own process group (``setsid``) with ``PR_SET_PDEATHSIG = SIGTERM`` on Linux,
  so neither a Ctrl-C at the terminal nor the launcher's death leaves an orphan;
- output: every node's stdout/stderr goes to ``<log_dir>/<node>.log``; ``output: screen`` (or
  ``both``) also echoes it, prefixed ``[node]``;
- a node that exits is reported (status or signal) and, as in ``ros2 launch``, the others keep
  running, unless it has ``on_exit: shutdown``; a node with ``respawn: true`` is started again
  after ``respawn_delay`` s with the same command line, at most ``respawn_max_retries`` times
  (-1: no limit), its output appended to the same log after a ``[launch] respawned`` line that
  gives the reason (exit status or signal); ``on_exit: shutdown`` wins over ``respawn`` (as in
  ``launch``), and nothing is respawned once shutdown has begun. A supervisor thread does this,
  so respawning also works for callers that never call :meth:`Launcher.wait` (the demo);
- shutdown on SIGINT/SIGTERM, or when a node with ``on_exit: shutdown`` exits: SIGINT to every
  process group, SIGTERM after ``sigterm_timeout`` s, SIGKILL after another ``sigkill_timeout`` s
  (the defaults of ``launch``), then SIGKILL to whatever is left in the groups.

Exit code: 0 when every node exited with status 0 within the SIGINT grace period and none had
exited before with a non-zero status (a node that was respawned counts as having crashed); 1
otherwise (a node crashed, needed SIGTERM/SIGKILL, or could not start); 2 for an invalid launch
file (or an invalid ``L2L_NMHW_DDS``).
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

from l2l_nmhw_ros.errors import ConfigError
from l2l_nmhw_ros.ros.tools.launch_file import (LaunchDescription, LaunchError, NodeSpec,
                                          find_package_share, load_launch_file)
from l2l_nmhw_ros.share import find_share

#: seconds between SIGINT and SIGTERM, and between SIGTERM and SIGKILL (launch's defaults)
SIGTERM_TIMEOUT = 5.0
SIGKILL_TIMEOUT = 5.0
_PR_SET_PDEATHSIG = 1
#: seconds between two looks of the supervisor at the children
_SUPERVISE_PERIOD = 0.05

#: the package's Fast DDS profile (share file) that keeps every DDS socket on 127.0.0.1
DDS_PROFILE = 'config/dds/fastdds_loopback.xml'
#: environment switch of the DDS transports: ``loopback`` (default) or ``network``
DDS_SWITCH = 'L2L_NMHW_DDS'
DDS_MODES = ('loopback', 'network')
#: the variable Fast DDS 3.x reads its default XML profile file from (set to the profile)
PROFILE_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'
#: every variable that names a profile (Fast DDS 2.x read the second; rmw_fastrtps of Kilted
#: still loads it, with a deprecation warning): either, set by the user, is the user's profile.
#: Only the first is set: with both naming one file, Fast DDS 3.2 + rmw_fastrtps 9.3 load it
#: twice and log errors for the duplicate transport ids (measured).
PROFILE_VARIABLES = (PROFILE_VARIABLE, 'FASTRTPS_DEFAULT_PROFILES_FILE')
#: RMW implementations built on Fast DDS (the profile means nothing to others)
FASTDDS_RMWS = ('rmw_fastrtps_cpp', 'rmw_fastrtps_dynamic_cpp')
DEFAULT_RMW = 'rmw_fastrtps_cpp'


def loopback_profile() -> Path | None:
    """The package's loopback Fast DDS profile, or None if the share file is missing."""
    try:
        return find_share(DDS_PROFILE)
    except FileNotFoundError:
        return None


def _same_file(a: str | Path, b: str | Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def dds_environment(base: Mapping[str, str], *, profile: str | Path | None = None,
                    spawn: bool = True) -> dict[str, str]:
    """Return ``base`` with the DDS transports and discovery range of design.md §3 chosen.

    ``ROS_LOCALHOST_ONLY`` is removed (Kilted ignores it) and
    ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` is set, then, for a Fast DDS RMW
    (``RMW_IMPLEMENTATION``, default ``rmw_fastrtps_cpp``) and ``L2L_NMHW_DDS`` unset or
    ``loopback``: unless the user set a profile of their own (either variable of
    :data:`PROFILE_VARIABLES`), ``FASTDDS_DEFAULT_PROFILES_FILE`` names ``profile`` (default:
    the package's :data:`DDS_PROFILE`), and where that profile is in force the range becomes
    ``SYSTEM_DEFAULT``: for ``LOCALHOST`` rmw_fastrtps adds a UDP transport of its own on every
    interface, with ``SYSTEM_DEFAULT`` it leaves transports and discovery to the profile (which
    does LOCALHOST's discovery; see the XML). ``L2L_NMHW_DDS=network`` (a robot network) or a
    profile of the user's own leave Fast DDS's transports alone, with ``LOCALHOST``.

    Args:
        base: the environment (not changed).
        profile: the loopback profile (tests); default the package's share file. When it is
            missing, nothing but the range ``LOCALHOST`` is set.
        spawn: the result is the whole environment of a new process (the launcher's children,
            the test session). With False (an environment some caller may copy single
            variables from into its own process, as the demo does) ``SYSTEM_DEFAULT`` is only
            set when ``base`` already names the profile: ``SYSTEM_DEFAULT`` without the profile
            would be Fast DDS's multicast discovery on every interface.

    Raises:
        ConfigError: ``L2L_NMHW_DDS`` has a value other than ``loopback`` or ``network``.
    """
    env = dict(base)
    env.pop('ROS_LOCALHOST_ONLY', None)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    mode = env.get(DDS_SWITCH, '').strip().lower() or 'loopback'
    if mode not in DDS_MODES:
        raise ConfigError(f'{DDS_SWITCH}={env[DDS_SWITCH]!r}: expected one of {list(DDS_MODES)} '
                          '(loopback: every DDS socket on 127.0.0.1; network: Fast DDS '
                          'defaults)')
    if profile is None:
        profile = loopback_profile()
    if profile is None or not Path(profile).is_file():
        return env
    if mode == 'network':  # Fast DDS's defaults: the package's profile goes, a user's stays
        for v in PROFILE_VARIABLES:
            if env.get(v) and _same_file(env[v], profile):
                del env[v]
        return env
    if env.get('RMW_IMPLEMENTATION', DEFAULT_RMW) not in FASTDDS_RMWS:
        return env
    given = [env[v] for v in PROFILE_VARIABLES if env.get(v)]
    if given and not all(_same_file(g, profile) for g in given):
        return env  # the user's own profile
    env[PROFILE_VARIABLE] = str(profile)
    env.pop(PROFILE_VARIABLES[1], None)  # ours too: loaded twice (see PROFILE_VARIABLES)
    if spawn or given:
        env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'SYSTEM_DEFAULT'
    return env


#: the variables that decide this process's DDS set-up (copied by :func:`use_in_this_process`)
DDS_VARIABLES = ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_LOCALHOST_ONLY', *PROFILE_VARIABLES)


def use_in_this_process(env: Mapping[str, str], keys: Sequence[str] = DDS_VARIABLES) -> None:
    """Make ``os.environ`` agree with ``env`` on ``keys`` (set, or removed where ``env`` lacks
    them), before this process initialises rclpy (a client joining the graph as its nodes do)."""
    for k in keys:
        if k in env:
            os.environ[k] = env[k]
        else:
            os.environ.pop(k, None)


def ros_environment(base: Mapping[str, str] | None = None, *,
                    spawn: bool = False) -> dict[str, str]:
    """Return ``base`` (default ``os.environ``) with the DDS settings of design.md §3 forced.

    DDS transports and discovery range as :func:`dds_environment` (``spawn`` is passed on: the
    launcher passes True for its children); ``ROS_DOMAIN_ID`` kept when set, else a random one
    in 101..200; ``ROS_LOG_DIR`` kept when set, else a new temporary folder;
    ``AMENT_PREFIX_PATH`` gets this interpreter's prefix; ``RMW_IMPLEMENTATION`` defaults to
    FastDDS.

    Raises:
        ConfigError: invalid ``L2L_NMHW_DDS``.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault('RMW_IMPLEMENTATION', DEFAULT_RMW)
    env = dds_environment(env, spawn=spawn)
    if not env.get('ROS_DOMAIN_ID', '').strip():
        env['ROS_DOMAIN_ID'] = str(101 + random.SystemRandom().randrange(100))
    if not env.get('ROS_LOG_DIR'):
        env['ROS_LOG_DIR'] = tempfile.mkdtemp(prefix='l2l_nmhw_roslog_')
    prefix = sys.prefix
    ament = [p for p in env.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    if prefix not in ament:
        ament.insert(0, prefix)
    env['AMENT_PREFIX_PATH'] = os.pathsep.join(ament)
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


def describe_status(rc: int) -> str:
    """``status 3`` for an exit status, ``signal SIGKILL`` for a negative Popen return code."""
    if rc < 0:
        try:
            return f'signal {signal.Signals(-rc).name}'
        except ValueError:
            return f'signal {-rc}'
    return f'status {rc}'


class _Proc:
    """One node: its command line and its current process (replaced when respawned)."""

    def __init__(self, spec: NodeSpec, argv: list[str], log_path: Path) -> None:
        self.spec = spec
        self.argv = argv
        self.log_path = log_path
        self.popen: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None
        self.escalated = ''
        #: the exit of the current process was handled (reported, respawn decided)
        self.reported = False
        #: monotonic time of a scheduled respawn, None when none is due
        self.respawn_at: float | None = None
        self.respawns = 0
        #: every pid this node had, in order
        self.pids: list[int] = []
        #: exit statuses of earlier processes of this node that exited while the launch ran
        self.exits: list[int] = []


class Launcher:
    """Start the nodes of a :class:`LaunchDescription` as subprocesses and shut them down cleanly.

    Use as a context manager (``with Launcher(desc) as launch: launch.wait()``) so the children are
    always stopped.

    Args:
        desc: the parsed launch file.
        log_dir: folder for ``<node>.log`` (default: ``$ROS_LOG_DIR/launch``).
        echo: echo nodes with ``output: screen``/``both`` to ``stream``.
        env: base environment (default ``os.environ``), passed through :func:`ros_environment`
            (as a child environment: ``spawn=True``).
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
        self.env = ros_environment(env, spawn=True)
        self.log_dir = Path(log_dir) if log_dir else Path(self.env['ROS_LOG_DIR']) / 'launch'
        self.echo = echo
        self.exec_dirs = [Path(d) for d in exec_dirs]
        self.sigterm_timeout = sigterm_timeout
        self.sigkill_timeout = sigkill_timeout
        self.stream = stream if stream is not None else sys.stdout
        self.procs: list[_Proc] = []
        #: shutdown requested (signal, request_shutdown, a node with on_exit: shutdown)
        self._stop = threading.Event()
        #: every node has exited and none will be respawned
        self._all_done = threading.Event()
        #: the supervisor must end (shutdown is over). It lives until then: Linux sends
        #: PR_SET_PDEATHSIG when the *thread* that forked a child ends, and it forks respawns
        self._closing = threading.Event()
        self._lock = threading.Lock()
        #: held while the supervisor handles exits and respawns; shutdown takes it once
        self._spawn_lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self._libc: ctypes.CDLL | None = None
        self.unexpected: list[str] = []
        self.returncodes: dict[str, int] = {}
        self._shut_down = False

    # -- messages ----------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        with self._lock:
            self.stream.write(f'[launch] {text}\n')
            self.stream.flush()

    def _pump(self, spec: NodeSpec, popen: subprocess.Popen, log_path: Path) -> None:
        echo = self.echo and spec.output in ('screen', 'both')
        assert popen.stdout is not None
        with open(log_path, 'a', encoding='utf-8', errors='replace') as log:
            for line in popen.stdout:
                log.write(line)
                log.flush()
                if echo:
                    with self._lock:
                        self.stream.write(f'[{spec.label}] {line}')
                        self.stream.flush()

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start every node (all processes first, then the output threads and the supervisor).

        Raises:
            LaunchError: an executable is missing (nothing is started then).
        """
        exes = [resolve_executable(n, self.env, self.exec_dirs) for n in self.desc.nodes]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for n, exe in zip(self.desc.nodes, exes, strict=True):
            pfile = None
            if n.params:
                pfile = self.log_dir / f'{n.label}.params.yaml'
                pfile.write_text(yaml.safe_dump({'/**': {'ros__parameters': n.parameter_values()}},
                                                sort_keys=False), encoding='utf-8')
            argv = n.command_line(exe, None if pfile is None else str(pfile))
            self.procs.append(_Proc(n, argv, self.log_dir / f'{n.label}.log'))
        try:
            libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
            libc.prctl  # noqa: B018 - present on Linux only
        except (OSError, AttributeError):
            libc = None
        self._libc = libc
        profile = self.env.get(PROFILE_VARIABLE, '')
        self._say(f"ROS_DOMAIN_ID={self.env['ROS_DOMAIN_ID']} ROS_AUTOMATIC_DISCOVERY_RANGE="
                  f"{self.env['ROS_AUTOMATIC_DISCOVERY_RANGE']} "
                  + (f'{PROFILE_VARIABLE}={profile} ' if profile else '')
                  + f"ROS_LOG_DIR={self.env['ROS_LOG_DIR']} logs={self.log_dir}")
        for p in self.procs:
            p.log_path.write_text(' '.join(p.argv) + '\n', encoding='utf-8')
            self._popen(p)
            self._say(f'started {p.spec.label} [pid {p.popen.pid}]: {p.spec.exec}')
        for p in self.procs:
            self._start_pump(p)
        self._supervisor = threading.Thread(target=self._supervise, daemon=True,
                                            name='launch-supervisor')
        self._supervisor.start()

    def _popen(self, p: _Proc) -> None:
        libc = self._libc
        p.popen = subprocess.Popen(  # noqa: S603 - argv built from the launch file
            p.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1,
            preexec_fn=lambda: _child_setup(libc))  # noqa: PLW1509
        p.pids.append(p.popen.pid)
        p.reported = False

    def _start_pump(self, p: _Proc) -> None:
        assert p.popen is not None
        p.thread = threading.Thread(target=self._pump, args=(p.spec, p.popen, p.log_path),
                                    daemon=True, name=f'launch-{p.spec.label}')
        p.thread.start()

    def _supervise(self) -> None:
        while not self._closing.is_set():
            with self._spawn_lock:
                if not self._shut_down:
                    self._look()
            self._closing.wait(_SUPERVISE_PERIOD)

    def _look(self) -> None:
        """Handle exits and due respawns once (supervisor thread, under the spawn lock)."""
        done = True
        for p in self.procs:
            assert p.popen is not None
            if p.respawn_at is not None:
                done = False
                if self._stop.is_set():
                    p.respawn_at = None  # shutdown requested: no more respawns
                    self._say(f'{p.spec.label}: respawn cancelled (shutting down)')
                elif time.monotonic() >= p.respawn_at:
                    self._respawn(p)
                continue
            rc = p.popen.poll()
            if rc is None:
                done = False
                continue
            if p.reported:
                continue
            p.reported = True
            p.exits.append(rc)
            self.returncodes[p.spec.label] = rc
            self._say(f'{p.spec.label} [pid {p.popen.pid}] exited with {describe_status(rc)} '
                      f'(log: {p.log_path})')
            if rc != 0 or p.spec.on_exit_shutdown:
                self.unexpected.append(p.spec.label)
            if p.spec.on_exit_shutdown:
                self._say(f'{p.spec.label} has on_exit: shutdown: shutting the launch down')
                self._stop.set()
            elif p.spec.respawn and not self._stop.is_set():
                if 0 <= p.spec.respawn_max_retries <= p.respawns:
                    self._say(f'{p.spec.label}: not respawned (respawn_max_retries='
                              f'{p.spec.respawn_max_retries} reached)')
                else:
                    p.respawn_at = time.monotonic() + p.spec.respawn_delay
                    done = False
                    self._say(f'{p.spec.label}: respawning in {p.spec.respawn_delay:g} s')
        if done and not self._all_done.is_set():
            self._all_done.set()

    def _respawn(self, p: _Proc) -> None:
        assert p.popen is not None
        old = p.popen
        try:  # whatever the dead node left in its process group goes first
            os.killpg(old.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if p.thread is not None:
            p.thread.join(timeout=2.0)  # the old output, to the end, before the respawn line
        p.respawns += 1
        reason = describe_status(old.returncode)
        limit = ('' if p.spec.respawn_max_retries < 0
                 else f' of {p.spec.respawn_max_retries}')
        with open(p.log_path, 'a', encoding='utf-8') as log:
            log.write(f'[launch] respawned {p.spec.label} (respawn {p.respawns}{limit}) after '
                      f'pid {old.pid} exited with {reason}\n')
        p.respawn_at = None
        try:
            self._popen(p)
        except OSError as exc:  # e.g. the executable was removed meanwhile
            p.reported = True
            self.unexpected.append(p.spec.label)
            self._say(f'{p.spec.label}: respawn failed: {exc}')
            return
        self._start_pump(p)
        self._say(f'respawned {p.spec.label} [pid {p.popen.pid}] (respawn {p.respawns}{limit}; '
                  f'pid {old.pid} exited with {reason})')

    def request_shutdown(self) -> None:
        """Ask :meth:`wait` to return (signal-safe)."""
        self._stop.set()

    def running(self) -> list[str]:
        """Labels of the nodes whose process is still alive."""
        return [p.spec.label for p in self.procs
                if p.popen is not None and p.popen.poll() is None]

    def wait(self, timeout: float | None = None) -> bool:
        """Block until shutdown is requested, every node has exited, or ``timeout`` s pass.

        Shutdown is requested by a signal, :meth:`request_shutdown`, or a node with
        ``on_exit: shutdown`` that exits; any other node that exits is reported and respawned
        when it has ``respawn: true``, and the launch goes on (as ``ros2 launch``).

        Returns:
            True if shutdown was requested, False on timeout or when every node has exited and
            none is to be respawned.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            if self._all_done.is_set():
                return self._stop.is_set()
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
        """Stop respawning, then every node (SIGINT → SIGTERM → SIGKILL per process group).

        Returns:
            The exit code (:attr:`exit_code`).
        """
        if self._shut_down:
            return self.exit_code
        self._stop.set()
        with self._spawn_lock:  # a respawn under way completes; the supervisor does no more
            self._shut_down = True
            self._look_after_supervisor()
        try:
            return self._stop_all()
        finally:
            self._closing.set()
            if self._supervisor is not None:
                self._supervisor.join()

    def _stop_all(self) -> int:
        procs = [p for p in self.procs if p.popen is not None]
        left = [p for p in procs if p.popen.poll() is None]
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
        self._signal_all(signal.SIGKILL, procs)
        for p in procs:
            p.popen.wait()
            if p.thread is not None:
                p.thread.join(timeout=2.0)
        # the last process of each node, in launch-file order
        self.returncodes = {p.spec.label: p.popen.returncode for p in procs}
        return self.exit_code

    def _look_after_supervisor(self) -> None:
        """Record exits the supervisor had not seen yet (they happened before shutdown)."""
        for p in self.procs:
            p.respawn_at = None
            if p.popen is None or p.reported:
                continue
            rc = p.popen.poll()
            if rc is not None:
                p.reported = True
                p.exits.append(rc)
                self._say(f'{p.spec.label} [pid {p.popen.pid}] exited with '
                          f'{describe_status(rc)} (log: {p.log_path})')
                if rc != 0 or p.spec.on_exit_shutdown:
                    self.unexpected.append(p.spec.label)

    @property
    def exit_code(self) -> int:
        """0 if every node exited with 0 without escalation and none died early; else 1."""
        bad = [p for p in self.procs
               if p.escalated or p.popen is None or p.popen.returncode != 0]
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
    except (ConfigError, FileNotFoundError) as exc:  # LaunchError is a ConfigError
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
