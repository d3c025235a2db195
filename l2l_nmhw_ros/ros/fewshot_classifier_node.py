"""``fewshot_classifier``: learn new image classes from a few examples on the emulated PCM.

The paper's second scenario (Omniglot, MAML CNN; paper-notes §4) as a node:

- ``~/support_<k>`` (sensor_msgs/Image, k = 0 .. ways-1): labelled examples of new class k
  (the newest ``max_per_class`` are kept per class);
- ``~/learn`` (std_srvs/Trigger): ONE on-chip learning on the examples held (4 readout updates,
  each rounded stochastically to the 1/16 grid and re-programmed on the changed devices only);
  the response says how many images and devices;
- ``~/image`` (sensor_msgs/Image): an image to classify; ``~/prediction``
  (diagnostic_msgs/DiagnosticArray, one status per image: ``class``, ``confidence``,
  ``probabilities``, ``image_stamp``, ``devices_programmed``) — reliable, depth 10;
- ``~/clear`` (std_srvs/Trigger): forget the examples and the learned classes.

An image before any learning, in an unsupported encoding or of the wrong size is logged
(throttled), counted and ignored; a ``~/learn`` without an example of every class answers
``success: false`` with the reason. Encodings and the choice of classifying each image together
with the support set: :mod:`l2l_nmhw_ros.fewshot.session`.

Parameters: ``checkpoint`` (folder or the published ``.pickle``; empty: the shipped
``checkpoints/fewshot_small``), ``seed`` (device noise), ``max_per_class`` (20), and the ``pcm``
section (the emulator: preset, noise switches, ``delta_w_step``, ``stochastic_rounding``...).
"""

from __future__ import annotations

from typing import Any

import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from l2l_nmhw_ros import config as C
from l2l_nmhw_ros.fewshot.pcm import FewShotClassifier
from l2l_nmhw_ros.fewshot.session import FewShotSession, image_to_gray
from l2l_nmhw_ros.fewshot.train import load_weights
from l2l_nmhw_ros.ros import qos
from l2l_nmhw_ros.ros.convert import guarded, reject, stamp_to_sec
from l2l_nmhw_ros.ros.params import declare_config
from l2l_nmhw_ros.ros.runtime import run_node
from l2l_nmhw_ros.share import find_share

DEFAULT_CHECKPOINT = 'checkpoints/fewshot_small'


def gray_of(msg: Image) -> Any:
    """Grey values (h, w) uint8 of an Image message (ValueError when unusable)."""
    return image_to_gray(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                         big_endian=bool(msg.is_bigendian))


class FewShotClassifierNode(Node):
    """The few-shot classifier node (see the module docstring)."""

    def __init__(self, context: Any = None, **kwargs: Any) -> None:
        super().__init__('fewshot_classifier', context=context, **kwargs)
        path = str(self.declare_parameter('checkpoint', '').value)
        seed = int(self.declare_parameter('seed', 0).value)
        per_class = int(self.declare_parameter('max_per_class', 20).value)
        pcm = declare_config(self, C.PCMConfig, 'pcm')
        weights, meta = load_weights(path or find_share(DEFAULT_CHECKPOINT, directory=True))
        clf = FewShotClassifier(weights, pcm, generator=torch.Generator().manual_seed(seed))
        self.session = FewShotSession(clf, max_per_class=per_class)
        self.rejected: dict[str, int] = {}
        self.pub = self.create_publisher(DiagnosticArray, '~/prediction', qos.COMMANDS)
        log = self.get_logger()
        for k in range(self.session.ways):
            self.create_subscription(
                Image, f'~/support_{k}',
                guarded(log, self.rejected, f'support_{k}', self._support_callback(k)),
                qos.COMMANDS)
        self.create_subscription(Image, '~/image',
                                 guarded(log, self.rejected, 'image', self._on_image),
                                 qos.COMMANDS)
        self.create_service(Trigger, '~/learn', self._on_learn)
        self.create_service(Trigger, '~/clear', self._on_clear)
        log.info(f'{self.session.ways}-way few-shot classifier ({meta.get("model", "cnn")}, '
                 f'{path or DEFAULT_CHECKPOINT}) on PCM preset {pcm.preset}: send examples to '
                 f'~/support_<k>, call ~/learn, then images to ~/image')

    def _support_callback(self, k: int) -> Any:
        def on_support(msg: Image) -> None:
            n = self.session.add_support(k, gray_of(msg))
            self.get_logger().debug(f'class {k}: {n} example(s)')
        return on_support

    def _on_image(self, msg: Image) -> None:
        if not self.session.learned:
            reject(self.get_logger(), self.rejected, 'image',
                   'no classes learned yet (send examples to ~/support_<k>, call ~/learn)')
            return
        k, conf, p = self.session.classify(gray_of(msg))
        report = self.session.last_report
        st = DiagnosticStatus(level=DiagnosticStatus.OK, name='fewshot_classifier',
                              message=f'class {k} ({conf:.2f})', values=[
                                  KeyValue(key='class', value=str(k)),
                                  KeyValue(key='confidence', value=f'{conf:.6f}'),
                                  KeyValue(key='probabilities',
                                           value=','.join(f'{v:.6f}' for v in p)),
                                  KeyValue(key='image_stamp',
                                           value=f'{stamp_to_sec(msg.header.stamp):.9f}'),
                                  KeyValue(key='devices_programmed',
                                           value=str(report.devices if report else 0))])
        out = DiagnosticArray(status=[st])
        out.header.stamp = self.get_clock().now().to_msg()
        out.header.frame_id = msg.header.frame_id
        self.pub.publish(out)

    def _on_learn(self, request: Any, response: Any) -> Any:
        try:
            report = self.session.learn()
        except ValueError as exc:
            response.success, response.message = False, str(exc)
            return response
        except Exception as exc:  # noqa: BLE001 - a service call must be answered
            self.get_logger().error(f'learn: {type(exc).__name__}: {exc}')
            response.success, response.message = False, f'internal error: {exc}'
            return response
        n = sum(len(b) for b in self.session.support)
        response.success = True
        response.message = (f'learned {self.session.ways} classes from {n} images: '
                            f'{len(report.losses)} on-chip updates, {report.devices} devices '
                            f'programmed; support loss {report.losses[0]:.3f} -> '
                            f'{report.losses[-1]:.3f}')
        self.get_logger().info(response.message)
        return response

    def _on_clear(self, request: Any, response: Any) -> Any:
        self.session.clear()
        response.success, response.message = True, 'examples and learned classes cleared'
        return response


def main(args: list[str] | None = None) -> int:
    """Console entry point ``fewshot_classifier``."""
    torch.set_num_threads(1)
    return run_node(FewShotClassifierNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
