"""Declare config dataclass sections as ROS parameters and read them back validated.

One ``declare_parameter`` per field, with the dataclass default (or the value of the parameter file
loaded by ROS), a description carrying the unit, integer/float ranges from the bounds and
``read_only`` for structural fields. The values read back build the same frozen dataclass, so
validation runs once, in the core (:mod:`l2l_nmhw_ros.config`).
"""

from __future__ import annotations

import dataclasses
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


def _descriptor(f: dataclasses.Field, typ: Any) -> ParameterDescriptor:
    meta = f.metadata
    unit = meta.get('unit', '')
    desc = meta.get('description', '') + (f' [{unit}]' if unit else '')
    d = ParameterDescriptor(description=desc, read_only=bool(meta.get('read_only', False)))
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


def declare_config(node: Any, cls: type[T], prefix: str) -> T:
    """Declare every field of ``cls`` as ``<prefix>.<field>`` and return the validated dataclass.

    Raises:
        ConfigError: a value is invalid (the core's message, naming the key).
    """
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        typ = hints[f.name]
        default = f.default
        if isinstance(default, tuple):
            default = list(default)
        name = f'{prefix}.{f.name}' if prefix else f.name
        p = node.declare_parameter(name, default, _descriptor(f, typ))
        value = p.value
        values[f.name] = tuple(value) if isinstance(value, list | tuple) else value
    return cls(**values)


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
