"""Configuration schema: one frozen dataclass per concern, defaults = the paper's values.

The values live in ``config/l2l_nmhw.yaml`` in ROS parameter-file layout::

    /**:
      ros__parameters:
        seed: 42
        pcm:
          g_max: 25.0
          ...

:func:`load` reads one or more such files (later files override earlier ones, as ROS does with
several parameter files), rejects unknown keys and ints given for float fields (ROS is as strict),
and returns an :class:`L2LConfig`. The ROS nodes declare the same fields as parameters
(``ros/params.py``), so validation lives here once.

Every field carries ``metadata``: ``unit`` (SI, except conductance in µS), ``description``,
bounds ``lo``/``hi`` (inclusive), optional ``choices`` and ``read_only`` (structural: sizes, dt).

Sources of the defaults: Ortner et al., Nat. Commun. 16 (2025) and its official code
(IGITUGraz/RapidLearningInMemoryComputing); see ``shared/reference/paper-notes.md`` of the project.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from l2l_nmhw_ros.errors import ConfigError

__all__ = [
    'ArmConfig', 'ConfigError', 'ControlConfig', 'EpropConfig', 'FK_JOINTS', 'L2LConfig',
    'LSGConfig', 'MetaConfig', 'PCMConfig', 'READOUT_SIGNALS', 'TARGET_CODES', 'TaskConfig',
    'TraineeConfig', 'config_hash',
    'default_config_path', 'from_dict', 'load', 'overlay', 'param', 'to_dict',
]

#: The ED-Scorbot joints of the forward kinematics, in kinematic order (base to wrist).
FK_JOINTS = ('base_joint', 'shoulder', 'elbow', 'pitch')

#: Binary codes of the LSG's target input (see :func:`l2l_nmhw_ros.snn.encoding.encode_target`).
TARGET_CODES = ('paper', 'clamped', 'workspace')
#: Sources of the readout's learning signal (``eprop.readout_signal``)
READOUT_SIGNALS = ('lsg', 'error')

ROS_WILDCARD = '/**'
ROS_PARAMS = 'ros__parameters'


def param(default: Any, unit: str, description: str, *, lo: float | None = None,
          hi: float | None = None, choices: Iterable[str] | None = None,
          read_only: bool = False) -> Any:
    """Return a dataclass field with the schema metadata used for validation and ROS parameters."""
    meta = {'unit': unit, 'description': description, 'lo': lo, 'hi': hi,
            'choices': tuple(choices) if choices is not None else None, 'read_only': read_only}
    if isinstance(default, list):
        default = tuple(default)
    return dataclasses.field(default=default, metadata=meta)


def _check_scalar(name: str, value: Any, typ: type) -> None:
    if typ is bool:
        ok = isinstance(value, bool)
    elif typ is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif typ is float:
        ok = isinstance(value, float)
    elif typ is str:
        ok = isinstance(value, str)
    else:  # pragma: no cover - schema error
        raise ConfigError(f'{name}: unsupported type {typ}')
    if not ok:
        hint = ' (write floats with a decimal point, e.g. 1.0)' if typ is float else ''
        raise ConfigError(f'{name}: expected {typ.__name__}, got {type(value).__name__} '
                          f'{value!r}{hint}')
    if typ is float and not math.isfinite(value):
        raise ConfigError(f'{name}: must be finite, got {value!r}')


class _Section:
    """Mixin: generic validation of types, bounds and choices from field metadata."""

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            section = _SECTION_NAMES.get(type(self), type(self).__name__)
            name = f'{section}.{f.name}' if section else f.name
            value = getattr(self, f.name)
            typ = hints[f.name]
            if dataclasses.is_dataclass(typ):
                continue
            if get_origin(typ) is tuple:
                if isinstance(value, list):
                    value = tuple(value)
                    object.__setattr__(self, f.name, value)
                if not isinstance(value, tuple):
                    raise ConfigError(f'{name}: expected a list, got {value!r}')
                elem = get_args(typ)[0]
                for i, v in enumerate(value):
                    _check_scalar(f'{name}[{i}]', v, elem)
                items = value
            else:
                _check_scalar(name, value, typ)
                items = (value,)
            unit = f.metadata.get('unit', '')
            lo, hi, choices = f.metadata.get('lo'), f.metadata.get('hi'), f.metadata.get('choices')
            for v in items:
                if lo is not None and v < lo:
                    raise ConfigError(f'{name} = {v!r} [{unit}] is below its lower bound {lo}')
                if hi is not None and v > hi:
                    raise ConfigError(f'{name} = {v!r} [{unit}] is above its upper bound {hi}')
                if choices is not None and v not in choices:
                    raise ConfigError(f'{name} = {v!r} is not one of {list(choices)}')
        self._validate()

    def _validate(self) -> None:
        """Check relations between fields; override in sections that have any."""


@dataclasses.dataclass(frozen=True)
class PCMConfig(_Section):
    """Phase-change-memory crossbar emulator (``pcm`` section).

    Device model: Nandakumar et al., ICECS 2019, as implemented in IBM aihwkit
    (``PCMLikeNoiseModel``) and in the paper's code (``module/pcm.py``).
    """

    preset: str = param('paper_code', '', 'Time/noise preset: paper_code reproduces the paper '
                        "code (fixed drift ratio t/t0 = 32, its read-noise variant); physical "
                        'follows the emulator clock per device', choices=('paper_code', 'physical',
                                                                          'ideal'))
    g_max: float = param(25.0, 'µS', 'Conductance of a fully SET device (maps to |w| = w_max)',
                         lo=1e-3)
    w_max: float = param(1.0, '1', 'Weights are clipped to [-w_max, w_max]', lo=1e-6)
    n_devices: int = param(2, '1', 'Devices per polarity averaged on read (paper code: 2)', lo=1,
                           hi=16, read_only=True)
    readout_replicas: int = param(1, '1', 'Copies of every readout weight on the crossbar, each '
                                  'programmed and its update rounded on its own, their outputs '
                                  'averaged (multi-memristive synapse, Boybat et al. 2018; paper '
                                  'code: 1)', lo=1, hi=16, read_only=True)
    prog_noise: bool = param(True, '', 'Programming noise on every (re)programmed device')
    prog_noise_coeffs: tuple[float, ...] = param(
        [0.26348, 1.9650, -1.1731], 'µS',
        'sigma_prog(g_hat) = max(c0 + c1 g_hat + c2 g_hat^2, 0) at prog_noise_g_max_ref')
    prog_noise_g_max_ref: float = param(25.0, 'µS', 'g_max at which prog_noise_coeffs were fit; '
                                        'rescaled to g_max as aihwkit does', lo=1e-3)
    drift: bool = param(True, '', 'Conductance drift g(t) = g_prog (t/t0)^-nu')
    t0: float = param(20.0, 's', 'Drift reference time after programming (aihwkit: 20 s)',
                      lo=1e-9)
    drift_t_ratio: float = param(32.0, '1', 'paper_code preset: fixed drift time ratio t/t0',
                                 lo=1.0)
    t_inference: float = param(620.0, 's', 'physical preset, functional model (PCMModel, no '
                               'clock): time since programming at which drift and read noise are '
                               'evaluated; 620 s gives (t + t0)/t0 = 32 as in the paper code',
                               lo=0.0)
    nu_mean_coeffs: tuple[float, ...] = param(
        [-0.0155, 0.0244], '1', 'mu_nu = clip(a ln g_hat + b, lo, hi)')
    nu_mean_bounds: tuple[float, ...] = param([0.049, 0.1], '1', 'clip bounds of mu_nu')
    nu_std_coeffs: tuple[float, ...] = param(
        [-0.0125, -0.0059], '1', 'sigma_nu = clip(a ln g_hat + b, lo, hi)')
    nu_std_bounds: tuple[float, ...] = param([0.008, 0.045], '1', 'clip bounds of sigma_nu')
    read_noise: bool = param(True, '', '1/f read noise on every MVM')
    t_read: float = param(250e-9, 's', 'Read duration in the 1/f noise integral', lo=1e-12)
    read_noise_t: float = param(32.0, 's', 'paper_code preset: fixed inference time for the read '
                                'noise (paper code: 32)', lo=0.0)
    q_s_coeffs: tuple[float, ...] = param([0.0088, 0.65, 0.2], '1',
                                          'Q_s(g) = min(a / g^b, c) of the 1/f read noise')
    drift_compensation: bool = param(False, '', 'Global drift compensation (read a reference, '
                                     'rescale outputs); off in paper_code')
    delta_w_step: float = param(0.0625, '1', 'Update quantum: Delta W rounded to this grid (1/16)',
                                lo=0.0, hi=1.0)
    stochastic_rounding: bool = param(True, '', 'Stochastic (unbiased) instead of deterministic '
                                      'rounding of Delta W (paper code: robot deterministic, '
                                      'Omniglot stochastic; ours: stochastic, see MODEL_CARD)')
    deploy_jitter: float = param(0.01, '1', 'paper_code: uniform jitter U(-a, a) added to the '
                                 'weights at initial deployment', lo=0.0)
    tile_size: int = param(256, '1', 'Crossbar tile rows = columns', lo=1, read_only=True)

    def _validate(self) -> None:
        if len(self.prog_noise_coeffs) != 3:
            raise ConfigError('pcm.prog_noise_coeffs: expected 3 values (c0, c1, c2) [µS]')
        for key in ('nu_mean_coeffs', 'nu_mean_bounds', 'nu_std_coeffs', 'nu_std_bounds'):
            if len(getattr(self, key)) != 2:
                raise ConfigError(f'pcm.{key}: expected 2 values')
        if len(self.q_s_coeffs) != 3:
            raise ConfigError('pcm.q_s_coeffs: expected 3 values (a, b, c)')
        if self.nu_mean_bounds[0] > self.nu_mean_bounds[1]:
            raise ConfigError('pcm.nu_mean_bounds: lower bound above upper bound')
        if self.nu_std_bounds[0] > self.nu_std_bounds[1]:
            raise ConfigError('pcm.nu_std_bounds: lower bound above upper bound')


@dataclasses.dataclass(frozen=True)
class _SpikingNetwork(_Section):
    """Neuron and readout constants shared by the trainee and the LSG (same paper values)."""

    tau_m: float = param(0.020, 's', 'Membrane time constant', lo=1e-6)
    tau_out: float = param(0.020, 's', 'Readout time constant', lo=1e-6)
    n_ref: int = param(5, 'steps', 'Refractory period', lo=0)
    dampening_factor: float = param(0.3, '1', 'gamma of the pseudo-derivative', lo=0.0)


@dataclasses.dataclass(frozen=True)
class TraineeConfig(_SpikingNetwork):
    """The trainee: recurrent LIF network on the PCM crossbar (``trainee`` section)."""

    n_in: int = param(5, '1', 'Clock input neurons', lo=1, read_only=True)
    n_rec: int = param(250, '1', 'Recurrent LIF neurons', lo=1, read_only=True)
    n_out: int = param(2, '1', 'Leaky readouts = joint angular velocities, one per '
                       'task.learned_joints (paper: base, shoulder)',
                       lo=1, read_only=True)
    v_th: float = param(0.6, '1', 'Firing threshold (normalised membrane units)', lo=1e-6)
    rate_target: float = param(20.0, 'Hz', 'Firing-rate regulariser target', lo=0.0)
    rate_reg: float = param(0.25, '1', 'Firing-rate regulariser weight', lo=0.0)


@dataclasses.dataclass(frozen=True)
class LSGConfig(_SpikingNetwork):
    """The learning-signal generator: software ALIF/LIF network (``lsg`` section)."""

    n_rec: int = param(800, '1', 'Recurrent neurons', lo=1, read_only=True)
    alif_fraction: float = param(0.3, '1', 'Fraction of adaptive (ALIF) neurons', lo=0.0, hi=1.0,
                                 read_only=True)
    v_th: float = param(1.3, '1', 'Base firing threshold', lo=1e-6)
    tau_a: float = param(0.6, 's', 'Threshold adaptation time constant', lo=1e-6)
    beta: float = param(1.6, '1', 'Threshold adaptation strength of ALIF neurons', lo=0.0)
    bits_per_coord: int = param(16, '1', 'Binary input neurons per target coordinate',
                                lo=1, hi=31, read_only=True)
    target_code: str = param('workspace', '', 'Binary code of the target coordinates fed to the '
                             'LSG: paper (authors, wraps at 1 m), clamped (saturates at 1 m; '
                             'checkpoints/paper_two_joints), workspace (-2..2 m, no wrap); a '
                             'checkpoint records its own', choices=TARGET_CODES,
                             read_only=True)
    rate_target: float = param(10.0, 'Hz', 'Firing-rate regulariser target', lo=0.0)
    rate_reg: float = param(0.25, '1', 'Firing-rate regulariser weight', lo=0.0)
    w_out_init_gain: float = param(1.0, '1', 'Gain on the Glorot-uniform initial readout '
                                   '(paper code: 1)', lo=0.0)


@dataclasses.dataclass(frozen=True)
class EpropConfig(_Section):
    """Natural e-prop inner loop (``eprop`` section)."""

    eta: float = param(1e-4, '1', 'Inner learning rate: Delta W = -eta sum_t L psi e_bar', lo=0.0)
    n_updates: int = param(1, '1', 'On-chip weight updates per task (paper: 1)', lo=0)
    update_w_in: bool = param(True, '', 'Update the input weights in the inner loop')
    update_w_rec: bool = param(True, '', 'Update the recurrent weights in the inner loop')
    update_w_out: bool = param(False, '', 'Also update the readout in the inner loop, from n_out '
                               'extra LSG learning signals (e-prop readout rule Delta W_out = '
                               '-eta_out sum_t L_out z_hat); paper: False', read_only=True)
    eta_out: float = param(1e-4, '1', 'Readout learning rate of update_w_out', lo=0.0)
    readout_signal: str = param('lsg', '', 'Learning signal of the readout update (update_w_out): '
                                'lsg = the LSG\'s last n_out outputs; error = e-prop\'s output '
                                'error L_out = y - y* against the demonstration (Bellec et al. '
                                '2020), the signal\'s last n_out channels then carry y*',
                                choices=READOUT_SIGNALS, read_only=True)


@dataclasses.dataclass(frozen=True)
class TaskConfig(_Section):
    """Task families and their encodings (``task`` section)."""

    family: str = param('reach', '', 'Task family', choices=('reach', 'brownian', 'reference'))
    n_steps: int = param(249, 'steps', 'Trial length', lo=1, read_only=True)
    dt: float = param(0.001, 's', 'Network time step', lo=1e-6, read_only=True)
    clock_window: int = param(50, 'steps', 'Each clock neuron is active in its own window', lo=1)
    clock_interval: int = param(10, 'steps', 'One clock spike every this many steps', lo=1)
    omega_scale: float = param(0.01, 'rad/step per unit', 'Joint angle = q0 + omega_scale * '
                               'cumsum(omega) (paper code integrator)', lo=0.0)
    brownian_delta: float = param(0.65, '1', 'Brownian motion scale delta', lo=0.0)
    brownian_dt: float = param(0.01, '1', 'Brownian motion time step', lo=0.0)
    smoothing_window: int = param(120, 'steps', 'Hann smoothing window length', lo=1)
    learned_joints: tuple[str, ...] = param(['base_joint', 'shoulder'], '',
                                            'Joints the trainee drives, one readout each: the '
                                            'first k of base_joint, shoulder, elbow, pitch (the '
                                            'others held at 0); paper: base, shoulder',
                                            read_only=True)
    joint_lo: tuple[float, ...] = param([-2.2689280275926285, -1.2217304763960306], 'rad',
                                        'Safe range lower bound per learned joint (-130°, -70°)')
    joint_hi: tuple[float, ...] = param([2.2689280275926285, 1.2217304763960306], 'rad',
                                        'Safe range upper bound per learned joint (+130°, +70°)')
    reach_min_distance: float = param(0.05, 'm', 'reach: minimum end-effector travel', lo=0.0)

    def _validate(self) -> None:
        k = len(self.learned_joints)
        if not 1 <= k <= len(FK_JOINTS) or self.learned_joints != FK_JOINTS[:k]:
            raise ConfigError(f'task.learned_joints: expected the first k of {list(FK_JOINTS)}, '
                              f'got {list(self.learned_joints)}')
        if len(self.joint_lo) != k or len(self.joint_hi) != k:
            raise ConfigError(f'task.joint_lo / joint_hi: one bound per learned joint ({k}), got '
                              f'{len(self.joint_lo)} / {len(self.joint_hi)}')
        for i, (lo, hi) in enumerate(zip(self.joint_lo, self.joint_hi, strict=True)):
            if lo >= hi:
                raise ConfigError(f'task.joint_lo[{i}] = {lo} [rad] is not below joint_hi[{i}]')


@dataclasses.dataclass(frozen=True)
class MetaConfig(_Section):
    """Meta-training (outer loop, ``meta`` section)."""

    lr: float = param(1.5e-3, '1', 'Adam learning rate', lo=0.0)
    lr_decay: float = param(0.99, '1', 'Learning-rate factor every lr_decay_every iterations',
                            lo=0.0, hi=1.0)
    lr_decay_every: int = param(500, 'iterations', 'Learning-rate decay period', lo=1)
    iterations: int = param(100000, '1', 'Outer iterations', lo=0)
    batch_size: int = param(90, 'tasks', 'Tasks per outer iteration', lo=1)
    validate_every: int = param(10000, 'iterations', 'Validation period', lo=1)
    validation_batches: int = param(100, 'batches', 'Batches per validation', lo=1)
    loss_omega_weight: float = param(0.5, '1', 'Weight of MSE(omega) in the loss', lo=0.0)
    loss_xyz_weight: float = param(0.5, '1', 'Weight of MSE(xyz) in the loss', lo=0.0)
    loss_final_weight: float = param(0.0, '1', 'Weight of the final-position term: mean squared '
                                     'distance [m^2] of the end effector over the last '
                                     'final_window steps to the target\'s last point (paper: 0)',
                                     lo=0.0)
    final_window: int = param(25, 'steps', 'Steps at the end of the trial in the final-position '
                              'term', lo=1)
    pcm_in_loop: bool = param(True, '', 'PCM noise model in the meta-training loop')
    pcm_fraction: float = param(1.0, '1', 'With pcm_in_loop: fraction of each batch run through '
                                'the PCM model, the rest in float software (paper: 1)',
                                lo=0.0, hi=1.0)
    pcm_read_noise_in_loop: bool = param(True, '', 'With pcm_in_loop: read noise on every MVM '
                                         'during meta-training (evaluation always follows pcm.*)')
    quantize_in_loop: bool = param(True, '', 'Delta W quantisation in the meta-training loop '
                                   '(software share; the PCM model always quantises)')
    families: tuple[str, ...] = param(['brownian'], '', 'Task families drawn during '
                                      'meta-training (batch split evenly; paper: brownian)')
    grad_clip: float = param(0.0, '1', 'Clip the meta-gradient global norm (0 = off; paper: off)',
                             lo=0.0)
    clip_trainee: bool = param(False, '', 'After every step, clip the trainee meta-parameters to '
                               '+-pcm.w_max (what a crossbar can hold; paper: off, its '
                               'checkpoint has 10.8 % of W_in beyond)')
    checkpoint_every: int = param(500, 'iterations', 'Checkpoint period', lo=1)
    validation_tasks: int = param(90, 'tasks', 'Tasks per validation batch', lo=1)

    def _validate(self) -> None:
        for fam in self.families:
            if fam not in ('reach', 'brownian', 'reference'):
                raise ConfigError(f'meta.families: unknown family {fam!r}')
        if not self.families:
            raise ConfigError('meta.families: at least one family')


@dataclasses.dataclass(frozen=True)
class ArmConfig(_Section):
    """Arm drivers (``arm`` section): names, limits and safety."""

    joints: tuple[str, ...] = param(['base_joint', 'shoulder', 'elbow',
                                     'pitch'], '',
                                    'Commanded joints, in command order')
    cmd_timeout: float = param(0.5, 's', 'Stale-command watchdog: hold the measured position '
                               'when no command arrived for this long', lo=1e-3)
    max_velocity: float = param(1.0, 'rad/s', 'Velocity limit (URDF: 1.0 rad/s)', lo=1e-6)
    max_acceleration: float = param(5.0, 'rad/s^2', 'Acceleration limit of the safety filter\'s '
                                    'target (our choice; the URDF has none)', lo=1e-3)
    sim_dt: float = param(0.004, 's', 'PyBullet fixed time step', lo=1e-5, hi=0.1)
    publish_rate: float = param(50.0, 'Hz', 'joint_states publishing rate', lo=1.0)
    real_time_factor: float = param(1.0, '1', 'arm_sim: simulated seconds per wall-clock second',
                                    lo=0.01, hi=100.0)
    publish_clock: bool = param(False, '', 'arm_sim owns the time: publish /clock (sim time); '
                                'run the other nodes with use_sim_time')
    gravity: float = param(9.80665, 'm/s^2', 'arm_sim: gravitational acceleration', lo=0.0,
                           hi=20.0)
    urdf: str = param('', '', 'URDF file; empty = the package\'s urdf/ed_scorbot.urdf')
    fpga_host: str = param('127.0.0.1', '', 'ED-Scorbot FPGA address (real arm only)')
    fpga_port: int = param(25000, '1', 'ED-Scorbot FPGA UDP port for joint references', lo=1,
                           hi=65535)
    feedback_port: int = param(26000, '1', 'UDP port on which the FPGA reports encoder counts '
                               '(0 = no feedback: joint_states are not published)', lo=0,
                               hi=65535)
    feedback_host: str = param('0.0.0.0', '', 'Local address the feedback socket binds to')
    feedback_timeout: float = param(0.5, 's', 'Encoder feedback older than this is stale: '
                                    'joint_states stop, diagnostics report an error', lo=1e-3)


@dataclasses.dataclass(frozen=True)
class ControlConfig(_Section):
    """Controller and accelerator glue (``control`` section): episodes, playback, state."""

    time_scale: float = param(0.0, '1', 'Playback: robot time = network time x time_scale; '
                              '0 = smallest scale that keeps the URDF velocity limits', lo=0.0)
    min_time_scale: float = param(1.0, '1', 'Lower bound of the automatic time scale (the robot '
                                  'never plays faster than the network ran)', lo=1e-3)
    velocity_fraction: float = param(0.9, '1', 'Share of the velocity limit (arm.max_velocity) '
                                     'that playback and moves may use', lo=0.01, hi=1.0)
    command_rate: float = param(50.0, 'Hz', 'Rate of the streamed joint-position commands', lo=1.0)
    settle_time: float = param(0.5, 's', 'Wait after the last command before evaluating', lo=0.0)
    home: tuple[float, ...] = param([0.0, 0.0, 0.0, 0.0], 'rad', 'Home pose (arm.joints order): '
                                    'start of every demonstration and execution (paper: q0 = 0)')
    run_baseline: bool = param(True, '', 'Before the update, execute a test trial with the '
                               'current (meta-learned) weights to report the error without update')
    restore_weights: bool = param(True, '', 'After each episode, re-program the changed devices '
                                  'back to the meta-learned weights (each target is a new task)')
    fast_trials: bool = param(True, '', 'Accelerator trials in the compiled numba loop '
                              '(snn.fast_trial; ~1 ms instead of ~40 ms per trial) instead of the '
                              'torch loop: same equations, the read noise drawn in another order')
    reach_tolerance: float = param(0.02, 'm', 'Largest distance of a target from the workspace of '
                                   'the learned joints (base, shoulder) that is still accepted',
                                   lo=1e-6)
    queue_size: int = param(32, '1', 'Targets waiting while an episode runs (controller) and '
                            'learning signals waiting while one runs (accelerator); when full, '
                            'the oldest is dropped (the controller answers it with a rejected '
                            'result)', lo=1)
    min_travel: float = param(0.05, 'm', 'Smallest distance of a target from the end effector at '
                              'control.home: a closer target has no motion to learn and is '
                              'rejected (task.reach_min_distance is the same 0.05 m)', lo=0.0)
    episode_timeout: float = param(120.0, 's', 'Wall-clock limit of one episode (learning signal '
                                   'to evaluation) before it is abandoned', lo=1.0)
    signal_retry: float = param(2.0, 's', 'Wall-clock time after which the controller re-sends '
                                'a learning signal the accelerator has neither started (status '
                                'with its CRC at an episode start) nor queued; the accelerator '
                                'ignores copies of the running or a queued signal', lo=0.05)
    status_rate: float = param(1.0, 'Hz', 'Rate of pcm_accelerator/status (plus one message per '
                               'phase change)', lo=0.01)
    frame_id: str = param('base_link', '', 'Frame of targets and markers (the arm base); targets '
                          'in other frames are rejected (no tf2 on pip-only installs)')
    checkpoint: str = param('', '', 'Checkpoint path; empty = the shipped default')
    state_file: str = param('', '', 'PCM device-state file; empty = in-memory only')
    max_weights_changed: int = param(8000, '1', 'Largest number of weights one on-chip update may '
                                     'change (after rounding); a larger update is refused before '
                                     'any device is programmed (0 = no limit)', lo=0)
    joint_state_timeout: float = param(1.0, 's', 'Wall-clock time without joint_states after '
                                       'which the accelerator stops streaming and ends the '
                                       'episode as failed (arm driver down?)', lo=0.05)
    clock_timeout: float = param(3.0, 's', 'Wall-clock time the ROS clock may stand still during '
                                 'an episode before the accelerator warns (paused simulation, '
                                 'no /clock)', lo=0.05)
    joint_state_margin: float = param(0.1, 'rad', 'joint_states outside the URDF limits by more '
                                      'than this are impossible readings: rejected', lo=0.0)


@dataclasses.dataclass(frozen=True)
class L2LConfig(_Section):
    """The whole configuration (the ``ros__parameters`` mapping of ``config/l2l_nmhw.yaml``)."""

    seed: int = param(42, '1', 'Seed of every random generator', lo=0)
    pcm: PCMConfig = dataclasses.field(default_factory=PCMConfig)
    trainee: TraineeConfig = dataclasses.field(default_factory=TraineeConfig)
    lsg: LSGConfig = dataclasses.field(default_factory=LSGConfig)
    eprop: EpropConfig = dataclasses.field(default_factory=EpropConfig)
    task: TaskConfig = dataclasses.field(default_factory=TaskConfig)
    meta: MetaConfig = dataclasses.field(default_factory=MetaConfig)
    arm: ArmConfig = dataclasses.field(default_factory=ArmConfig)
    control: ControlConfig = dataclasses.field(default_factory=ControlConfig)

    def _validate(self) -> None:
        if self.trainee.n_out != len(self.task.learned_joints):
            raise ConfigError(f'trainee.n_out = {self.trainee.n_out} readouts, but '
                              f'{len(self.task.learned_joints)} task.learned_joints')


_SECTION_NAMES: dict[type, str] = {
    PCMConfig: 'pcm', TraineeConfig: 'trainee', LSGConfig: 'lsg', EpropConfig: 'eprop',
    TaskConfig: 'task', MetaConfig: 'meta', ArmConfig: 'arm', ControlConfig: 'control',
    L2LConfig: '',
}


def default_config_path() -> Path:
    """Return the path of the package's ``config/l2l_nmhw.yaml``.

    Looks in the ament index share directory first (installed package), then in the source tree.

    Raises:
        FileNotFoundError: if neither exists.
    """
    from l2l_nmhw_ros.share import find_share

    return find_share('config/l2l_nmhw.yaml')


def _from_mapping(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f'{prefix or "config"}: expected a mapping, got {data!r}')
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        full = f'{prefix}.{key}' if prefix else str(key)
        if key not in names:
            raise ConfigError(f'unknown configuration key {full!r}')
        typ = hints[key]
        if dataclasses.is_dataclass(typ):
            kwargs[key] = _from_mapping(typ, value, full)  # type: ignore[arg-type]
        else:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except TypeError as exc:  # pragma: no cover - defensive
        raise ConfigError(f'{prefix}: {exc}') from exc


def from_dict(data: Mapping[str, Any]) -> L2LConfig:
    """Build a validated :class:`L2LConfig` from a nested mapping (the ``ros__parameters`` part).

    Raises:
        ConfigError: unknown key, wrong type (an int for a float field included) or bound violated.
    """
    return _from_mapping(L2LConfig, data, '')


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def _ros_parameters(path: Path) -> dict[str, Any]:
    with open(path, encoding='utf-8') as fh:
        doc = yaml.safe_load(fh) or {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f'{path}: expected a mapping at the top level')
    merged: dict[str, Any] = {}
    for node_key, body in doc.items():
        if not isinstance(body, Mapping) or ROS_PARAMS not in body:
            raise ConfigError(f'{path}: entry {node_key!r} has no {ROS_PARAMS!r} mapping')
        if node_key != ROS_WILDCARD:
            continue  # node-specific sections are for ROS alone
        merged = _deep_merge(merged, body[ROS_PARAMS] or {})
    return merged


def load(*paths: str | Path, overrides: Mapping[str, Any] | None = None) -> L2LConfig:
    """Load ROS parameter files (``/**: ros__parameters:``) into a validated :class:`L2LConfig`.

    Args:
        paths: parameter files, applied in order (later ones override); none = the default file.
        overrides: nested mapping applied last (e.g. from the command line).

    Raises:
        ConfigError: unknown key, wrong type, bound violated, or malformed file.
        FileNotFoundError: a path does not exist.
    """
    files = [Path(p) for p in paths] or [default_config_path()]
    merged: dict[str, Any] = {}
    for p in files:
        if not p.is_file():
            raise FileNotFoundError(f'configuration file not found: {p}')
        merged = _deep_merge(merged, _ros_parameters(p))
    if overrides:
        merged = _deep_merge(merged, overrides)
    return from_dict(merged)


def overlay(cfg: L2LConfig, *paths: str | Path,
            sections: tuple[str, ...] | None = None) -> L2LConfig:
    """Return ``cfg`` with ROS parameter files applied on top (later files override).

    Unlike :func:`load`, keys the files do not name keep ``cfg``'s values (e.g. a checkpoint's
    configuration with a ``pcm:`` ablation on top).

    Args:
        cfg: the configuration to start from.
        paths: parameter files (``/**: ros__parameters:``).
        sections: top-level sections the files may set (``None``: any).

    Raises:
        ConfigError: unknown key, wrong type, bound violated, malformed file, or a section
            outside ``sections``.
        FileNotFoundError: a path does not exist.
    """
    merged = to_dict(cfg)
    for p in map(Path, paths):
        if not p.is_file():
            raise FileNotFoundError(f'configuration file not found: {p}')
        params = _ros_parameters(p)
        if sections is not None:
            bad = sorted(k for k in params if k not in sections)
            if bad:
                raise ConfigError(f'{p}: may set only {list(sections)}, got {bad}')
        merged = _deep_merge(merged, params)
    return from_dict(merged)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Return a config dataclass as a nested dict of plain values (tuples become lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out[f.name] = to_dict(v)
        elif isinstance(v, tuple):
            out[f.name] = list(v)
        else:
            out[f.name] = v
    return out


def config_hash(cfg: Any) -> str:
    """Return a stable SHA-256 (hex, 16 chars) of a config dataclass's values."""
    blob = json.dumps(to_dict(cfg), sort_keys=True, separators=(',', ':')).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
