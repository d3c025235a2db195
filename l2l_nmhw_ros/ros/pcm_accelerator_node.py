"""``pcm_accelerator``: the trainee on an emulated PCM crossbar; learns on-chip and drives the arm.

Subscribes ``pcm_accelerator/learning_signal`` (Float32MultiArray, dims ``time`` × ``neuron``) and
``joint_states`` (only to start the first move home from where the arm is); publishes
``<arm_controller>/commands`` (Float64MultiArray, joint positions [rad] in ``arm.joints`` order;
parameter ``arm_controller``, default ``forward_position_controller`` as the arm drivers) and
``pcm_accelerator/status``
(DiagnosticArray); services ``~/save_state`` and ``~/reset`` (std_srvs/Trigger).

Per learning signal (one episode, see :mod:`l2l_nmhw_ros.l2l.accelerator`): baseline test trial
(``control.run_baseline``), learning trial, e-prop ΔW × received signal, quantised, only changed
devices re-programmed, adapted test trial. The readouts are integrated to joint positions and
time-scaled (:mod:`l2l_nmhw_ros.l2l.playback`) and streamed from ONE timer at
``control.command_rate``: move home, baseline execution, back home, adapted execution, back home,
each followed by ``control.settle_time`` of hold. Then the update is undone on-chip
(``control.restore_weights``) and the device state saved (``control.state_file``). A learning
signal arriving during an episode waits in a bounded queue (``control.queue_size``, oldest dropped
with a warning; a status with event ``queued`` lists the queued signals). A signal identical
(same CRC-32) to the running or a queued one is taken for the controller's re-send of an
unacknowledged signal and ignored (logged); the signal is the request's only identity, so a
genuinely new request for the same target arriving meanwhile joins the running one. ``~/reset``
drops the queue and ends a running episode (``phase = done``).

Status (one DiagnosticStatus ``pcm_accelerator``): on every phase start/end and at
``control.status_rate`` (wall clock); keys ``state``, ``event`` (start | end of a phase, computed,
queued, reset, periodic), ``episode``, ``learning_signal_crc32`` (CRC-32 of the signal's float32
bytes, so the controller can match the episode), ``phase``, ``phase_start`` [s ROS time],
``phase_duration`` [s], ``phase_hold`` [s], ``time_scale``, ``devices_programmed``,
``devices_restored``,
``weights_changed``, ``adaptation_latency_ms`` (learning signal in → adapted command stream ready:
learning trial + update + test trial + planning; the baseline trial, for the comparison only, is
excluded and reported as ``baseline_trial_ms``), device statistics (``mean_conductance_uS``,
``device_age_s``, ``drift_compensation_factor``, ``devices_programmed_total``), ``queued``,
``queued_crc32`` (comma-separated CRCs of the waiting signals).

The emulator clock is the node's ROS clock (simulated time from /clock with ``use_sim_time``).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, Float64MultiArray
from std_srvs.srv import Trigger

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.l2l import checkpoint
from l2l_nmhw_ros.l2l.accelerator import Accelerator, AdaptOutcome
from l2l_nmhw_ros.l2l.episode import (joint_index, network_config, pcm_differences,
                                      resolve_checkpoint)
from l2l_nmhw_ros.l2l.playback import (Segment, SegmentEvent, Streamer, integrate_readout,
                                       min_time_scale_for, move_segment, trajectory_segment)
from l2l_nmhw_ros.ros import qos
from l2l_nmhw_ros.ros.convert import (BadMessage, diag_array, diag_status, from_multiarray,
                                      joint_positions, signal_crc)
from l2l_nmhw_ros.ros.params import declare_config
from l2l_nmhw_ros.ros.runtime import run_node

LEARNING_SIGNAL = 'pcm_accelerator/learning_signal'
STATUS = 'pcm_accelerator/status'
#: default of the ``arm_controller`` parameter (as the arm drivers'): commands go to
#: ``<arm_controller>/commands``, the ros2_control forward-command convention
DEFAULT_ARM_CONTROLLER = 'forward_position_controller'
LABELS = ('time', 'neuron')
THROTTLE_S = 5.0


def load_config(node: Node, sections: dict[str, type]) -> C.L2LConfig:
    """Declare ``seed`` and the given config sections as parameters; return the config."""
    seed = node.declare_parameter('seed', C.L2LConfig().seed).value
    kwargs = {name: declare_config(node, cls, name) for name, cls in sections.items()}
    return C.L2LConfig(seed=int(seed), **kwargs)


class PcmAcceleratorNode(Node):
    """The accelerator node (see the module docstring)."""

    def __init__(self, context: Any = None, **kwargs: Any) -> None:
        super().__init__('pcm_accelerator', context=context, **kwargs)
        self.cfg = load_config(self, {'pcm': C.PCMConfig, 'trainee': C.TraineeConfig,
                                      'eprop': C.EpropConfig, 'task': C.TaskConfig,
                                      'arm': C.ArmConfig, 'control': C.ControlConfig})
        cc = self.cfg.control
        self.joints = list(self.cfg.arm.joints)
        _, self.learned_idx = joint_index(self.joints)
        self.home = np.asarray(cc.home, dtype=np.float64)
        if self.home.shape != (len(self.joints),):
            raise C.ConfigError(f'control.home: {len(cc.home)} values for {len(self.joints)} '
                                'joints (arm.joints)')
        self.vmax = self.cfg.arm.max_velocity * cc.velocity_fraction
        self.arm_controller = str(self.declare_parameter('arm_controller',
                                                         DEFAULT_ARM_CONTROLLER).value)
        commands = f'{self.arm_controller}/commands'
        path = resolve_checkpoint(cc.checkpoint)
        weights, self.ckpt_meta = checkpoint.load(path)
        self.cfg, diffs = network_config(self.cfg, self.ckpt_meta)
        if diffs:
            self.get_logger().info('network sections from the checkpoint: ' + '; '.join(diffs))
        pcm_diffs = pcm_differences(self.cfg, self.ckpt_meta)
        if pcm_diffs:
            self.get_logger().warning(
                'pcm settings differ from those the checkpoint was meta-trained with (kept, but '
                'its model-card errors do not apply): ' + '; '.join(pcm_diffs))
        self.core = Accelerator(self.cfg, weights, self._now(), seed=self.cfg.seed,
                                state_file=cc.state_file or None, clock=time.perf_counter,
                                logger=self.get_logger())
        origin = (f'restored from {cc.state_file}' if self.core.loaded_from_state else
                  'programmed from the checkpoint')
        self.get_logger().info(
            f'checkpoint {path}; crossbar {origin} ({self.core.devices_programmed_total} devices '
            f'written so far); commands -> {self.resolve_topic_name(commands)} at '
            f'{cc.command_rate} Hz; trials in the '
            f'{"compiled kernel (numba)" if self.core.fast else "torch loop"}')
        self.pub_cmd = self.create_publisher(Float64MultiArray, commands, qos.COMMANDS)
        self.pub_status = self.create_publisher(DiagnosticArray, STATUS, qos.COMMANDS)
        self.create_subscription(Float32MultiArray, LEARNING_SIGNAL, self._on_signal,
                                 qos.COMMANDS)
        self.create_subscription(JointState, 'joint_states', self._on_joint_states, qos.STATE)
        self.create_service(Trigger, '~/save_state', self._srv_save)
        self.create_service(Trigger, '~/reset', self._srv_reset)
        self.streamer = Streamer()
        self.queue: deque[tuple[np.ndarray, float, str]] = deque()
        self.q_measured: np.ndarray | None = None
        self.episode = 0
        self.active: dict[str, Any] | None = None
        self.rejected: dict[str, int] = {}
        self.phase = {'phase': '', 'phase_start': 0.0, 'phase_duration': 0.0,
                      'phase_hold': 0.0, 'time_scale': 0.0}
        self.summary: dict[str, Any] = {}
        self.create_timer(1.0 / cc.command_rate, self._tick)
        # status on the wall clock: its device statistics cost ~25 ms, which at 4x simulated
        # time would be 10 % of a core for nobody
        self.create_timer(1.0 / cc.status_rate, lambda: self._publish_status('periodic'),
                          clock=Clock(clock_type=ClockType.STEADY_TIME))

    # ---- helpers -----------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _reject(self, what: str, reason: str) -> None:
        self.rejected[what] = self.rejected.get(what, 0) + 1
        self.get_logger().warning(f'ignored {what}: {reason}', throttle_duration_sec=THROTTLE_S)

    # ---- inputs ------------------------------------------------------------------------------
    def _on_joint_states(self, msg: JointState) -> None:
        try:
            self.q_measured = joint_positions(msg, self.joints)
        except BadMessage as exc:
            self._reject('joint_states', str(exc))

    def _on_signal(self, msg: Float32MultiArray) -> None:
        t_in = time.perf_counter()
        shape = (self.cfg.task.n_steps, self.cfg.trainee.n_rec)
        try:
            sig = from_multiarray(msg, LABELS, shape)
        except BadMessage as exc:
            self._reject('learning_signal', str(exc))
            return
        crc = signal_crc(sig)
        if (self.active is not None and self.active['crc'] == crc) or any(
                c == crc for _, _, c in self.queue):
            self.get_logger().info(f'learning signal {crc} is already running or queued: '
                                   'ignored (a re-send)', throttle_duration_sec=THROTTLE_S)
            return
        if self.active is not None or self.queue:
            if len(self.queue) >= self.cfg.control.queue_size:
                self.queue.popleft()
                self.get_logger().warning('learning-signal queue full: dropped the oldest')
            self.queue.append((sig, t_in, crc))
            self.get_logger().info(f'episode running: learning signal {crc} queued '
                                   f'({len(self.queue)} waiting)')
            self._publish_status('queued')  # tells the sender to stop re-sending it
            return
        self._start_episode(sig, t_in, crc)

    # ---- episode -----------------------------------------------------------------------------
    def _start_episode(self, sig: np.ndarray, t_in: float, crc: str) -> None:
        cc, tc = self.cfg.control, self.cfg.task
        self.episode += 1
        t_emu = self._now()
        out = self.core.adapt(sig, t_emu, baseline=cc.run_baseline)
        q_start = self._current_pose()
        segs: list[Segment] = [move_segment('home', q_start, self.home, self.vmax, cc.settle_time)]
        scales = {}
        for name, omega in (('baseline', out.omega_baseline), ('adapted', out.omega_adapted)):
            if omega is None:
                continue
            q = integrate_readout(omega, self.home, tc.omega_scale, self.learned_idx)
            scale = cc.time_scale or max(cc.min_time_scale,
                                         min_time_scale_for(q, self.home, tc.dt, self.vmax))
            scales[name] = scale
            segs.append(trajectory_segment(name, q, self.home, tc.dt, scale, cc.settle_time))
            segs.append(move_segment(f'return_{name}', q[-1], self.home, self.vmax,
                                     cc.settle_time))
        latency = time.perf_counter() - t_in - out.timings['baseline_trial']
        self.streamer.push(*segs)
        self.active = {'outcome': out, 'crc': crc, 't_in': t_in}
        self.phase = {'phase': 'computed', 'phase_start': t_emu, 'phase_duration': 0.0,
                      'phase_hold': 0.0, 'time_scale': 0.0}
        self.summary = {
            'episode': self.episode, 'learning_signal_crc32': crc,
            'devices_programmed': out.devices_programmed, 'weights_changed': out.weights_changed,
            'devices_restored': 0, 'adaptation_latency_ms': 1e3 * latency,
            'baseline_trial_ms': 1e3 * out.timings['baseline_trial'],
            'learning_trial_ms': 1e3 * out.timings['learning_trial'],
            'update_ms': 1e3 * out.timings['update'],
            'test_trial_ms': 1e3 * out.timings['test_trial'],
            'trainee_rate_hz': out.rate_hz,
            'time_scale_baseline': scales.get('baseline', 0.0),
            'time_scale_adapted': scales['adapted'],
        }
        self.get_logger().info(
            f'episode {self.episode}: {out.devices_programmed} devices programmed '
            f'({out.weights_changed} weights), adaptation latency {1e3 * latency:.0f} ms, '
            f'time scale {scales["adapted"]:.1f}')
        self._publish_status('computed')

    def _current_pose(self) -> np.ndarray:
        if self.q_measured is not None:
            return self.q_measured.copy()
        if self.streamer.last_command is not None:
            return self.streamer.last_command.copy()
        return self.home.copy()

    def _on_event(self, ev: SegmentEvent) -> None:
        self.phase = {'phase': ev.segment.name, 'phase_start':
                      ev.t if ev.kind == 'start' else self.phase['phase_start'],
                      'phase_duration': ev.segment.duration, 'phase_hold': ev.segment.hold,
                      'time_scale': ev.segment.time_scale}
        self._publish_status(ev.kind)

    def _tick(self) -> None:
        now = self._now()
        q, events = self.streamer.tick(now)
        for ev in events:
            self._on_event(ev)
        if q is not None:
            self.pub_cmd.publish(Float64MultiArray(data=q.tolist()))
        elif self.active is not None:
            self._finish_episode(now)

    def _finish_episode(self, now: float) -> None:
        out: AdaptOutcome = self.active['outcome']
        restored = self.core.restore(out, now) if self.cfg.control.restore_weights else 0
        self.summary['devices_restored'] = restored
        self.active = None
        self.phase = {'phase': 'done', 'phase_start': now, 'phase_duration': 0.0,
                      'phase_hold': 0.0, 'time_scale': 0.0}
        self._save_state()
        self._publish_status('end')
        if self.queue:
            self._start_episode(*self.queue.popleft())

    # ---- state -------------------------------------------------------------------------------
    def _save_state(self) -> str:
        path = self.cfg.control.state_file
        if not path:
            return 'no control.state_file set: state kept in memory only'
        self.core.save(path)
        return f'device state saved to {path}'

    def _srv_save(self, request: Trigger.Request, response: Trigger.Response) -> Any:
        try:
            response.message = self._save_state()
            response.success = bool(self.cfg.control.state_file)
        except OSError as exc:
            response.success, response.message = False, f'saving failed: {exc}'
        return response

    def _srv_reset(self, request: Trigger.Request, response: Trigger.Response) -> Any:
        self.streamer.clear()
        self.queue.clear()
        if self.active is not None:  # the episode ends here: its follower must not wait for it
            self.phase = {'phase': 'done', 'phase_start': self._now(), 'phase_duration': 0.0,
                          'phase_hold': 0.0, 'time_scale': 0.0}
        self.active = None
        n = self.core.reset(self._now())
        response.success = True
        response.message = f'crossbar re-programmed to the checkpoint weights ({n} devices)'
        self._publish_status('reset')
        return response

    def _publish_status(self, event: str) -> None:
        state = 'streaming' if self.streamer.busy else ('computing' if self.active else 'idle')
        values = {'state': state, 'event': event, **self.phase, **self.summary,
                  **self.core.statistics(self._now()),
                  'queued': len(self.queue),
                  'queued_crc32': ','.join(c for _, _, c in self.queue),
                  'rejected_messages': sum(self.rejected.values())}
        st = diag_status('pcm_accelerator', DiagnosticStatus.OK,
                         f'{state}; episode {self.episode}', values, 'pcm_crossbar')
        self.pub_status.publish(diag_array(self.get_clock().now().to_msg(), st))

    def destroy_node(self) -> None:
        """Save the device state (when a state file is set) and destroy the node."""
        try:
            if self.cfg.control.state_file:
                self._save_state()
        except OSError as exc:  # pragma: no cover - disk trouble at shutdown
            self.get_logger().error(f'could not save the device state: {exc}')
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Console entry point ``pcm_accelerator``."""
    # batch-1 trials and the LSG are many tiny products: extra intra-op threads only contend
    # with the other nodes for the cores (measured: latency x20 with 2 threads on 2 busy cores)
    torch.set_num_threads(1)
    return run_node(PcmAcceleratorNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
