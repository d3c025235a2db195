"""The web view's ROS-free parts: URDF link poses, click picking, the images, the scene."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest

from l2l_nmhw_ros.arm.kinematics import default_urdf_path, forward_kinematics
from l2l_nmhw_ros.viewer import robot_model as rm
from l2l_nmhw_ros.viewer import scene as sc

URDF = default_urdf_path().read_text(encoding='utf-8')


def _quat_matrix(w: float, x: float, y: float, z: float) -> np.ndarray:
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def test_rpy_by_hand() -> None:
    # yaw 90 deg turns x into y; roll 90 deg turns y into z
    np.testing.assert_allclose(rm.rpy_matrix((0, 0, math.pi / 2)) @ [1, 0, 0], [0, 1, 0],
                               atol=1e-12)
    np.testing.assert_allclose(rm.rpy_matrix((math.pi / 2, 0, 0)) @ [0, 1, 0], [0, 0, 1],
                               atol=1e-12)
    # fixed axes x, y, z: R = Rz Ry Rx
    r, p, y = 0.3, -0.7, 1.1
    np.testing.assert_allclose(rm.rpy_matrix((r, p, y)),
                               rm.rpy_matrix((0, 0, y)) @ rm.rpy_matrix((0, p, 0))
                               @ rm.rpy_matrix((r, 0, 0)), atol=1e-12)


@pytest.mark.parametrize('rpy', [(0.0, 0.0, 0.0), (0.3, -0.7, 1.1), (math.pi, 0.0, 0.0),
                                 (0.0, math.pi, 0.2), (2.0, 1.0, -3.0)])
def test_quaternion_round_trip(rpy: tuple[float, float, float]) -> None:
    m = rm.rpy_matrix(rpy)
    q = rm.matrix_to_wxyz(m)
    assert q[0] >= 0 and math.isclose(sum(v * v for v in q), 1.0, rel_tol=1e-12)
    np.testing.assert_allclose(_quat_matrix(*q), m, atol=1e-9)


def test_urdf_end_effector_is_the_package_forward_kinematics() -> None:
    model = rm.RobotModel(URDF)
    assert model.root == 'base_link'
    assert model.movable == ['base_joint', 'shoulder', 'elbow', 'pitch']
    assert len(model.visuals) == 8 and model.skipped == []
    rng = np.random.default_rng(4)
    for q in rng.uniform(-1.2, 1.2, size=(6, 4)):
        p = model.link_poses(dict(zip(model.movable, q, strict=True)))['end_effector_link']
        np.testing.assert_allclose(p[:3, 3], forward_kinematics(q), atol=1e-9)
    # materials by name: the upper arm is orange, its box 0.42 x 0.10 x 0.14 m
    v = next(v for v in model.visuals if v.link == 'upper_arm')
    assert v.shape == 'box' and v.size == (0.42, 0.10, 0.14)
    assert v.rgba == (0.95, 0.5, 0.1, 1.0)
    # at q = 0 the base cylinder stands at the origin, 0.0225 m up
    np.testing.assert_allclose(model.visual_poses()['base_link/0'][:3, 3], [0, 0, 0.0225])


@pytest.mark.parametrize(('text', 'match'), [
    ('not xml <', 'not XML'),
    ('<model/>', 'expected a <robot>'),
    ('<robot><link name="a"/><joint name="j" type="fixed"><parent link="a"/>'
     '<child link="b"/></joint></robot>', 'unknown link'),
    ('<robot><link name="a"/><link name="b"/></robot>', 'one root link'),
    ('<robot><link name="a"><visual><origin xyz="0 nan 0"/><geometry><box size="1 1 1"/>'
     '</geometry></visual></link></robot>', 'finite'),
])
def test_bad_urdf_is_refused_with_the_reason(text: str, match: str) -> None:
    with pytest.raises(rm.UrdfError, match=match):
        rm.RobotModel(text)


def test_mesh_visuals_are_skipped_and_counted() -> None:
    m = rm.RobotModel('<robot><link name="a"><visual><geometry><mesh filename="x.stl"/>'
                      '</geometry></visual><visual><geometry><sphere radius="0.1"/></geometry>'
                      '</visual></link></robot>')
    assert m.skipped == ['a/0'] and [v.shape for v in m.visuals] == ['sphere']


def test_pick_on_surface_takes_the_first_point_along_the_ray() -> None:
    pts = np.array([[1.0, 0.0, 0.0], [2.0, 0.01, 0.0], [-1.0, 0.0, 0.0], [1.0, 0.5, 0.0]])
    got = sc.pick_on_surface([0, 0, 0], [2, 0, 0], pts, tolerance=0.03)
    np.testing.assert_array_equal(got, [1.0, 0.0, 0.0])  # not the farther one, not behind
    got = sc.pick_on_surface([0, 0, 0], [1, 0.5, 0], pts, tolerance=0.03)
    np.testing.assert_array_equal(got, [1.0, 0.5, 0.0])
    assert sc.pick_on_surface([0, 0, 0], [0, 0, 1], pts) is None


def test_reachable_surface_is_the_fk_of_the_grid() -> None:
    pts = sc.reachable_surface(forward_kinematics, [0, 0, 0, 0], [0, 1], [-1, -0.5], [1, 0.5],
                               n=5)
    assert pts.shape == (25, 3)
    np.testing.assert_allclose(pts[0], forward_kinematics(np.array([-1.0, -0.5, 0, 0])))
    np.testing.assert_allclose(pts[-1], forward_kinematics(np.array([1.0, 0.5, 0, 0])))


def test_programmed_mask() -> None:
    t = np.zeros((2, 2, 3, 4))
    prev = t.copy()
    t[1, 0, 2, 3] = 5.0  # one device of weight (2, 3)
    t[0, 1, 0, 0] = 7.0
    m = sc.programmed_mask(t, prev)
    assert m.shape == (3, 4) and m.sum() == 2 and m[2, 3] and m[0, 0]
    # without the previous state: later than the deployment (the most common t_prog of the
    # programmed devices; the never-programmed ones, t_prog 0, may be more numerous)
    t2 = np.zeros((2, 2, 3, 4))
    counts = np.zeros((2, 2, 3, 4), dtype=int)
    t2[0], counts[0] = 3.0, 1  # deployed at t = 3 s: one polarity of every weight
    t2[0, 1, 2, 2], counts[0, 1, 2, 2] = 9.0, 2
    t2[1, 0, 0, 1], counts[1, 0, 0, 1] = 9.0, 1
    m2 = sc.programmed_mask(t2, program_counts=counts)
    assert m2.sum() == 2 and m2[2, 2] and m2[0, 1]
    assert sc.programmed_mask(t2).all()  # the zeros would be taken for the deployment
    assert not sc.programmed_mask(t2, program_counts=np.zeros_like(counts)).any()


def test_signal_image_orientation_and_colours() -> None:
    sig = np.zeros((249, 250))
    sig[0, 0] = 5.0     # first step, neuron 0: bottom left, red
    sig[-1, -1] = -5.0  # last step, last neuron: top right, blue
    img, vmax = sc.signal_image(sig, vmax=5.0)
    assert img.shape == (250, 249, 3) and img.dtype == np.uint8 and vmax == 5.0
    r, g, b = (int(v) for v in img[-1, 0])
    assert r > 80 and r > g + 40 and r > b + 40
    r, g, b = (int(v) for v in img[0, -1])
    assert b > r + 40
    assert (img[100, 100] > 240).all()  # 0 is white
    mask = np.zeros((3, 4), dtype=bool)
    mask[1, 2] = True
    d = sc.devices_image(mask, scale=2)
    assert d.shape == (6, 8, 3)
    assert tuple(d[2, 4]) == sc.COLORS['programmed'] and tuple(d[0, 0]) == (255, 255, 255)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


def test_scene_draws_and_reports_what_it_draws() -> None:
    pytest.importorskip('viser')
    sent = []
    surface = np.array([[0.5, 0.0, 0.5], [0.6, 0.0, 0.5]])
    scene = sc.ViewerScene('127.0.0.1', _free_port(), surface=surface, on_target=sent.append)
    try:
        st = scene.state()
        assert st['arm_links'] == 0 and st['target'] is None
        scene.set_robot(URDF)
        q = [0.4, -0.3, 0.2, 0.1]
        assert scene.set_joint_positions(['base_joint', 'shoulder', 'elbow', 'pitch'], q,
                                         force=True)
        model = rm.RobotModel(URDF)
        pose = model.visual_poses(dict(zip(model.movable, q, strict=True)))['gripper/0']
        h = scene._handles['/robot/gripper/0']  # noqa: SLF001 - the drawn object
        np.testing.assert_allclose(h.position, pose[:3, 3], atol=1e-6)
        np.testing.assert_allclose(_quat_matrix(*h.wxyz), pose[:3, :3], atol=1e-6)
        demo = np.linspace([0.9, 0, 0.4], [0.5, 0.0, 0.5], 249)
        scene.set_episode([0.5, 0.0, 0.5], {'demonstration': demo, 'executed': demo[:100]})
        scene.set_learning_signal(np.ones((249, 250)))
        scene.set_devices(np.eye(252, 255, dtype=bool))
        scene._send(np.array([0.5, 0.0, 0.5]))  # noqa: SLF001 - the "Send target" button
        st = scene.state()
        assert st == {'arm_links': 7, 'arm_visuals': 8, 'joint_states': 1,
                      'target': [0.5, 0.0, 0.5],
                      'paths': {'demonstration': 249, 'executed': 100},
                      'learning_signal': [249, 250], 'devices': 252, 'targets_sent': 1}
        np.testing.assert_array_equal(sent[0], [0.5, 0.0, 0.5])
        text = scene._status.content  # noqa: SLF001 - the panel text the browser shows
        assert 'target: (+0.500, +0.000, +0.500) m' in text
        assert 'path demonstration: 249 points' in text
        assert 'path executed after the update: 100 points' in text
        assert 'executed before' not in text
        # a later episode without the executed paths removes them
        scene.set_episode([0.6, 0.0, 0.5], {'demonstration': demo})
        assert scene.state()['paths'] == {'demonstration': 249}
        assert scene.state()['target'] == [0.6, 0.0, 0.5]
    finally:
        scene.close()


def test_state_file_watcher_reports_the_weights_written_by_an_episode(tmp_path) -> None:
    import json
    import os

    import torch

    from l2l_nmhw_ros import config as C
    from l2l_nmhw_ros.pcm.crossbar import Crossbar
    from l2l_nmhw_ros.viewer.sources import StateFileWatcher, read_t_prog

    cfg = C.load().pcm
    xb = Crossbar(cfg, 6, 7, 0)  # stored padded: read_t_prog crops to 6 x 7
    xb.program(torch.full((6, 7), 0.5), t=1.0)
    path = tmp_path / 'pcm_state.safetensors'
    xb.save(path)
    t_read, counts_read = read_t_prog(path)
    np.testing.assert_array_equal(t_read, xb.t_prog.numpy())
    np.testing.assert_array_equal(counts_read, xb.program_counts.numpy())
    w = StateFileWatcher(path)
    assert w.poll() is None  # the state before the first episode
    dw = torch.zeros(6, 7)
    dw[2, 3] = 0.25
    dw[5, 0] = -0.25
    assert xb.update(dw, t=5.0) > 0
    xb.save(path)
    os.utime(path, ns=(1, 10**9 * 12345))  # a new version even within the clock's resolution
    path.with_name(path.name + '.json').write_text(json.dumps(
        {'devices_programmed_total': 99}))
    mask, note = w.poll()
    assert mask.shape == (6, 7)
    assert sorted(zip(*np.nonzero(mask), strict=True)) == [(2, 3), (5, 0)]
    assert note == '(devices written since deployment: 99)'
    assert w.poll() is None  # unchanged file
    xb.save(path)  # saved again, nothing written
    os.utime(path, ns=(1, 10**9 * 23456))
    assert w.poll() is None
    # a watcher started after the deployment's file is gone: later than the deployment time
    w2 = StateFileWatcher(tmp_path / 'missing.safetensors')
    assert w2.poll() is None
    (tmp_path / 'missing.safetensors').write_bytes(path.read_bytes())
    mask2, _ = w2.poll()
    assert sorted(zip(*np.nonzero(mask2), strict=True)) == [(2, 3), (5, 0)]


def test_click_surface_covers_the_reachable_targets() -> None:
    """Every target the controller accepts lies within the click tolerance (3 cm) of a point
    of the view's surface, so a click on it can pick it."""
    from l2l_nmhw_ros import config as C
    from l2l_nmhw_ros.l2l import checkpoint as ckpt_io
    from l2l_nmhw_ros.reach.episode import (network_config, random_reachable_targets,
                                            resolve_checkpoint)
    from l2l_nmhw_ros.viewer.sources import surface_of_checkpoint

    pts = surface_of_checkpoint('')
    cfg, _ = network_config(C.load(), ckpt_io.load(resolve_checkpoint(''))[1])
    assert pts.shape == (96 ** len(cfg.task.learned_joints), 3)  # the shipped one: 3 joints
    targets = random_reachable_targets(cfg, 50, np.random.default_rng(0), min_travel=0.05)
    d = np.linalg.norm(targets[:, None, :] - pts[None], axis=-1).min(axis=1)
    assert d.max() < 0.03, d.max()
    # and a ray from a camera through a target picks a surface point (the target or one in
    # front of it)
    cam = np.array([1.6, -1.9, 1.5])
    for p in targets[:10]:
        got = sc.pick_on_surface(cam, p - cam, pts)
        assert got is not None
        assert np.linalg.norm(got - cam) <= np.linalg.norm(p - cam) + 0.03
