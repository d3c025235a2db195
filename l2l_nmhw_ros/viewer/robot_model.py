"""A URDF's visual geometry and its link poses for given joint positions (no ROS, no tf2).

The view needs what robot_state_publisher + rviz's RobotModel do for an arm made of primitive
shapes: parse ``robot_description`` (the URDF text), walk the kinematic tree from the root link
with the joint positions of ``joint_states`` and place every ``<visual>`` (box, cylinder,
sphere). Meshes are not supported (the ED-Scorbot URDF has none); a mesh visual is skipped and
counted in :attr:`RobotModel.skipped`.

Conventions as in URDF: ``origin`` = translation xyz [m] then rotation rpy [rad] (fixed axes
x, y, z: R = Rz(yaw) Ry(pitch) Rx(roll)); a revolute or continuous joint rotates its child by q
[rad] about ``axis`` (in the joint frame), a prismatic one translates it by q [m]; joints absent
from the positions stay at 0. A cylinder's axis is its local z.
"""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from l2l_nmhw_ros.errors import L2LError

__all__ = ['RobotModel', 'UrdfError', 'Visual', 'matrix_to_wxyz', 'origin_matrix',
           'rpy_matrix']

Matrix = npt.NDArray[np.float64]


class UrdfError(L2LError):
    """A URDF that cannot be read (not XML, no robot, a joint naming an unknown link, ...)."""


def rpy_matrix(rpy: npt.ArrayLike) -> Matrix:
    """Return the rotation (3, 3) of URDF roll, pitch, yaw [rad]: Rz(yaw) Ry(pitch) Rx(roll)."""
    r, p, y = (float(v) for v in np.asarray(rpy, dtype=np.float64))
    cr, sr, cp, sp, cy, sy = (math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y),
                              math.sin(y))
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def origin_matrix(xyz: npt.ArrayLike = (0.0, 0.0, 0.0),
                  rpy: npt.ArrayLike = (0.0, 0.0, 0.0)) -> Matrix:
    """Return the homogeneous transform (4, 4) of a URDF ``origin``."""
    m = np.eye(4)
    m[:3, :3] = rpy_matrix(rpy)
    m[:3, 3] = np.asarray(xyz, dtype=np.float64)
    return m


def _axis_angle(axis: Matrix, angle: float) -> Matrix:
    x, y, z = axis / np.linalg.norm(axis)
    c, s = math.cos(angle), math.sin(angle)
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


def matrix_to_wxyz(r: npt.ArrayLike) -> tuple[float, float, float, float]:
    """Return the unit quaternion (w, x, y, z) of a rotation matrix (3, 3) (w >= 0)."""
    m = np.asarray(r, dtype=np.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0.0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = (0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s)
    else:
        i = int(np.argmax([m[0, 0], m[1, 1], m[2, 2]]))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(max(1.0 + m[i, i] - m[j, j] - m[k, k], 1e-300))
        v = [0.0, 0.0, 0.0]
        v[i] = 0.25 * s
        v[j] = (m[j, i] + m[i, j]) / s
        v[k] = (m[k, i] + m[i, k]) / s
        q = ((m[k, j] - m[j, k]) / s, *v)
    w, x, y, z = q
    n = math.sqrt(w * w + x * x + y * y + z * z)
    sign = -1.0 if w < 0 else 1.0
    return (sign * w / n, sign * x / n, sign * y / n, sign * z / n)


@dataclasses.dataclass(frozen=True)
class Visual:
    """One ``<visual>`` of a link.

    Attributes:
        name: unique name ``<link>/<k>``.
        link: the link it belongs to.
        shape: ``box`` | ``cylinder`` | ``sphere``.
        size: box (x, y, z) [m]; cylinder (radius, length) [m]; sphere (radius,) [m].
        origin: its pose in the link frame, (4, 4).
        rgba: material colour (0..1) when the URDF gives one, else None.
    """

    name: str
    link: str
    shape: str
    size: tuple[float, ...]
    origin: Matrix
    rgba: tuple[float, float, float, float] | None


@dataclasses.dataclass(frozen=True)
class _Joint:
    name: str
    kind: str
    parent: str
    child: str
    origin: Matrix
    axis: Matrix


def _floats(text: str | None, n: int, default: tuple[float, ...], what: str) -> tuple[float, ...]:
    if text is None:
        return default
    try:
        vals = tuple(float(v) for v in text.split())
    except ValueError as exc:
        raise UrdfError(f'{what}: expected {n} numbers, got {text!r}') from exc
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        raise UrdfError(f'{what}: expected {n} finite numbers, got {text!r}')
    return vals


def _origin(el: ET.Element | None, what: str) -> Matrix:
    if el is None:
        return np.eye(4)
    return origin_matrix(_floats(el.get('xyz'), 3, (0.0, 0.0, 0.0), what + ' xyz'),
                         _floats(el.get('rpy'), 3, (0.0, 0.0, 0.0), what + ' rpy'))


class RobotModel:
    """The links, joints and visuals of a URDF; :meth:`link_poses` places them.

    Args:
        urdf: the URDF text (``robot_description``).

    Raises:
        UrdfError: not XML, no ``<robot>``, a joint naming a link that does not exist, a link
            with two parents, no single root, or a malformed number.
    """

    def __init__(self, urdf: str) -> None:
        try:
            root = ET.fromstring(urdf)
        except ET.ParseError as exc:
            raise UrdfError(f'robot_description is not XML: {exc}') from exc
        if root.tag != 'robot':
            raise UrdfError(f'robot_description: expected a <robot>, got <{root.tag}>')
        self.name = root.get('name', '')
        materials = {m.get('name'): m for m in root.findall('material')}
        self.links: list[str] = [ln.get('name', '') for ln in root.findall('link')]
        self.visuals: list[Visual] = []
        self.skipped: list[str] = []
        for ln in root.findall('link'):
            lname = ln.get('name', '')
            for k, vis in enumerate(ln.findall('visual')):
                self._add_visual(lname, k, vis, materials)
        self.joints: list[_Joint] = []
        children: dict[str, str] = {}
        for j in root.findall('joint'):
            name, kind = j.get('name', ''), j.get('type', '')
            parent_el, child_el = j.find('parent'), j.find('child')
            parent = parent_el.get('link', '') if parent_el is not None else ''
            child = child_el.get('link', '') if child_el is not None else ''
            for ln_name in (parent, child):
                if ln_name not in self.links:
                    raise UrdfError(f'joint {name!r} names the unknown link {ln_name!r}')
            if child in children:
                raise UrdfError(f'link {child!r} has two parent joints')
            children[child] = name
            axis_el = j.find('axis')
            axis = np.array(_floats(axis_el.get('xyz') if axis_el is not None else None, 3,
                                    (1.0, 0.0, 0.0), f'joint {name} axis'))
            if kind in ('revolute', 'continuous', 'prismatic') and not np.linalg.norm(axis) > 0:
                raise UrdfError(f'joint {name!r}: zero axis')
            self.joints.append(_Joint(name, kind, parent, child,
                                      _origin(j.find('origin'), f'joint {name} origin'), axis))
        roots = [ln for ln in self.links if ln not in children]
        if len(roots) != 1:
            raise UrdfError(f'expected one root link, found {roots}')
        self.root = roots[0]
        self.movable = [j.name for j in self.joints if j.kind != 'fixed']

    def _add_visual(self, link: str, k: int, vis: ET.Element,
                    materials: Mapping[str | None, ET.Element]) -> None:
        geo = vis.find('geometry')
        what = f'link {link} visual {k}'
        shape_el = None if geo is None else next(iter(geo), None)
        if shape_el is None or shape_el.tag not in ('box', 'cylinder', 'sphere'):
            self.skipped.append(f'{link}/{k}')
            return
        if shape_el.tag == 'box':
            size = _floats(shape_el.get('size'), 3, (0.0, 0.0, 0.0), what + ' size')
        elif shape_el.tag == 'cylinder':
            size = (_floats(shape_el.get('radius'), 1, (0.0,), what + ' radius')[0],
                    _floats(shape_el.get('length'), 1, (0.0,), what + ' length')[0])
        else:
            size = _floats(shape_el.get('radius'), 1, (0.0,), what + ' radius')
        rgba = None
        mat = vis.find('material')
        if mat is not None:
            col = mat.find('color')
            if col is None and mat.get('name') in materials:
                col = materials[mat.get('name')].find('color')
            if col is not None:
                rgba = _floats(col.get('rgba'), 4, (0.7, 0.7, 0.7, 1.0), what + ' rgba')
        self.visuals.append(Visual(f'{link}/{k}', link, shape_el.tag, size,
                                   _origin(vis.find('origin'), what + ' origin'), rgba))

    def link_poses(self, q: Mapping[str, float] | None = None) -> dict[str, Matrix]:
        """Return every link's pose in the root frame, (4, 4), for joint positions ``q``
        (name -> rad or m; missing joints at 0)."""
        q = q or {}
        poses = {self.root: np.eye(4)}
        pending = list(self.joints)
        while pending:
            rest = []
            for j in pending:
                if j.parent not in poses:
                    rest.append(j)
                    continue
                m = poses[j.parent] @ j.origin
                v = float(q.get(j.name, 0.0))
                motion = np.eye(4)
                if j.kind in ('revolute', 'continuous'):
                    motion[:3, :3] = _axis_angle(j.axis, v)
                elif j.kind == 'prismatic':
                    motion[:3, 3] = j.axis / np.linalg.norm(j.axis) * v
                poses[j.child] = m @ motion
            if len(rest) == len(pending):  # unreachable from the root: a cycle
                raise UrdfError(f'joints {[j.name for j in rest]} are not connected to the root')
            pending = rest
        return poses

    def visual_poses(self, q: Mapping[str, float] | None = None) -> dict[str, Matrix]:
        """Return each visual's pose (4, 4) in the root frame, by :attr:`Visual.name`."""
        links = self.link_poses(q)
        return {v.name: links[v.link] @ v.origin for v in self.visuals}
