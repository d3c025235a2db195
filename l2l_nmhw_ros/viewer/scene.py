"""The live 3D scene of the reach graph, served to a browser by viser (ROS-free).

:class:`ViewerScene` holds one :class:`viser.ViserServer` (bound to 127.0.0.1 unless told
otherwise) and draws what the graph publishes, as the ROS adapter hands it over: the arm
(``robot_description`` + ``joint_states``, :class:`~l2l_nmhw_ros.viewer.robot_model.RobotModel`),
the episode's target, demonstration and executed paths before and after the update (the
controller's markers), the learning signal as a heat map and the crossbar's devices written this
episode as an image. A click in the view (after "Pick a target by clicking") or the "Send
target" button hands a reach target [m] to ``on_target``; a click is mapped to the point of the
reachable surface (the learned joints' workspace, :func:`reachable_surface`) nearest to the
clicked ray (:func:`pick_on_surface`).

The page's own state: the panel's "Scene" text lists what is drawn (links of the arm, target,
paths with their point counts, learning signal, devices); :meth:`ViewerScene.state` returns the
same as a dict.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from l2l_nmhw_ros.viewer.robot_model import RobotModel, matrix_to_wxyz

__all__ = ['COLORS', 'PATH_LABELS', 'ViewerScene', 'devices_image', 'pick_on_surface',
           'programmed_mask', 'reachable_surface', 'signal_image']

#: colours of the view (RGB 0..255); the arm keeps its URDF materials
COLORS = {'target': (230, 0, 230), 'demonstration': (40, 90, 255),
          'executed_baseline': (150, 150, 150), 'executed': (20, 190, 40),
          'surface': (160, 195, 230), 'programmed': (20, 20, 120)}
#: marker namespace -> what the panel calls it
PATH_LABELS = {'demonstration': 'demonstration', 'executed_baseline': 'executed before the update',
               'executed': 'executed after the update'}
#: fastest arm redraw [Hz] (joint_states arrive at up to 100 Hz)
ARM_RATE_HZ = 30.0
#: reachable-surface points drawn (all of them are used for picking)
SURFACE_SHOWN = 2500


def reachable_surface(fk: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
                      q_home: Sequence[float], cols: Sequence[int], lo: Sequence[float],
                      hi: Sequence[float], n: int = 48) -> npt.NDArray[np.float64]:
    """Return points [m] of the learned joints' workspace, (n^k, 3): FK of a grid of n values
    per learned joint (FK columns ``cols``, from ``lo`` to ``hi`` [rad]), the other joints at
    ``q_home``."""
    axes = [np.linspace(a, b, n) for a, b in zip(lo, hi, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing='ij'), -1).reshape(-1, len(cols))
    q = np.tile(np.asarray(q_home, dtype=np.float64), (grid.shape[0], 1))
    q[:, list(cols)] = grid
    return np.asarray(fk(q), dtype=np.float64)


def pick_on_surface(origin: npt.ArrayLike, direction: npt.ArrayLike,
                    points: npt.NDArray[np.float64], tolerance: float = 0.03
                    ) -> npt.NDArray[np.float64] | None:
    """Return the point of ``points`` (k, 3) [m] the ray ``origin + s * direction`` (s > 0)
    hits first: among the points within ``tolerance`` [m] of the ray, the one nearest to the
    origin; None when the ray misses them all."""
    o = np.asarray(origin, dtype=np.float64)
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    rel = points - o
    s = rel @ d
    dist = np.linalg.norm(rel - s[:, None] * d, axis=1)
    ok = (s > 0) & (dist <= tolerance)
    if not ok.any():
        return None
    idx = np.flatnonzero(ok)
    return points[idx[np.argmin(s[idx])]].copy()


def signal_image(signal: npt.ArrayLike, vmax: float | None = None) -> tuple[np.ndarray, float]:
    """Return the learning signal (time, neuron) as an RGB heat map (neuron, time, 3) uint8,
    neuron 0 at the bottom, diverging colours (blue < 0 < red, white = 0, RdBu_r), and the
    colour scale ±vmax (default: the 99th percentile of |L|)."""
    import matplotlib

    a = np.asarray(signal, dtype=np.float64)
    if vmax is None:
        vmax = float(np.percentile(np.abs(a), 99)) if a.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    rgba = matplotlib.colormaps['RdBu_r'](np.clip(a.T[::-1] / vmax * 0.5 + 0.5, 0.0, 1.0))
    return (rgba[..., :3] * 255).round().astype(np.uint8), vmax


def programmed_mask(t_prog: npt.ArrayLike, previous: npt.ArrayLike | None = None,
                    program_counts: npt.ArrayLike | None = None) -> npt.NDArray[np.bool_]:
    """Return which weights had a device written, (n_post, n_pre), from the devices'
    programming times ``t_prog`` [s], (2, n_devices, n_post, n_pre): those whose t_prog changed
    since ``previous`` (the state before the episode); without one, those written after the
    deployment, i.e. later than the most common t_prog of the programmed devices
    (``program_counts`` > 0, same shape; all devices when not given): the deployment programs
    nearly every programmed device at one time (exact for the first episode after it)."""
    t = np.asarray(t_prog, dtype=np.float64)
    if previous is not None:
        written = t != np.asarray(previous, dtype=np.float64)
    else:
        used = t if program_counts is None else t[np.asarray(program_counts) > 0]
        if used.size == 0:
            return np.zeros(t.shape[-2:], dtype=bool)
        values, counts = np.unique(used, return_counts=True)
        written = t > values[np.argmax(counts)]
    return written.any(axis=(0, 1))


def devices_image(mask: npt.NDArray[np.bool_], scale: int = 2) -> np.ndarray:
    """Return the mask (n_post, n_pre) as an RGB image, white background, written weights in
    :data:`COLORS` ``programmed``, each weight ``scale`` × ``scale`` pixels."""
    img = np.full((*mask.shape, 3), 255, dtype=np.uint8)
    img[mask] = COLORS['programmed']
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def _rgb(rgba: Sequence[float] | None, default: tuple[int, int, int]) -> tuple[int, int, int]:
    if rgba is None:
        return default
    return (int(round(rgba[0] * 255)), int(round(rgba[1] * 255)), int(round(rgba[2] * 255)))


class ViewerScene:
    """The browser view: a viser server and what it draws.

    Args:
        host: address to bind (127.0.0.1: this machine only).
        port: TCP port (viser takes the next free one when it is busy; see :attr:`port`).
        surface: reachable points [m], (k, 3), for picking targets by clicking (None: no
            picking, the "Send target" button only).
        on_target: called with a target [m], (3,), when the user sends one.
        frame: the frame of the scene (the arm's root link), shown in the panel.
    """

    def __init__(self, host: str = '127.0.0.1', port: int = 8080, *,
                 surface: npt.NDArray[np.float64] | None = None,
                 on_target: Callable[[npt.NDArray[np.float64]], None] | None = None,
                 frame: str = 'base_link') -> None:
        import viser

        self._lock = threading.Lock()
        self.server = viser.ViserServer(host=host, port=port, label='l2l_nmhw_ros',
                                        verbose=False)
        self.host = host
        self.port = int(self.server.get_port())
        self.frame = frame
        self.on_target = on_target
        self.surface = surface
        self.robot: RobotModel | None = None
        self._handles: dict[str, Any] = {}
        self._q: dict[str, float] = {}
        self._arm_drawn_at = 0.0
        self._state: dict[str, Any] = {
            'arm_links': 0, 'arm_visuals': 0, 'joint_states': 0, 'target': None, 'paths': {},
            'learning_signal': None, 'devices': None, 'targets_sent': 0}
        s, g = self.server.scene, self.server.gui
        s.set_up_direction('+z')
        g.configure_theme(control_width='large', show_share_button=False, dark_mode=False)
        g.set_panel_label('l2l_nmhw_ros: live reach view')
        self.server.initial_camera.position = (1.6, -1.9, 1.5)
        self.server.initial_camera.look_at = (0.35, 0.0, 0.35)
        self.server.initial_camera.up = (0.0, 0.0, 1.0)
        s.add_grid('/grid', width=2.0, height=2.0, cell_size=0.1, section_size=0.5,
                   plane='xy')
        if surface is not None:
            shown = np.asarray(surface, dtype=np.float32)
            if len(shown) > SURFACE_SHOWN:  # a uniform subset: dots, not a wall
                shown = shown[np.random.default_rng(0).choice(len(shown), SURFACE_SHOWN,
                                                              replace=False)]
            self._surface = s.add_point_cloud(
                '/reachable', shown, np.array(COLORS['surface'], dtype=np.uint8),
                point_size=0.004, point_shape='circle')
        self._status = g.add_markdown('')
        with g.add_folder('Reach target'):
            self._target_in = g.add_vector3('target [m]', (0.5, 0.0, 0.5), step=0.01)
            send = g.add_button('Send target', hint='publish the target above on reach_target')
            pick = g.add_button('Pick a target by clicking',
                                hint='the next click on the reachable surface (blue dots) '
                                'sends a target', disabled=surface is None)
            show = g.add_checkbox('show the reachable surface', surface is not None,
                                  disabled=surface is None)
        send.on_click(lambda _e: self._send(np.array(self._target_in.value, dtype=np.float64)))
        pick.on_click(lambda _e: self._arm_click())

        @show.on_update
        def _show(_e: Any) -> None:
            if surface is not None:
                self._surface.visible = bool(show.value)

        with g.add_folder('Learning signal'):
            self._signal_md = g.add_markdown('no learning signal yet')
            self._signal_img = g.add_image(np.full((8, 8, 3), 255, np.uint8), label=None)
        with g.add_folder('Crossbar'):
            self._devices_md = g.add_markdown('no episode yet')
            self._devices_img = g.add_image(np.full((8, 8, 3), 255, np.uint8), label=None)
        g.add_markdown(
            '**Colours**: target <span style="color:#e600e6">■ magenta</span>, '
            'demonstration <span style="color:#285aff">■ blue</span>, executed before the '
            'update <span style="color:#969696">■ grey</span>, after the update '
            '<span style="color:#14be28">■ green</span>; reachable surface: light-blue dots. '
            'Units: m, frame ' + frame + '.')
        self._refresh_status()

    # ---- inputs --------------------------------------------------------------------------

    def set_robot(self, urdf: str) -> None:
        """Draw the arm of the URDF text (replaces an earlier one), at the last joint
        positions.

        Raises:
            UrdfError: the URDF cannot be read.
        """
        robot = RobotModel(urdf)
        s = self.server.scene
        with self._lock:
            for name in [k for k in self._handles if k.startswith('/robot/')]:
                self._handles.pop(name).remove()
            self.robot = robot
            poses = robot.visual_poses(self._q)
            for v in robot.visuals:
                color = _rgb(v.rgba, (200, 200, 200))
                m = poses[v.name]
                kw = {'wxyz': matrix_to_wxyz(m[:3, :3]), 'position': tuple(m[:3, 3])}
                name = f'/robot/{v.name}'
                if v.shape == 'box':
                    h = s.add_box(name, color=color, dimensions=v.size, **kw)
                elif v.shape == 'cylinder':
                    h = s.add_cylinder(name, radius=v.size[0], height=v.size[1], color=color,
                                       **kw)
                else:
                    h = s.add_icosphere(name, radius=v.size[0], color=color, **kw)
                self._handles[name] = h
            self._state['arm_links'] = len(robot.links)
            self._state['arm_visuals'] = len(robot.visuals)
        self._refresh_status()

    def set_joint_positions(self, names: Sequence[str], positions: Sequence[float],
                            force: bool = False) -> bool:
        """Move the arm to the joint positions [rad] (redrawn at most :data:`ARM_RATE_HZ` times
        a second unless ``force``); return whether it was redrawn."""
        with self._lock:
            self._q.update({n: float(p) for n, p in zip(names, positions, strict=True)})
            self._state['joint_states'] += 1
            now = time.monotonic()
            if self.robot is None or (not force and now - self._arm_drawn_at
                                      < 1.0 / ARM_RATE_HZ):
                return False
            self._arm_drawn_at = now
            poses = self.robot.visual_poses(self._q)
            with self.server.atomic():
                for v in self.robot.visuals:
                    h = self._handles.get(f'/robot/{v.name}')
                    if h is not None:
                        m = poses[v.name]
                        h.wxyz = matrix_to_wxyz(m[:3, :3])
                        h.position = tuple(m[:3, 3])
        if self._state['joint_states'] == 1:
            self._refresh_status()
        return True

    def set_episode(self, target: Sequence[float] | None,
                    paths: Mapping[str, npt.NDArray[np.float64]]) -> None:
        """Draw the episode: the target [m] (3,) and its paths (marker namespace ->
        points (k, 3) [m]); a namespace not given is removed."""
        s = self.server.scene
        with self._lock:
            if target is not None:
                p = tuple(float(v) for v in target)
                self._handles['/episode/target'] = s.add_icosphere(
                    '/episode/target', radius=0.045, color=COLORS['target'], position=p)
                self._handles['/episode/target_label'] = s.add_label(
                    '/episode/target_label', 'target', position=(p[0], p[1], p[2] + 0.1))
                self._state['target'] = [round(v, 4) for v in p]
            for ns in PATH_LABELS:
                name = f'/episode/{ns}'
                pts = paths.get(ns)
                if pts is None or len(pts) < 2:
                    if name in self._handles:
                        self._handles.pop(name).remove()
                    self._state['paths'].pop(ns, None)
                    continue
                pts = np.asarray(pts, dtype=np.float32)
                seg = np.stack([pts[:-1], pts[1:]], axis=1)
                self._handles[name] = s.add_line_segments(
                    name, seg, np.array(COLORS[ns], dtype=np.uint8), thickness=4.0,
                    thickness_units='screen')
                self._state['paths'][ns] = int(len(pts))
        self._refresh_status()

    def set_learning_signal(self, signal: npt.ArrayLike, label: str = '') -> None:
        """Show the learning signal (time, neuron) as a heat map."""
        a = np.asarray(signal, dtype=np.float64)
        img, vmax = signal_image(a)
        self._signal_img.image = np.repeat(img, 2, axis=1)  # 2:1, half the panel's height
        self._signal_md.content = (
            f'{label} {a.shape[0]} steps × {a.shape[1]} neurons: time → (1 ms per step), '
            f'neuron ↑; red L > 0, blue L < 0, white 0, scale ±{vmax:.2f}')
        with self._lock:
            self._state['learning_signal'] = list(a.shape)
        self._refresh_status()

    def set_devices(self, mask: npt.NDArray[np.bool_], label: str = '') -> None:
        """Show which weights had devices written this episode, (n_post, n_pre)."""
        self._devices_img.image = np.repeat(devices_image(mask, scale=1), 2, axis=1)  # 2:1
        n = int(mask.sum())
        self._devices_md.content = (
            f'{label} weights whose devices were written this episode (update and restore): '
            f'**{n}** of {mask.size}; rows: post-synaptic neuron ({mask.shape[0]}), '
            f'columns: pre-synaptic input ({mask.shape[1]}), dark = written')
        with self._lock:
            self._state['devices'] = n
        self._refresh_status()

    # ---- targets -------------------------------------------------------------------------

    def _send(self, p: npt.NDArray[np.float64]) -> None:
        if self.on_target is not None and np.all(np.isfinite(p)):
            self.on_target(p)
            with self._lock:
                self._state['targets_sent'] += 1
            self._refresh_status()

    def _arm_click(self) -> None:
        """Wait for one click in the view; send the surface point under it."""
        s = self.server.scene

        @s.on_pointer_event('click')
        def _clicked(event: Any) -> None:
            s.remove_pointer_callback()
            if self.surface is None or event.ray_origin is None:
                return
            p = pick_on_surface(event.ray_origin, event.ray_direction, self.surface)
            if p is not None:
                self._target_in.value = tuple(float(v) for v in p)
                self._send(p)

    # ---- state ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What is drawn (the same as the panel's "Scene" text): ``arm_links``,
        ``arm_visuals``, ``joint_states`` received, ``target`` [m], ``paths`` (namespace ->
        points), ``learning_signal`` shape, ``devices`` (weights written), ``targets_sent``."""
        with self._lock:
            return {**self._state, 'paths': dict(self._state['paths'])}

    def _refresh_status(self) -> None:
        st = self.state()
        arm = (f"{st['arm_visuals']} shapes on {st['arm_links']} links"
               if st['arm_links'] else 'waiting for robot_description')
        lines = [f'**Scene** (frame {self.frame})',
                 f"- arm: {arm}; joint_states received: {'yes' if st['joint_states'] else 'no'}",
                 '- target: ' + ('(' + ', '.join(f'{v:+.3f}' for v in st['target']) + ') m'
                                 if st['target'] else 'none yet')]
        for ns, label in PATH_LABELS.items():
            if ns in st['paths']:
                lines.append(f"- path {label}: {st['paths'][ns]} points")
        if st['learning_signal']:
            lines.append(f"- learning signal: {st['learning_signal'][0]} × "
                         f"{st['learning_signal'][1]}")
        if st['devices'] is not None:
            lines.append(f"- weights written this episode: {st['devices']}")
        lines.append(f"- targets sent from this page: {st['targets_sent']}")
        self._status.content = '\n'.join(lines)

    def close(self) -> None:
        """Stop the server."""
        self.server.stop()
