"""launch/view_arm.launch.yaml refers to real executables, files and parameters."""

from __future__ import annotations

import re

import yaml

from l2l_nmhw_ros.config import ArmConfig, to_dict

NODE_PARAMS = {'arm_controller', 'use_sim_time', 'gui'}


def _load(repo_root):
    return yaml.safe_load((repo_root / 'launch' / 'view_arm.launch.yaml').read_text())['launch']


def test_view_arm_nodes_are_our_executables_with_declared_parameters(repo_root):
    setup = (repo_root / 'setup.py').read_text()
    arm_fields = {f'arm.{k}' for k in to_dict(ArmConfig())}
    nodes = [e['node'] for e in _load(repo_root) if 'node' in e]
    ours = [n for n in nodes if n['pkg'] == 'l2l_nmhw_ros']
    assert {n['exec'] for n in ours} == {'arm_sim', 'ed_scorbot_driver'}
    for n in ours:
        assert f"'{n['exec']}': 'l2l_nmhw_ros.ros." in setup
        for p in n['param']:
            if 'name' in p:
                assert p['name'] in arm_fields | NODE_PARAMS, p['name']


def test_view_arm_files_exist_and_args_are_defined(repo_root):
    text = (repo_root / 'launch' / 'view_arm.launch.yaml').read_text()
    for rel in re.findall(r'\$\(find-pkg-share l2l_nmhw_ros\)/([\w./]+)', text):
        assert (repo_root / rel).is_file(), rel
    args = {e['arg']['name'] for e in _load(repo_root) if 'arg' in e}
    assert set(re.findall(r'\$\(var (\w+)\)', text)) <= args
