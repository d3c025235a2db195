"""``snn_controller``: reach targets in, learning signals out, executions evaluated.

Subscribes ``reach_target`` (geometry_msgs/PointStamped, frame ``control.frame_id`` or empty;
remap rviz's ``clicked_point`` to it), ``joint_states`` and ``pcm_accelerator/status``; publishes
``pcm_accelerator/learning_signal`` (Float32MultiArray, dims ``time`` × ``neuron``), ``~/result``
(DiagnosticArray, one per episode), ``~/markers`` (MarkerArray: ``target``, ``demonstration``,
``executed_baseline``, ``executed``) and ``~/demonstration`` (JointTrajectory in ``arm.joints``
order, time_from_start in network time: step k at (k + 1) · dt).

One episode at a time (:mod:`l2l_nmhw_ros.l2l.episode`): reachability (IK), demonstration, LSG,
learning signal; the first accelerator status with the same ``learning_signal_crc32`` at the start
of an accelerator episode (phase ``computed`` or ``home``) acknowledges it and names the
accelerator's ``episode``; until then, or until a status lists it in ``queued_crc32``, the signal
is re-sent every ``control.signal_retry`` s (a sample published right after discovery can be
dropped by DDS; the accelerator ignores copies of the running or a queued signal). That
episode's statuses give the execution windows (``phase_start``, ``phase_duration``,
``phase_hold``, ``time_scale``) of the ``baseline`` and ``adapted`` executions, and
``phase = done`` ends the episode: the measured
joint states of each window are evaluated (FK → errors vs the demonstration and the target) and
published. Targets arriving meanwhile (or before the first joint states: the executions could
not be evaluated) wait in a queue of ``control.queue_size`` (when full the oldest is dropped,
logged); an episode without an answer for ``control.episode_timeout`` s (wall
clock) is abandoned with an ERROR result. Bad messages (wrong frame, NaN, unknown joints) are
logged (throttled), counted and ignored.

``~/result`` values: ``status`` (ok | unreachable | timeout | no_joint_states | incomplete: the
accelerator ended the episode without an adapted execution, e.g. ``~/reset``), ``episode``,
``target_x/y/z`` [m], ``ik_distance`` [m], ``error_final_{baseline,adapted}`` [m] (end effector to
target at the end of the window), ``error_path_{baseline,adapted}`` [m] (mean distance to the
demonstration), ``error_max_*`` [m], ``joint_rmse_*`` [rad], ``arm_moved_rad``, ``lsg_ms``,
``devices_programmed``, ``devices_restored``, ``weights_changed``, ``adaptation_latency_ms``,
``time_scale_*``, ``learning_signal_crc32``, ``signal_sends`` (1 unless re-sent),
``accelerator_episode``.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PointStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.l2l import checkpoint
from l2l_nmhw_ros.l2l.episode import (Demonstration, ReachPlanner, UnreachableTarget, evaluate,
                                      network_config, resolve_checkpoint)
from l2l_nmhw_ros.ros import qos
from l2l_nmhw_ros.ros.convert import (BadMessage, diag_array, diag_status, diag_values,
                                      joint_positions, joint_trajectory, line_marker,
                                      signal_crc, sphere_marker, stamp_to_sec, to_multiarray)
from l2l_nmhw_ros.ros.pcm_accelerator_node import LABELS, LEARNING_SIGNAL, STATUS, load_config
from l2l_nmhw_ros.ros.runtime import run_node

THROTTLE_S = 5.0
#: joint-state samples kept for evaluation (10 min at 50 Hz)
JOINT_BUFFER = 30000
EXECUTIONS = ('baseline', 'adapted')
#: accelerator phases that acknowledge a learning signal: the start of its episode
ACK_PHASES = ('computed', 'home')
COLORS = {'target': (1.0, 0.2, 0.2, 1.0), 'demonstration': (0.2, 0.4, 1.0, 1.0),
          'executed_baseline': (0.6, 0.6, 0.6, 1.0), 'executed': (0.1, 0.8, 0.2, 1.0)}


class SnnControllerNode(Node):
    """The controller node (see the module docstring)."""

    def __init__(self, context: Any = None, **kwargs: Any) -> None:
        super().__init__('snn_controller', context=context, **kwargs)
        self.cfg = load_config(self, {'trainee': C.TraineeConfig, 'lsg': C.LSGConfig,
                                      'task': C.TaskConfig, 'arm': C.ArmConfig,
                                      'control': C.ControlConfig})
        path = resolve_checkpoint(self.cfg.control.checkpoint)
        weights, meta = checkpoint.load(path)
        self.cfg, diffs = network_config(self.cfg, meta)
        if diffs:
            self.get_logger().info('network sections from the checkpoint: ' + '; '.join(diffs))
        self.planner = ReachPlanner(self.cfg, weights)
        self.joints = list(self.cfg.arm.joints)
        self.frame = self.cfg.control.frame_id
        self.pub_signal = self.create_publisher(Float32MultiArray, LEARNING_SIGNAL, qos.COMMANDS)
        self.pub_result = self.create_publisher(DiagnosticArray, '~/result', qos.COMMANDS)
        self.pub_markers = self.create_publisher(MarkerArray, '~/markers', qos.LATCHED)
        self.pub_demo = self.create_publisher(JointTrajectory, '~/demonstration', qos.LATCHED)
        self.create_subscription(PointStamped, 'reach_target', self._on_target, qos.COMMANDS)
        self.create_subscription(JointState, 'joint_states', self._on_joint_states, qos.STATE)
        self.create_subscription(DiagnosticArray, STATUS, self._on_status, qos.COMMANDS)
        self.js_t: deque[float] = deque(maxlen=JOINT_BUFFER)
        self.js_q: deque[np.ndarray] = deque(maxlen=JOINT_BUFFER)
        self.targets: deque[np.ndarray] = deque()
        self.rejected: dict[str, int] = {}
        self.episode = 0
        self.current: dict[str, Any] | None = None
        self.results: list[dict[str, Any]] = []
        self.create_timer(0.5, self._watchdog, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f'checkpoint {path}; targets in frame {self.frame!r} on '
                               f'{self.resolve_topic_name("reach_target")}')

    # ---- inputs ------------------------------------------------------------------------------
    def _reject(self, what: str, reason: str) -> None:
        self.rejected[what] = self.rejected.get(what, 0) + 1
        self.get_logger().warning(f'ignored {what}: {reason}', throttle_duration_sec=THROTTLE_S)

    def _on_joint_states(self, msg: JointState) -> None:
        try:
            q = joint_positions(msg, self.joints)
        except BadMessage as exc:
            self._reject('joint_states', str(exc))
            return
        t = stamp_to_sec(msg.header.stamp)
        if t == 0.0:
            t = self.get_clock().now().nanoseconds * 1e-9
        if self.js_t and t < self.js_t[-1]:  # time went back (sim reset): start over
            self.js_t.clear()
            self.js_q.clear()
        self.js_t.append(t)
        self.js_q.append(q)
        if self.current is None and self.targets:
            self._next()  # targets waited for the first joint states

    def _on_target(self, msg: PointStamped) -> None:
        p = np.array([msg.point.x, msg.point.y, msg.point.z], dtype=np.float64)
        if msg.header.frame_id not in ('', self.frame):
            self._reject('reach_target', f'frame {msg.header.frame_id!r} is not {self.frame!r} '
                         '(no tf2 here: send targets in the arm base frame)')
            return
        if not np.isfinite(p).all():
            self._reject('reach_target', f'non-finite point {p.tolist()}')
            return
        if self.current is None and self.js_t:
            self._start(p)
            return
        if not self.js_t:
            self.get_logger().warning('no joint_states received yet: the target waits for the '
                                      'arm', throttle_duration_sec=THROTTLE_S)
        if len(self.targets) >= self.cfg.control.queue_size:
            old = self.targets.popleft()
            self.get_logger().warning(f'target queue full ({self.cfg.control.queue_size}): '
                                      f'dropped the oldest target {np.round(old, 3).tolist()}')
        self.targets.append(p)
        self.get_logger().info(f'episode {self.episode} running: target '
                               f'{np.round(p, 3).tolist()} queued ({len(self.targets)} waiting)')

    # ---- episode -----------------------------------------------------------------------------
    def _start(self, p: np.ndarray) -> None:
        self.episode += 1
        try:
            demo = self.planner.plan(p)
        except UnreachableTarget as exc:
            self.get_logger().warning(f'episode {self.episode}: {exc}')
            self._publish_result({'status': 'unreachable', 'ik_distance': exc.distance}, p,
                                 DiagnosticStatus.ERROR, str(exc))
            self._next()
            return
        c0 = time.perf_counter()
        sig = self.planner.learning_signal(demo)
        lsg_ms = 1e3 * (time.perf_counter() - c0)
        crc = signal_crc(sig)
        self.current = {'demo': demo, 'crc': crc, 'phases': {}, 'summary': {}, 'lsg_ms': lsg_ms,
                        'deadline': time.monotonic() + self.cfg.control.episode_timeout,
                        'acc_episode': None, 'sends': 0, 'sent_at': 0.0}
        self.pub_demo.publish(joint_trajectory(self.joints, demo.q, self.cfg.task.dt,
                                               self.frame))
        self._publish_markers(demo)
        self.current['signal'] = to_multiarray(sig, LABELS)
        self.get_logger().info(
            f'episode {self.episode}: target {np.round(p, 3).tolist()} m, joint goal '
            f'{np.round(demo.q_goal, 3).tolist()} rad; LSG {lsg_ms:.0f} ms, crc {crc}')
        self._send_signal()

    def _send_signal(self) -> None:
        # Reliable + volatile is not enough on its own: right after discovery a sample can reach a
        # reader that has not matched the writer yet, and DDS drops it. So the signal is sent
        # again every control.signal_retry s (checked by the 0.5 s watchdog) until a status with
        # its CRC acknowledges it or reports it queued (the accelerator ignores a signal identical
        # to the running or a queued one).
        cur = self.current
        if cur is None or 'signal' not in cur or cur.get('queued'):
            return
        if self.pub_signal.get_subscription_count() == 0:
            if not cur.get('waiting'):
                self.get_logger().warning('no subscriber on the learning-signal topic yet '
                                          '(pcm_accelerator not up?): waiting')
            cur['waiting'] = True
            return
        now = time.monotonic()
        if cur['sends'] and now - cur['sent_at'] < self.cfg.control.signal_retry:
            return
        if cur['sends']:
            self.get_logger().warning(
                f'episode {self.episode}: no acknowledgement of learning signal {cur["crc"]} '
                f'within {self.cfg.control.signal_retry} s: sending it again '
                f'(send {cur["sends"] + 1})', throttle_duration_sec=THROTTLE_S)
        self.pub_signal.publish(cur['signal'])
        cur['sends'] += 1
        cur['sent_at'] = now

    def _on_status(self, msg: DiagnosticArray) -> None:
        cur = self.current
        if cur is None:
            return
        for st in msg.status:
            v = diag_values(st)
            if cur['acc_episode'] is None and 'queued_crc32' in v:
                queued = cur['crc'] in v['queued_crc32'].split(',')
                if queued and not cur.get('queued'):
                    self.get_logger().info(f'episode {self.episode}: learning signal queued by '
                                           'the accelerator')
                cur['queued'] = queued  # while it holds it: no re-sends (dropped: re-send)
            if v.get('learning_signal_crc32') != cur['crc']:
                continue
            phase, event = v.get('phase', ''), v.get('event', '')
            if cur['acc_episode'] is None:
                # acknowledged only by the START of an accelerator episode with this signal: a
                # status from later phases or 'done' belongs to an earlier episode with the same
                # signal (same target again, or one this controller abandoned); joining it midway
                # would miss its execution windows, so keep re-sending until a new one starts
                if phase not in ACK_PHASES:
                    continue
                cur['acc_episode'] = v.get('episode')
                cur.pop('signal', None)
            elif v.get('episode') != cur['acc_episode']:
                continue
            cur['summary'] = v
            if phase in EXECUTIONS and event == 'start':
                try:
                    cur['phases'][phase] = {k: float(v[k]) for k in (
                        'phase_start', 'phase_duration', 'phase_hold', 'time_scale')}
                except (KeyError, ValueError) as exc:
                    self._reject('status', f'phase {phase} without timing ({exc})')
            if phase == 'done':  # its 'end' event, or (if that was lost) the next periodic one
                self._finish()
                return

    def _finish(self) -> None:
        cur = self.current
        demo: Demonstration = cur['demo']
        s = cur['summary']
        values: dict[str, Any] = {'status': 'ok', 'ik_distance': demo.ik_distance,
                                  'lsg_ms': cur['lsg_ms'], 'signal_sends': cur['sends'],
                                  'accelerator_episode': cur['acc_episode']}
        for key in ('devices_programmed', 'devices_restored', 'weights_changed',
                    'adaptation_latency_ms', 'time_scale_baseline', 'time_scale_adapted',
                    'learning_signal_crc32', 'trainee_rate_hz'):
            if key in s:
                values[key] = s[key]
        t = np.fromiter(self.js_t, dtype=np.float64)
        q = np.array(self.js_q) if self.js_q else np.zeros((0, len(self.joints)))
        level, notes, moved = DiagnosticStatus.OK, [], 0.0
        executed = {}
        for name in EXECUTIONS:
            ph = cur['phases'].get(name)
            if ph is None:
                continue
            try:
                ev = evaluate(self.planner, demo, t, q, ph['phase_start'], ph['time_scale'],
                              ph['phase_start'] + ph['phase_duration'] + ph['phase_hold'])
            except ValueError as exc:
                level = DiagnosticStatus.ERROR
                values['status'] = 'no_joint_states'
                span = f'{t[0]:.3f}..{t[-1]:.3f} s' if len(t) else 'none'
                values[f'evaluation_error_{name}'] = f'{exc} (buffer: {len(t)} samples, {span})'
                notes.append(f'{name}: {exc}')
                continue
            executed[name] = ev
            moved = max(moved, ev.moved)
            values[f'error_final_{name}'] = ev.final_error
            values[f'error_path_{name}'] = ev.path_error
            values[f'error_max_{name}'] = ev.max_error
            values[f'joint_rmse_{name}'] = ev.joint_rmse
        values['arm_moved_rad'] = moved
        if 'adapted' in executed:
            msg = f"final error {executed['adapted'].final_error:.3f} m after the update"
            if 'baseline' in executed:
                msg += f" ({executed['baseline'].final_error:.3f} m before)"
        else:
            msg = '; '.join(notes) or 'no adapted execution reported'
            level = DiagnosticStatus.ERROR
            if values['status'] == 'ok':
                values['status'] = 'incomplete'  # e.g. the accelerator was reset midway
        self._publish_markers(demo, executed)
        self._publish_result(values, demo.target, level, msg)
        self.get_logger().info(f'episode {self.episode}: {msg}')
        self.current = None
        self._next()

    def _watchdog(self) -> None:
        cur = self.current
        if cur is not None and 'signal' in cur:
            self._send_signal()  # first send (waited for a subscriber) or a re-send
        if cur is not None and time.monotonic() > cur['deadline']:
            if cur['acc_episode'] is None:
                why = (f"learning signal sent {cur['sends']} times, never acknowledged: is it "
                       'running? same checkpoint?')
            else:
                why = f"accelerator episode {cur['acc_episode']} did not reach phase done"
            reason = (f'no answer from pcm_accelerator within {self.cfg.control.episode_timeout}'
                      f' s ({why})')
            self.get_logger().error(f'episode {self.episode}: {reason}')
            self._publish_result({'status': 'timeout'}, cur['demo'].target,
                                 DiagnosticStatus.ERROR, reason)
            self.current = None
            self._next()

    def _next(self) -> None:
        if self.current is None and self.targets and self.js_t:
            self._start(self.targets.popleft())

    # ---- outputs -----------------------------------------------------------------------------
    def _publish_result(self, values: dict[str, Any], p: np.ndarray, level: Any,
                        message: str) -> None:
        full = {'episode': self.episode, 'target_x': float(p[0]), 'target_y': float(p[1]),
                'target_z': float(p[2]), **values}
        self.results.append(full)
        st = diag_status('snn_controller/episode', level, message, full,
                         f'episode {self.episode}')
        self.pub_result.publish(diag_array(self.get_clock().now().to_msg(), st))

    def _publish_markers(self, demo: Demonstration, executed: dict | None = None) -> None:
        f = self.frame
        ms = [sphere_marker(f, 'target', 0, demo.target, COLORS['target']),
              line_marker(f, 'demonstration', 0, demo.xyz, COLORS['demonstration'])]
        for name, ns in (('baseline', 'executed_baseline'), ('adapted', 'executed')):
            if executed and name in executed:
                ms.append(line_marker(f, ns, 0, executed[name].xyz, COLORS[ns]))
        self.pub_markers.publish(MarkerArray(markers=ms))


def main(args: list[str] | None = None) -> int:
    """Console entry point ``snn_controller``."""
    # batch-1 trials and the LSG are many tiny products: extra intra-op threads only contend
    # with the other nodes for the cores (measured: latency x20 with 2 threads on 2 busy cores)
    torch.set_num_threads(1)
    return run_node(SnnControllerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
