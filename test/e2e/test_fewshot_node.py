"""``fewshot_classifier`` end to end: a separate node process learns 5 new Omniglot classes from
5 images each sent over DDS, then classifies held-out images of them one by one.

The authors' published weights (../shared/data; skipped when absent), PCM preset of the default
configuration, characters of images_background_small2. Also: an image before learning and a
broken image are ignored (the node goes on), ``~/learn`` without examples answers false.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from l2l_nmhw_ros.ros import qos  # noqa: E402
from l2l_nmhw_ros.ros.runtime import spin_until as _spin  # noqa: E402

DEADLINE = 60.0  # [s] wall clock, loaded 2-core machine
#: measured 25 / 25 on this seeded episode (2026-12-05); in float software the published
#: weights reach 97-98 % on small2 alphabets; the bar leaves room for the PCM noise
MIN_ACCURACY = 0.8


def spin_until(ex, pred, timeout: float, what: str, abort=None) -> None:
    assert _spin(ex, pred, timeout, abort=abort), f'{what}: not reached within {timeout} s'


def _image(pixels: np.ndarray) -> Image:
    h, w = pixels.shape
    return Image(height=h, width=w, encoding='mono8', is_bigendian=0, step=w,
                 data=pixels.astype(np.uint8).tobytes())


@pytest.fixture
def episode(shared_data: Path):
    from l2l_nmhw_ros.fewshot import data as D

    pub = shared_data / 'rlimc_checkpoints' / 'omniglot_pretrained_weights.pickle'
    zip_ = shared_data / 'omniglot' / 'images_background_small2.zip'
    if not pub.is_file() or not zip_.is_file():
        pytest.skip(f'published Omniglot weights or images missing in {shared_data}')
    chars = D.load_characters([zip_])
    ep = D.sample_episode(chars, 5, 5, 5, np.random.default_rng(7))
    return pub, ep


def test_node_learns_five_classes_over_dds_and_classifies_held_out_images(episode) -> None:
    pub, ep = episode
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.Popen([sys.executable, '-m', 'l2l_nmhw_ros.ros.fewshot_classifier_node',
                             '--ros-args', '-p', f'checkpoint:={pub}', '-p', 'seed:=3'],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        probe = rclpy.create_node('fewshot_probe', context=ctx)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(probe)
        preds: list[DiagnosticArray] = []
        probe.create_subscription(DiagnosticArray, 'fewshot_classifier/prediction',
                                  preds.append, qos.COMMANDS)
        learn = probe.create_client(Trigger, 'fewshot_classifier/learn')
        spin_until(ex, learn.service_is_ready, DEADLINE, 'fewshot_classifier/learn',
                   abort=lambda: proc.poll() is not None)

        def call(client) -> Trigger.Response:
            fut = client.call_async(Trigger.Request())
            spin_until(ex, fut.done, DEADLINE, 'service answer')
            return fut.result()

        # nothing learned yet: refused with the reason, and an image is ignored
        first = call(learn)
        assert not first.success and 'no support images' in first.message
        img_pub = probe.create_publisher(Image, 'fewshot_classifier/image', qos.COMMANDS)
        sup = [probe.create_publisher(Image, f'fewshot_classifier/support_{k}', qos.COMMANDS)
               for k in range(5)]
        spin_until(ex, lambda: all(p.get_subscription_count() for p in [img_pub, *sup]),
                   DEADLINE, 'subscriptions matched')
        img_pub.publish(_image(np.full((28, 28), 255)))
        # the 25 labelled examples (uint8 as a camera would send them), then ONE learning
        for x, y in zip(ep.support, ep.support_labels, strict=True):
            sup[int(y)].publish(_image(np.rint(x[0].numpy() * 255)))
        _spin(ex, lambda: False, 1.0)  # let the examples arrive (reliable, 5 per topic)
        ans = call(learn)
        assert ans.success, ans.message
        assert 'from 25 images' in ans.message and 'devices programmed' in ans.message
        # a broken image is ignored, the node goes on
        bad = _image(np.zeros((28, 28)))
        bad.data = bad.data[:-5]
        img_pub.publish(bad)
        # held-out images, one at a time
        correct = 0
        for x, y in zip(ep.query, ep.query_labels, strict=True):
            n = len(preds)
            img_pub.publish(_image(np.rint(x[0].numpy() * 255)))
            spin_until(ex, lambda n=n: len(preds) > n, DEADLINE, 'prediction')
            values = {kv.key: kv.value for kv in preds[-1].status[0].values}
            p = np.array([float(v) for v in values['probabilities'].split(',')])
            assert p.shape == (5,) and abs(p.sum() - 1) < 1e-4
            assert int(values['class']) == int(np.argmax(p))
            assert float(values['confidence']) == pytest.approx(p.max(), abs=1e-6)
            assert int(values['devices_programmed']) > 0
            correct += int(values['class']) == int(y)
        assert len(preds) == 25  # the image before learning and the broken one gave none
        assert correct / 25 >= MIN_ACCURACY, correct
        assert proc.poll() is None  # still running after the bad inputs
    finally:
        ctx.try_shutdown()
        proc.terminate()
        try:
            out = proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0]
    assert 'ignored image' in out, out[-2000:]
