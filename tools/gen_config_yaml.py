"""Write config/l2l_nmhw.yaml from the config dataclasses (values = defaults, comments = units).

Run: python tools/gen_config_yaml.py > config/l2l_nmhw.yaml
"""

from __future__ import annotations

import dataclasses
import json

from l2l_nmhw_ros.config import L2LConfig


def _fmt(v):
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, float):
        r = repr(v)
        if 'e' in r and '.' not in r.split('e')[0]:
            r = r.replace('e', '.0e')  # YAML 1.1 reads 1e-09 as a string
        return r if ('.' in r or 'inf' in r or 'nan' in r) else r + '.0'
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, tuple):
        return '[' + ', '.join(_fmt(x) for x in v) + ']'
    return str(v)


def _emit(cfg, indent):
    lines = []
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        pad = ' ' * indent
        if dataclasses.is_dataclass(v):
            lines.append(f'{pad}{f.name}:  # {type(v).__doc__.splitlines()[0]}')
            lines.extend(_emit(v, indent + 2))
        else:
            unit = f.metadata.get('unit', '')
            desc = f.metadata.get('description', '')
            unit_s = f' [{unit}]' if unit else ''
            lines.append(f'{pad}{f.name}: {_fmt(v)}  #{unit_s} {desc}'.rstrip())
    return lines


def main():
    print('# l2l_nmhw_ros configuration: every tunable value once, ROS parameter-file layout.')
    print('# Generated from l2l_nmhw_ros/config.py (python tools/gen_config_yaml.py); defaults')
    print("# are the paper's values. Layer override files on top (ROS applies them in order).")
    print('# Floats are always written with a decimal point (ROS rejects an int for a double).')
    print('/**:')
    print('  ros__parameters:')
    for line in _emit(L2LConfig(), 4):
        print(line)


if __name__ == '__main__':
    main()
