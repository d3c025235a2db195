"""``pcm_accelerator``: the trainee on an emulated PCM crossbar; learns on-chip and drives the arm.

Subscribes ``pcm_accelerator/learning_signal`` (Float32MultiArray, dims ``time`` × ``neuron``) and
``joint_states`` (only to start the first move home from where the arm is); publishes
``<arm_controller>/commands`` (Float64MultiArray, joint positions [rad] in ``arm.joints`` order;
parameter ``arm_controller``, default ``forward_position_controller`` as the arm drivers) and
``pcm_accelerator/status`` (DiagnosticArray); services ``~/save_state`` and ``~/reset``
(std_srvs/Trigger: ``~/reset`` drops the queue and ends a running episode, ``phase = done``).

Per learning signal one episode (:class:`~l2l_nmhw_ros.reach.onchip.OnChipLearner`): baseline
trial (``control.run_baseline``), learning trial, quantised e-prop ΔW × received signal on the
changed devices, adapted trial; readouts streamed from ONE timer at ``control.command_rate`` (home,
baseline, home, adapted, home, each with ``control.settle_time`` of hold); update undone
(``control.restore_weights``), state saved (``control.state_file``). A signal arriving meanwhile
waits in a queue (``control.queue_size``, oldest dropped; status event ``queued`` lists it); one
identical (same CRC-32) to the running or a queued one is a re-send and ignored, so a new request
for the same target arriving meanwhile joins the running one.

Status (DiagnosticStatus ``pcm_accelerator``; its keys are the fields of
:class:`~l2l_nmhw_ros.reach.reports.AcceleratorStatus`, documented in docs/ros.md) on each phase
start/end, on a refused signal (event ``rejected``) and at ``control.status_rate`` (wall clock).
No exception from a message leaves a callback (:func:`~l2l_nmhw_ros.ros.convert.guarded`);
bounds, watchdog and restarts: :mod:`l2l_nmhw_ros.reach.onchip`.

Parameters: ``seed``, ``arm_controller``, ``pcm.*``, ``arm.joints``/``max_velocity``, the
``OnChipLearner.CONFIG_KEYS`` of ``control``; ``trainee.*``, ``eprop.*``, ``task.*`` and
``pcm.readout_replicas`` read-only (the checkpoint's). Only ``OnChipLearner.LIVE_KEYS`` change
at run time (next episode on); other changes are refused with the reason. Emulator clock = the
node's ROS clock (``use_sim_time``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, Float64MultiArray
from std_srvs.srv import Trigger

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.l2l.inner import n_learning_signals
from l2l_nmhw_ros.reach.episode import NETWORK_PCM_KEYS
from l2l_nmhw_ros.reach.onchip import OnChipLearner
from l2l_nmhw_ros.reach.reports import AcceleratorStatus
from l2l_nmhw_ros.ros import qos
from l2l_nmhw_ros.ros.convert import from_multiarray, guarded, joint_positions, report_array
from l2l_nmhw_ros.ros.params import declare_config, declare_effective, guard_live_updates
from l2l_nmhw_ros.ros.runtime import run_node

LEARNING_SIGNAL = 'pcm_accelerator/learning_signal'
STATUS = 'pcm_accelerator/status'
#: commands go to ``<arm_controller>/commands`` (ros2_control forward-command convention)
DEFAULT_ARM_CONTROLLER = 'forward_position_controller'
LABELS = ('time', 'neuron')


class PcmAcceleratorNode(Node):
    """The accelerator node (see the module docstring): converts, calls the core, publishes."""

    def __init__(self, context: Any = None, **kwargs: Any) -> None:
        super().__init__('pcm_accelerator', context=context, **kwargs)
        keys = OnChipLearner.CONFIG_KEYS
        # the readout's layout on the crossbar belongs to the checkpoint (declared below)
        pcm_keys = [f.name for f in dataclasses.fields(C.PCMConfig)
                    if f.name not in NETWORK_PCM_KEYS]
        cfg = C.L2LConfig(seed=int(self.declare_parameter('seed', C.L2LConfig().seed).value),
                          pcm=declare_config(self, C.PCMConfig, 'pcm', pcm_keys),
                          arm=declare_config(self, C.ArmConfig, 'arm', keys['arm']),
                          control=declare_config(self, C.ControlConfig, 'control',
                                                 keys['control']))
        arm_controller = str(self.declare_parameter('arm_controller',
                                                    DEFAULT_ARM_CONTROLLER).value)
        self.pub_cmd = self.create_publisher(Float64MultiArray, f'{arm_controller}/commands',
                                             qos.COMMANDS)
        self.pub_status = self.create_publisher(DiagnosticArray, STATUS, qos.COMMANDS)
        self.core = OnChipLearner.from_checkpoint(cfg, self, now=self._now,
                                                  clock=time.perf_counter,
                                                  logger=self.get_logger())
        for section in OnChipLearner.NETWORK_SECTIONS:
            declare_effective(self, getattr(self.core.cfg, section), section)
        declare_effective(self, self.core.cfg.pcm, 'pcm', keys=NETWORK_PCM_KEYS)
        guard_live_updates(self, OnChipLearner.LIVE_KEYS, lambda: self.core.cfg,
                           self.core.configure)
        log, rejected = self.get_logger(), self.core.rejected
        self.create_subscription(Float32MultiArray, LEARNING_SIGNAL,
                                 guarded(log, rejected, 'learning_signal', self._on_signal),
                                 qos.COMMANDS)
        self.create_subscription(JointState, 'joint_states',
                                 guarded(log, rejected, 'joint_states', self._on_joint_states),
                                 qos.STATE)
        self.create_service(Trigger, '~/save_state', self._srv_save)
        self.create_service(Trigger, '~/reset', self._srv_reset)
        cc = self.core.cfg.control
        self.create_timer(1.0 / cc.command_rate, guarded(log, rejected, 'tick', self.core.tick))
        # status and watchdog on the wall clock: they must run while sim time stands still (and
        # the status's device statistics, ~25 ms, at 4x sim time would cost too much)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(1.0 / cc.status_rate,
                          guarded(log, rejected, 'status',
                                  lambda: self.core.publish_status('periodic')),
                          clock=steady)
        self.create_timer(OnChipLearner.WATCHDOG_PERIOD,
                          guarded(log, rejected, 'watchdog', self.core.watchdog), clock=steady)
        self.get_logger().info(f'commands -> {self.pub_cmd.topic_name} at {cc.command_rate} Hz')

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_joint_states(self, msg: JointState) -> None:
        self.core.on_joint_state(joint_positions(msg, self.core.joints))

    def _on_signal(self, msg: Float32MultiArray) -> None:
        t_in = time.perf_counter()
        cfg = self.core.cfg
        # content (finite, within the LSG's range) is the core's to check: it answers the sender;
        # n_rec signals, plus n_out when the checkpoint's inner loop learns the readout
        sig = from_multiarray(msg, LABELS, (cfg.task.n_steps, n_learning_signals(cfg)),
                              finite=False)
        self.core.on_learning_signal(sig, t_in)

    # ---- outputs (the core's AcceleratorOutputs) ----------------------------------------------
    def publish_command(self, q: np.ndarray) -> None:
        """Joint positions [rad] in arm.joints order."""
        self.pub_cmd.publish(Float64MultiArray(data=np.asarray(q, dtype=np.float64).tolist()))

    def publish_status(self, status: AcceleratorStatus) -> None:
        """One status report as a DiagnosticArray."""
        self.pub_status.publish(report_array(self.get_clock().now().to_msg(), status))

    def _srv_save(self, request: Trigger.Request, response: Trigger.Response) -> Any:
        response.success, response.message = self.core.save()
        return response

    def _srv_reset(self, request: Trigger.Request, response: Trigger.Response) -> Any:
        try:
            response.success, response.message = True, self.core.reset()
        except Exception as exc:  # noqa: BLE001 - a service answers, it does not crash the node
            response.success, response.message = False, f'reset failed: {exc}'
        return response

    def destroy_node(self) -> None:
        """Save the device state (when a state file is set) and destroy the node."""
        self.core.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Console entry point ``pcm_accelerator``."""
    # batch-1 trials: more intra-op threads only contend (latency x20 at 2 on 2 busy cores)
    torch.set_num_threads(1)
    return run_node(PcmAcceleratorNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
