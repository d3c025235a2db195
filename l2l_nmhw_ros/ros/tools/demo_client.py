"""The demo's own node: sends reach targets to the running graph, records and collects results.

It talks to the graph only over its topics and services (as any user would): ``reach_target``
out; ``snn_controller/result``, ``pcm_accelerator/status``, ``pcm_accelerator/learning_signal``,
``joint_states``, ``snn_controller/demonstration`` in; ``pcm_accelerator/save_state`` called at
the end. It follows the graph's clock (``use_sim_time`` when the arm simulation owns /clock) and
records the episode topics to an MCAP bag (:class:`~l2l_nmhw_ros.ros.tools.bag.BagRecorder`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from l2l_nmhw_ros.ros import qos, runtime
from l2l_nmhw_ros.ros.tools.bag import BagRecorder
from l2l_nmhw_ros.ros.convert import (BadMessage, diag_values, from_multiarray, joint_positions,
                                      stamp_to_sec)

#: the topics of one episode that go into the bag
BAG_TOPICS = {
    'reach_target': PointStamped,
    'pcm_accelerator/learning_signal': Float32MultiArray,
    'joint_states': JointState,
    'pcm_accelerator/status': DiagnosticArray,
    'snn_controller/result': DiagnosticArray,
    'snn_controller/demonstration': JointTrajectory,
    'snn_controller/markers': MarkerArray,
}
GRAPH_NODES = ('pcm_accelerator', 'snn_controller')


def match_result(results: list[dict[str, str]], p: np.ndarray, tol: float = 1e-6
                 ) -> dict[str, str] | None:
    """The first of ``results`` whose ``target_x/y/z`` equal ``p`` [m] within ``tol``, or None.

    Results are matched by their target, not by ``episode`` (a ``rejected`` result has episode
    0). A NaN coordinate matches NaN and an infinite one the same infinity, so that the
    controller's ``rejected`` answer to a non-finite target is found too.
    """
    want = np.asarray(p, dtype=np.float64)
    for r in results:
        try:
            q = np.array([float(r[f'target_{a}']) for a in 'xyz'])
        except (KeyError, ValueError):
            continue
        with np.errstate(invalid='ignore'):
            same = (q == want) | (np.abs(q - want) <= tol) | (np.isnan(q) & np.isnan(want))
        if same.all():
            return r
    return None


class DemoClient:
    """Drive the graph with targets; keep what the plots and the table need.

    Args:
        context: an initialised rclpy context.
        bag_path: MCAP output, or None for no recording.
        joints: joint names in command order.
        use_sim_time: follow /clock.
        arm_controller: the commands go to ``<arm_controller>/commands`` (recorded).
    """

    def __init__(self, context: Any, bag_path: Path | None, joints: list[str],
                 use_sim_time: bool, arm_controller: str = 'forward_position_controller'
                 ) -> None:
        self.node = Node('l2l_demo', context=context, parameter_overrides=[
            Parameter('use_sim_time', value=use_sim_time)])
        self.joints = joints
        self.results: list[dict[str, str]] = []
        self.status: list[dict[str, str]] = []
        self.signals: list[np.ndarray] = []
        self.demos: list[np.ndarray] = []
        self.js_t: list[float] = []
        self.js_q: list[np.ndarray] = []
        self.clock_seen = False
        n = self.node
        n.create_subscription(DiagnosticArray, 'snn_controller/result', self._on_result,
                              qos.TARGETS)
        n.create_subscription(DiagnosticArray, 'pcm_accelerator/status', self._on_status,
                              qos.COMMANDS)
        n.create_subscription(Float32MultiArray, 'pcm_accelerator/learning_signal',
                              self._on_signal, qos.COMMANDS)
        n.create_subscription(JointState, 'joint_states', self._on_js, qos.STATE)
        n.create_subscription(JointTrajectory, 'snn_controller/demonstration', self._on_demo,
                              qos.LATCHED)
        n.create_subscription(Clock, '/clock', self._on_clock, qos.SENSOR)
        self.pub_target = n.create_publisher(PointStamped, 'reach_target', qos.TARGETS)
        self.save_client = n.create_client(Trigger, 'pcm_accelerator/save_state')
        topics = {**BAG_TOPICS, f'{arm_controller}/commands': Float64MultiArray}
        self.recorder = BagRecorder(n, bag_path, topics) if bag_path is not None else None
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(n)

    # ---- callbacks ---------------------------------------------------------------------------
    def _on_result(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            self.results.append({**diag_values(st), 'message': st.message})

    def _on_status(self, msg: DiagnosticArray) -> None:
        self.status.extend(diag_values(st) for st in msg.status)

    def _on_signal(self, msg: Float32MultiArray) -> None:
        try:
            sig = from_multiarray(msg, ('time', 'neuron'))
        except BadMessage:
            return
        if self.signals and np.array_equal(sig, self.signals[-1]):
            return  # the controller re-sent it (one entry per episode for the plots)
        self.signals.append(sig)

    def _on_js(self, msg: JointState) -> None:
        try:
            q = joint_positions(msg, self.joints)
        except BadMessage:
            return
        self.js_t.append(stamp_to_sec(msg.header.stamp))
        self.js_q.append(q)

    def _on_demo(self, msg: JointTrajectory) -> None:
        idx = [list(msg.joint_names).index(j) for j in self.joints]
        self.demos.append(np.array([[p.positions[i] for i in idx] for p in msg.points]))

    def _on_clock(self, msg: Clock) -> None:
        self.clock_seen = True

    # ---- driving -----------------------------------------------------------------------------
    def spin_until(self, pred: Callable[[], bool], timeout: float,
                   alive: Callable[[], str | None] = lambda: None) -> bool:
        """Spin until ``pred()``; False on timeout. ``alive()`` returning text aborts (raises)."""
        dead: list[str] = []

        def abort() -> bool:
            text = alive()
            if text:
                dead.append(text)
            return bool(text)

        ok = runtime.spin_until(self.executor, pred, timeout, abort=abort)
        if dead:
            raise RuntimeError(dead[0])
        return ok

    def graph_ready(self, arm_node: str) -> bool:
        """Every node is on the graph, the arm publishes joint states, the accelerator its status
        and the controller listens for targets."""
        names = set(self.node.get_node_names())
        return (all(n in names for n in (*GRAPH_NODES, arm_node)) and bool(self.js_t)
                and bool(self.status) and self.pub_target.get_subscription_count() > 0
                and (self.recorder is None or self._recorder_matched()))

    def _recorder_matched(self) -> bool:
        return all(s.get_publisher_count() > 0 for t, s in self.recorder._subs
                   if t in ('joint_states', 'pcm_accelerator/status'))

    def send_target(self, p: np.ndarray, frame_id: str) -> None:
        """Publish one reach target [m]."""
        msg = PointStamped()
        msg.header.frame_id = frame_id
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.point.x, msg.point.y, msg.point.z = (float(v) for v in p)
        self.pub_target.publish(msg)

    def result_for(self, p: np.ndarray, since: int = 0, tol: float = 1e-6
                   ) -> dict[str, str] | None:
        """The first result from ``results[since:]`` for target ``p`` (:func:`match_result`)."""
        return match_result(self.results[since:], p, tol)

    def save_state(self, timeout: float = 10.0) -> tuple[bool, str]:
        """Call ``pcm_accelerator/save_state``."""
        if not self.spin_until(self.save_client.service_is_ready, timeout):
            return False, 'save_state service not available'
        fut = self.save_client.call_async(Trigger.Request())
        if not self.spin_until(fut.done, timeout):
            return False, 'save_state did not answer'
        res = fut.result()
        return bool(res.success), str(res.message)

    def joint_states(self) -> tuple[np.ndarray, np.ndarray]:
        """(times [s], positions (k, n_joints) [rad]) received so far."""
        return (np.array(self.js_t), np.array(self.js_q) if self.js_q else
                np.zeros((0, len(self.joints))))

    def close(self) -> dict[str, int]:
        """Finish the bag; destroy the node. Returns messages recorded per topic."""
        counts = {}
        if self.recorder is not None:
            counts = self.recorder.counts
            self.recorder.close()
        self.executor.shutdown()
        self.node.destroy_node()
        return counts
