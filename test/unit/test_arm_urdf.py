"""Our URDF: loads in PyBullet, names and limits as the real robot, frames equal the paper's FK."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from l2l_nmhw_ros.arm import kinematics as K
from l2l_nmhw_ros.config import ArmConfig

pytest.importorskip('pybullet')
from l2l_nmhw_ros.arm.sim import PyBulletArm  # noqa: E402


@pytest.fixture
def arm():
    a = PyBulletArm(gravity=0.0)
    yield a
    a.close()


def test_urdf_joint_names_are_the_real_robots_and_the_config_default(arm):
    assert arm.joint_names == K.JOINT_NAMES == ArmConfig().joints
    assert K.load_joint_limits().names == K.JOINT_NAMES


def test_limits_are_those_of_the_real_urdf(arm):
    lim = K.load_joint_limits()
    np.testing.assert_allclose(lim.upper, [2.18166156499, 1.4835298642, 1.96349540849,
                                           1.5707963268], atol=1e-11)
    np.testing.assert_allclose(lim.lower, -lim.upper)
    np.testing.assert_array_equal(lim.velocity, [1.0] * 4)
    np.testing.assert_array_equal(lim.effort, [30.0] * 4)
    # PyBullet reads the same numbers
    np.testing.assert_allclose(arm.limits.upper, lim.upper)
    np.testing.assert_allclose(arm.limits.velocity, lim.velocity)


def test_limits_agree_with_the_shared_reference_urdf(shared_data):
    root = ET.parse(shared_data / 'ed_scorbot' / 'scorbot_ER_VII.urdf').getroot()
    ref = {j.get('name'): j.find('limit') for j in root.iter('joint')}
    ours = K.load_joint_limits()
    for i, name in enumerate(ours.names):
        lim = ref[name]
        assert float(lim.get('lower')) == pytest.approx(ours.lower[i], abs=1e-12)
        assert float(lim.get('upper')) == pytest.approx(ours.upper[i], abs=1e-12)
        assert float(lim.get('velocity')) == ours.velocity[i]
        assert float(lim.get('effort')) == ours.effort[i]


def test_end_effector_link_at_home_is_the_paper_point(arm):
    np.testing.assert_allclose(arm.link_position([0.0] * 4), [0.920, -0.033, 0.3585], atol=1e-9)


def test_fk_equals_pybullet_on_1000_random_configurations(arm):
    lim = arm.limits
    rng = np.random.default_rng(20250205)
    q = rng.uniform(lim.lower, lim.upper, size=(1000, 4))
    p_bullet = np.array([arm.link_position(qi) for qi in q])
    err = np.abs(p_bullet - K.forward_kinematics(q)).max()
    assert err < 1e-6, f'max |FK - PyBullet| = {err:.3g} m'


@pytest.mark.parametrize(('joint', 'sign_axis'), [
    # paper: theta1 = -q1 -> +q1 turns clockwise seen from above (y decreases at home)
    (0, (0, -1, 0)),
    # theta2 = -q2 -> +q2 raises the arm (z increases)
    (1, (0, 0, 1)),
    # theta3 = -q3 -> +q3 raises the forearm
    (2, (0, 0, 1)),
    # theta4 = +q4 -> +q4 lowers the gripper
    (3, (0, 0, -1)),
])
def test_joint_senses_follow_the_paper_signs(arm, joint, sign_axis):
    q = np.zeros(4)
    q[joint] = math.radians(1.0)
    d = arm.link_position(q) - arm.link_position(np.zeros(4))
    k = int(np.nonzero(sign_axis)[0][0])
    assert np.sign(d[k]) == sign_axis[k]
