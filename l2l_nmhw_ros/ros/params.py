"""Declare config dataclass sections as ROS parameters and read them back validated.

One ``declare_parameter`` per field (or per field a node uses: ``keys``), with the dataclass
default (or the value of the parameter file loaded by ROS), a description carrying the unit,
integer/float ranges from the bounds and ``read_only`` for structural fields. The values read back
build the same frozen dataclass, so validation runs once, in the core (:mod:`l2l_nmhw_ros.config`).

Values a node does not take from its parameters (the network sections, which come from the
checkpoint) are declared read-only with the values in effect (:func:`declare_effective`), so
``ros2 param get`` tells the truth and ``ros2 param set`` is refused. :func:`guard_live_updates`
refuses, with a reason, every run-time change the node cannot apply and validates and applies the
others.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType, SetParametersResult)

from l2l_nmhw_ros.errors import ConfigError

T = TypeVar('T')

_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
_ARRAY_TYPES = {bool: ParameterType.PARAMETER_BOOL_ARRAY,
                int: ParameterType.PARAMETER_INTEGER_ARRAY,
                float: ParameterType.PARAMETER_DOUBLE_ARRAY,
                str: ParameterType.PARAMETER_STRING_ARRAY}


#: parameters of rclpy itself that a node's guard lets through
ROS_OWN = ('use_sim_time',)
ROS_OWN_PREFIXES = ('qos_overrides.',)


def _descriptor(f: dataclasses.Field, typ: Any, read_only: bool | None = None,
                note: str = '') -> ParameterDescriptor:
    meta = f.metadata
    unit = meta.get('unit', '')
    desc = meta.get('description', '') + (f' [{unit}]' if unit else '') + note
    if read_only is None:
        read_only = bool(meta.get('read_only', False))
    d = ParameterDescriptor(description=desc, read_only=read_only)
    if get_origin(typ) is tuple:
        d.type = _ARRAY_TYPES[get_args(typ)[0]]
        return d
    d.type = _TYPES[typ]
    lo, hi = meta.get('lo'), meta.get('hi')
    if typ is float and (lo is not None or hi is not None):
        d.floating_point_range = [FloatingPointRange(
            from_value=float(lo if lo is not None else -1e308),
            to_value=float(hi if hi is not None else 1e308), step=0.0)]
    elif typ is int and (lo is not None or hi is not None):
        d.integer_range = [IntegerRange(
            from_value=int(lo if lo is not None else -(2**63)),
            to_value=int(hi if hi is not None else 2**63 - 1), step=0)]
    return d


def declare_config(node: Any, cls: type[T], prefix: str,
                   keys: Iterable[str] | None = None) -> T:
    """Declare the fields of ``cls`` as ``<prefix>.<field>`` and return the validated dataclass.

    Args:
        node: the rclpy node.
        cls: config section dataclass.
        prefix: section name.
        keys: the fields to declare (default: all); the others keep their defaults.

    Raises:
        ConfigError: a value is invalid (the core's message, naming the key), or ``keys`` names
            a field ``cls`` does not have.
    """
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    wanted = list(fields) if keys is None else list(keys)
    unknown = [k for k in wanted if k not in fields]
    if unknown:
        raise ConfigError(f'{prefix}: no such keys {unknown}')
    values: dict[str, Any] = {}
    for f in (fields[k] for k in wanted):
        typ = hints[f.name]
        default = f.default
        if isinstance(default, tuple):
            default = list(default)
        name = f'{prefix}.{f.name}' if prefix else f.name
        p = node.declare_parameter(name, default, _descriptor(f, typ))
        value = p.value
        values[f.name] = tuple(value) if isinstance(value, list | tuple) else value
    return cls(**values)


def declare_effective(node: Any, value: Any, prefix: str, source: str = 'the checkpoint',
                      keys: Collection[str] | None = None) -> None:
    """Declare every field (or the ``keys``) of the section ``value`` read-only with the value
    in effect.

    Parameter-file and command-line values of these names are ignored (``ignore_override``): the
    node takes them from ``source`` instead, and says so in each description.
    """
    hints = get_type_hints(type(value))
    for f in dataclasses.fields(value):
        if keys is not None and f.name not in keys:
            continue
        v = getattr(value, f.name)
        node.declare_parameter(f'{prefix}.{f.name}', list(v) if isinstance(v, tuple) else v,
                               _descriptor(f, hints[f.name], read_only=True,
                                           note=f' (read-only: from {source})'),
                               ignore_override=True)


def guard_live_updates(node: Any, live: Collection[str], current: Callable[[], Any],
                       apply: Callable[[Any], None]) -> None:
    """Refuse run-time changes the node cannot apply; validate and apply the ``live`` ones.

    Register after every ``declare_parameter`` (rclpy runs the callback on declarations too).

    Args:
        node: the rclpy node.
        live: ``section.key`` names the node reads again at run time.
        current: returns the node's configuration now (an L2LConfig).
        apply: called with the new configuration when every change is valid; a ConfigError or
            ValueError it raises refuses the change with its message.

    A change of any other parameter of the node is refused with the reason (rclpy's own
    ``use_sim_time`` and ``qos_overrides.*`` pass; read-only ones never reach the callback). A
    live change the config dataclass would refuse is refused with its validation message.
    """
    def _cb(params: list) -> SetParametersResult:
        changes: dict[str, dict[str, Any]] = {}
        for p in params:
            if p.name in live:
                section, _, key = p.name.partition('.')
                value = p.value
                changes.setdefault(section, {})[key] = (tuple(value) if isinstance(value, list)
                                                        else value)
            elif p.name not in ROS_OWN and not p.name.startswith(ROS_OWN_PREFIXES):
                return SetParametersResult(successful=False, reason=(
                    f'{p.name} is read at start-up only: restart the node to change it '
                    f'(changeable at run time: {", ".join(sorted(live))})'))
        if not changes:
            return SetParametersResult(successful=True)
        cfg = current()
        try:
            apply(dataclasses.replace(cfg, **{
                s: dataclasses.replace(getattr(cfg, s), **kv) for s, kv in changes.items()}))
        except (ConfigError, TypeError, ValueError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(_cb)


def guard_updates(node: Any, cls: type, prefix: str, on_change: Any = None) -> None:
    """Reject runtime parameter changes that the config dataclass would refuse.

    Builds a candidate with ``dataclasses.replace`` from the current values and the change; an
    invalid one is rejected with the validation message. ``on_change(new_cfg)`` runs when valid.
    """
    def _cb(params: list) -> SetParametersResult:
        mine = [p for p in params if p.name.startswith(prefix + '.')]
        if not mine:
            return SetParametersResult(successful=True)
        current = {f.name: node.get_parameter(f'{prefix}.{f.name}').value
                   for f in dataclasses.fields(cls)}
        for p in mine:
            current[p.name[len(prefix) + 1:]] = p.value
        try:
            cfg = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in current.items()})
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if on_change is not None:
            on_change(cfg)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(_cb)
