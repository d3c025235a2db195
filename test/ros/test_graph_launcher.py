"""The pip-only launcher: YAML launch subset, argv/env of the nodes, clean and forced shutdown.

Nodes here are a dummy script (no rclpy) that records its argv/env/process group and reacts to
signals as told, so every shutdown path is checked without DDS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from ._graph_helpers import pid_alive, write_executable
from l2l_nmhw_ros.ros.tools import launch_file as LF
from l2l_nmhw_ros.ros.tools.launcher import Launcher, ros_environment

DUMMY = '''\
#!{python}
import json, os, signal, subprocess, sys, time
argv = sys.argv[1:]
mode = argv[argv.index('--mode') + 1]
out = argv[argv.index('--out') + 1]
info = {{'argv': argv, 'pid': os.getpid(), 'pgid': os.getpgid(0),
        'env': {{k: os.environ.get(k) for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID',
                                              'ROS_LOG_DIR', 'ROS_LOCALHOST_ONLY',
                                              'AMENT_PREFIX_PATH',
                                              'FASTDDS_DEFAULT_PROFILES_FILE')}}}}
if mode == 'grandchild':
    info['grandchild'] = subprocess.Popen(['sleep', '1000']).pid
got = []
def on_int(*_):
    got.append('SIGINT')
signal.signal(signal.SIGINT, signal.SIG_IGN if mode == 'ignore_sigint' else on_int)
with open(out + '.tmp', 'w') as fh:
    json.dump(info, fh)
os.replace(out + '.tmp', out)
print('dummy up', mode, flush=True)
if mode == 'crash':
    sys.exit(3)
while not got:
    time.sleep(0.02)
print('dummy got SIGINT', flush=True)
sys.exit(0)
'''


def _wait_for(pred, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError('condition not met in time')
        time.sleep(0.02)


@pytest.fixture
def bindir(tmp_path: Path) -> Path:
    return write_executable(tmp_path / 'bin', 'dummy_node', DUMMY.format(python=sys.executable))


def _launch_yaml(tmp_path: Path, modes: dict[str, str]) -> Path:
    params = tmp_path / 'params.yaml'
    params.write_text('/**:\n  ros__parameters:\n    seed: 1\n', encoding='utf-8')
    nodes = ''.join(textwrap.dedent(f'''\
        - node:
            pkg: fake_pkg
            exec: dummy_node
            name: {name}
            namespace: robot
            output: screen
            args: "--mode {mode} --out {tmp_path}/{name}.json"
            param:
            - from: "$(var params)"
            - {{name: use_sim_time, value: "$(var sim)"}}
            - {{name: control.checkpoint, value: ""}}
            remap:
            - {{from: "arm_controller/commands", to: "$(var controller)/commands"}}
        ''') for name, mode in modes.items())
    text = textwrap.dedent(f'''\
        launch:
        - arg: {{name: params, default: "{params}"}}
        - arg: {{name: sim, default: "false", description: sim time}}
        - arg: {{name: controller, default: arm_controller}}
        ''') + nodes
    path = tmp_path / 'test.launch.yaml'
    path.write_text(text, encoding='utf-8')
    return path


# ---- parsing ---------------------------------------------------------------------------------

def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / 'x.launch.yaml'
    p.write_text(textwrap.dedent(text), encoding='utf-8')
    return p


def test_args_defaults_choices_and_conditions(tmp_path: Path) -> None:
    p = _write(tmp_path, '''\
        launch:
        - arg: {name: arm, default: sim, choice: [{value: sim}, {value: ed_scorbot}]}
        - arg: {name: rviz, default: "false"}
        - arg: {name: cfg, default: "$(find-pkg-share some_pkg)/config/a.yaml"}
        - node: {pkg: p, exec: arm_sim, if: "$(eval '\\"$(var arm)\\" == \\"sim\\"')"}
        - node: {pkg: p, exec: ed_scorbot_driver,
                 if: "$(eval '\\"$(var arm)\\" == \\"ed_scorbot\\"')"}
        - node: {pkg: rviz2, exec: rviz2, if: "$(var rviz)", args: "-d $(nope 'x')"}
        - node: {pkg: p, exec: other, unless: "$(var rviz)",
                 param: [{from: "$(var cfg)"}, {name: a.b, value: "$(var arm)"}]}
        ''')
    share = {'some_pkg': Path('/opt/share/some_pkg')}.__getitem__
    d = LF.load_launch_file(p, {}, share=share)
    assert [n.exec for n in d.nodes] == ['arm_sim', 'other']
    assert d.skipped == ('ed_scorbot_driver', 'rviz2')  # rviz2's $(nope) never resolved
    assert d.nodes[1].params_files == ('/opt/share/some_pkg/config/a.yaml',)
    assert d.nodes[1].params == (('a.b', 'sim'),)
    d = LF.load_launch_file(p, {'arm': 'ed_scorbot'}, share=share)
    assert [n.exec for n in d.nodes] == ['ed_scorbot_driver', 'other']
    with pytest.raises(LF.LaunchError, match='not one of'):
        LF.load_launch_file(p, {'arm': 'ur5'}, share=share)
    with pytest.raises(LF.LaunchError, match='unknown launch argument'):
        LF.load_launch_file(p, {'amr': 'sim'}, share=share)
    with pytest.raises(LF.LaunchError, match='unsupported substitution'):
        LF.load_launch_file(p, {'rviz': 'true'}, share=share)
    with pytest.raises(LF.LaunchError, match='expected true/false'):
        LF.load_launch_file(p, {'rviz': 'yes'}, share=share)


@pytest.mark.parametrize(('text', 'match'), [
    ('launch:\n- group: {}\n', 'unsupported entity'),
    ('launch:\n- node: {pkg: p, exec: e, colour: red}\n', 'unknown node attribute'),
    ('launch:\n- node: {pkg: p, exec: "$(var nope)"}\n', 'no launch argument'),
    ('launch:\n- arg: {name: a}\n', 'has no default'),
    ('launch:\n- node: {pkg: p, exec: e, remap: [{from: a}]}\n', 'remap entries'),
    ('nodes: []\n', 'top-level "launch:" list'),
])
def test_malformed_files_are_rejected_by_name(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(LF.LaunchError, match=match):
        LF.load_launch_file(_write(tmp_path, text))


def test_respawn_attributes_are_parsed_typed_and_substituted(tmp_path: Path) -> None:
    p = _write(tmp_path, """\
        launch:
        - arg: {name: respawn, default: "true"}
        - arg: {name: delay, default: "0.25"}
        - node: {pkg: p, exec: plain}
        - node: {pkg: p, exec: yaml_typed, respawn: true, respawn_delay: 2,
                 respawn_max_retries: 3}
        - node: {pkg: p, exec: substituted, respawn: "$(var respawn)",
                 respawn_delay: "$(var delay)"}
        - node: {pkg: p, exec: evaluated, respawn: "$(eval '\\"$(var respawn)\\" != \\"true\\"')"}
        """)
    d = LF.load_launch_file(p, {})
    plain, typed, substituted, evaluated = d.nodes
    assert (plain.respawn, plain.respawn_delay, plain.respawn_max_retries) == (False, 0.0, -1)
    assert (typed.respawn, typed.respawn_delay, typed.respawn_max_retries) == (True, 2.0, 3)
    assert isinstance(typed.respawn_delay, float) and isinstance(typed.respawn_max_retries, int)
    assert (substituted.respawn, substituted.respawn_delay) == (True, 0.25)
    assert evaluated.respawn is False
    d = LF.load_launch_file(p, {'respawn': 'False', 'delay': '0'})
    assert (d.nodes[2].respawn, d.nodes[2].respawn_delay, d.nodes[3].respawn) == (False, 0.0, True)


@pytest.mark.parametrize(('attrs', 'match'), [
    ('respawn: "yes"', r'respawn: expected true/false/1/0, got \'yes\''),
    ('respawn: "$(var nope)"', 'no launch argument'),
    ('respawn_delay: -1.0', 'respawn_delay must be a finite number of seconds >= 0'),
    ('respawn_delay: soon', 'respawn_delay must be a finite number'),
    ('respawn_delay: .nan', 'respawn_delay must be a finite number'),
    ('respawn_delay: "inf"', 'respawn_delay must be a finite number'),
    ('respawn_max_retries: -2', 'respawn_max_retries must be an integer >= -1'),
    ('respawn_max_retries: 1.5', 'respawn_max_retries must be an integer'),
    ('respawn_max_retries: many', 'respawn_max_retries must be an integer'),
])
def test_bad_respawn_values_are_rejected_by_name(tmp_path: Path, attrs: str, match: str) -> None:
    p = _write(tmp_path, f'launch:\n- node: {{pkg: p, exec: e, {attrs}}}\n')
    with pytest.raises(LF.LaunchError, match=match):
        LF.load_launch_file(p)


def test_eval_is_restricted() -> None:
    assert LF.safe_eval('"a" == "a" and not "b" in ("c", "d")') == 'true'
    assert LF.safe_eval('"x" if "1" != "1" else "y"') == 'y'
    assert LF.substitute("$(command 'echo a  b')", {}) == 'a b\n'
    for bad in ('__import__("os").getcwd()', 'open("f")', '(1).real', 'x'):
        with pytest.raises(LF.LaunchError, match='not allowed'):
            LF.safe_eval(bad)


def test_command_line_of_a_node() -> None:
    spec = LF.NodeSpec(pkg='p', exec='e', name='n', namespace='/ns', params_files=('f.yaml',),
                       params=(('use_sim_time', 'true'),), remaps=(('a', 'b'),), args=('-x',))
    assert spec.command_line('/bin/e', 'single.yaml') == [
        '/bin/e', '-x', '--ros-args', '-r', '__node:=n', '-r', '__ns:=/ns', '--params-file',
        'f.yaml', '--params-file', 'single.yaml', '-r', 'a:=b']


def test_single_parameters_are_typed_like_launch_ros() -> None:
    spec = LF.NodeSpec(pkg='p', exec='e', params=(
        ('use_sim_time', 'true'), ('seed', '42'), ('arm.real_time_factor', '4.0'),
        ('control.checkpoint', ''), ('control.state_file', '/tmp/s'), ('home', '[0.0, 1.0]'),
        ('name', 'null')))
    assert spec.parameter_values() == {
        'use_sim_time': True, 'seed': 42, 'arm': {'real_time_factor': 4.0},
        'control': {'checkpoint': '', 'state_file': '/tmp/s'}, 'home': [0.0, 1.0],
        'name': 'null'}


def test_environment_is_forced_to_loopback() -> None:
    env = ros_environment({'ROS_LOCALHOST_ONLY': '1', 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET',
                           'PATH': '/bin'})
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'  # profile not in the base yet
    assert env['FASTDDS_DEFAULT_PROFILES_FILE'].endswith('config/dds/fastdds_loopback.xml')
    assert 'ROS_LOCALHOST_ONLY' not in env
    assert 101 <= int(env['ROS_DOMAIN_ID']) <= 200
    assert Path(env['ROS_LOG_DIR']).is_dir()
    assert sys.prefix in env['AMENT_PREFIX_PATH'].split(os.pathsep)
    kept = ros_environment({'ROS_DOMAIN_ID': '7', 'ROS_LOG_DIR': '/tmp/x'})
    assert (kept['ROS_DOMAIN_ID'], kept['ROS_LOG_DIR']) == ('7', '/tmp/x')
    # a child's environment: the profile with its range (more in test_faults_dds.py)
    env = ros_environment({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET'}, spawn=True)
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SYSTEM_DEFAULT'


# ---- running ---------------------------------------------------------------------------------

def test_nodes_start_with_their_arguments_and_stop_on_sigint(tmp_path: Path, bindir: Path) -> None:
    path = _launch_yaml(tmp_path, {'alpha': 'normal', 'beta': 'grandchild'})
    desc = LF.load_launch_file(path, {'sim': 'true', 'controller': 'scorbot'})
    out = open(tmp_path / 'screen.txt', 'w', encoding='utf-8')  # noqa: SIM115
    launcher = Launcher(desc, log_dir=tmp_path / 'logs', exec_dirs=[bindir], stream=out,
                        env={'PATH': os.environ['PATH'], 'ROS_DOMAIN_ID': '150'})
    with launcher:
        _wait_for(lambda: (tmp_path / 'alpha.json').exists() and (tmp_path / 'beta.json').exists())
        infos = {n: json.loads((tmp_path / f'{n}.json').read_text()) for n in ('alpha', 'beta')}
    out.close()
    a = infos['alpha']
    ros = a['argv'][a['argv'].index('--ros-args'):]
    single = tmp_path / 'logs' / 'alpha.params.yaml'
    assert ros == ['--ros-args', '-r', '__node:=alpha', '-r', '__ns:=/robot', '--params-file',
                   str(tmp_path / 'params.yaml'), '--params-file', str(single), '-r',
                   'arm_controller/commands:=scorbot/commands']
    assert yaml.safe_load(single.read_text()) == {
        '/**': {'ros__parameters': {'use_sim_time': True, 'control': {'checkpoint': ''}}}}
    # DDS on loopback: the package's Fast DDS profile with its discovery range (test_faults_dds)
    assert a['env']['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SYSTEM_DEFAULT'
    assert a['env']['FASTDDS_DEFAULT_PROFILES_FILE'].endswith('config/dds/fastdds_loopback.xml')
    assert a['env']['ROS_DOMAIN_ID'] == '150'
    assert a['env']['ROS_LOCALHOST_ONLY'] is None
    assert a['pgid'] == a['pid']  # own process group
    assert launcher.exit_code == 0
    assert launcher.returncodes == {'alpha': 0, 'beta': 0}
    assert not pid_alive(infos['beta']['grandchild'])  # killed with its process group
    assert 'dummy got SIGINT' in (tmp_path / 'logs' / 'alpha.log').read_text()
    screen = (tmp_path / 'screen.txt').read_text()
    assert '[alpha] dummy up normal' in screen
    assert '[beta] dummy got SIGINT' in screen


def test_sigint_ignored_escalates_to_sigterm_and_fails(tmp_path: Path, bindir: Path) -> None:
    desc = LF.load_launch_file(_launch_yaml(tmp_path, {'stubborn': 'ignore_sigint'}))
    launcher = Launcher(desc, log_dir=tmp_path / 'logs', exec_dirs=[bindir], echo=False,
                        sigterm_timeout=0.5, sigkill_timeout=2.0)
    with launcher:
        _wait_for(lambda: (tmp_path / 'stubborn.json').exists())
    assert launcher.returncodes['stubborn'] == -signal.SIGTERM
    assert launcher.exit_code == 1


def test_a_crashing_node_is_reported_and_the_launch_goes_on(tmp_path: Path,
                                                           bindir: Path) -> None:
    """As ros2 launch: without on_exit: shutdown a crash ends nothing (test_faults_launcher)."""
    desc = LF.load_launch_file(_launch_yaml(tmp_path, {'ok': 'normal', 'bad': 'crash'}))
    launcher = Launcher(desc, log_dir=tmp_path / 'logs', exec_dirs=[bindir], echo=False)
    with launcher:
        _wait_for(lambda: launcher.unexpected == ['bad'])
        assert launcher.wait(timeout=0.5) is False  # no shutdown requested
        assert launcher.running() == ['ok']
    assert launcher.returncodes == {'ok': 0, 'bad': 3}
    assert launcher.exit_code == 1  # a node crashed


def _cli(tmp_path: Path, bindir: Path, path: Path) -> subprocess.Popen:
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return subprocess.Popen([sys.executable, '-m', 'l2l_nmhw_ros.cli', 'launch', str(path),
                             'sim:=true', '--quiet'], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_cli_sigint_is_a_clean_exit(tmp_path: Path, bindir: Path) -> None:
    proc = _cli(tmp_path, bindir, _launch_yaml(tmp_path, {'n1': 'normal', 'n2': 'normal'}))
    _wait_for(lambda: (tmp_path / 'n1.json').exists() and (tmp_path / 'n2.json').exists(), 60)
    pids = [json.loads((tmp_path / f'{n}.json').read_text())['pid'] for n in ('n1', 'n2')]
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert 'exit 0: n1=0, n2=0' in out
    assert not any(pid_alive(p) for p in pids)


def test_cli_killed_leaves_no_orphans(tmp_path: Path, bindir: Path) -> None:
    proc = _cli(tmp_path, bindir, _launch_yaml(tmp_path, {'orphan': 'normal'}))
    _wait_for(lambda: (tmp_path / 'orphan.json').exists(), 60)
    pid = json.loads((tmp_path / 'orphan.json').read_text())['pid']
    proc.kill()  # SIGKILL: no chance to clean up; PR_SET_PDEATHSIG sends SIGTERM to the child
    proc.communicate(timeout=30)
    _wait_for(lambda: not pid_alive(pid), 10)


def test_cli_reports_invalid_files(tmp_path: Path, bindir: Path) -> None:
    bad = _write(tmp_path, 'launch:\n- arg: {name: sim, default: "false"}\n'
                 '- node: {pkg: p, exec: no_such_exec_anywhere}\n')
    proc = _cli(tmp_path, bindir, bad)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "executable 'no_such_exec_anywhere' of package 'p' not found" in out


def test_the_reach_launch_file_describes_the_graph(repo_root: Path) -> None:
    import re

    setup = (repo_root / 'setup.py').read_text(encoding='utf-8')
    scripts = set(re.findall(r"'(\w+)': 'l2l_nmhw_ros\.ros\.\w+:main'", setup))
    path = repo_root / 'launch' / 'reach.launch.yaml'
    d = LF.load_launch_file(path, {})
    assert [n.label for n in d.nodes] == ['pcm_accelerator', 'snn_controller', 'arm_sim']
    # every node of the graph respawns 1 s after an exit; no on_exit: shutdown (it would end
    # the launch at the first exit under ros2 launch, and with it any respawn)
    assert [(n.respawn, n.respawn_delay, n.respawn_max_retries, n.on_exit_shutdown)
            for n in d.nodes] == [(True, 1.0, -1, False)] * 3
    assert not any(n.respawn for n in LF.load_launch_file(path, {'respawn': 'false'}).nodes)
    assert {n.exec for n in d.nodes} <= scripts
    assert all(n.params_files == (str(LF.find_package_share('l2l_nmhw_ros') / 'config' /
                                      'l2l_nmhw.yaml'),) for n in d.nodes)
    acc = dict(d.nodes[0].params)
    assert acc['arm_controller'] == 'forward_position_controller'
    assert acc['use_sim_time'] == 'false'
    d = LF.load_launch_file(path, {'arm': 'ed_scorbot', 'target_topic': 'clicked_point',
                                   'use_sim_time': 'true', 'real_time_factor': '4.0'})
    assert [n.label for n in d.nodes] == ['pcm_accelerator', 'snn_controller',
                                          'ed_scorbot_driver']
    assert d.nodes[1].remaps == (('reach_target', 'clicked_point'),)
    assert d.skipped == ('arm_sim', 'robot_state_publisher', 'rviz2', 'web_viewer',
                         'fewshot_classifier')
    # viewer:=true adds the web view (a console script of the package), on loopback, its
    # targets on the controller's target topic, the accelerator's state file to watch
    d = LF.load_launch_file(path, {'viewer': 'true', 'target_topic': 'goal',
                                   'pcm_state_file': '/tmp/x.safetensors'})
    assert [n.label for n in d.nodes] == ['pcm_accelerator', 'snn_controller', 'arm_sim',
                                          'web_viewer']
    v = d.nodes[3]
    assert v.exec in scripts
    assert dict(v.params) | {'checkpoint': ''} == {
        'use_sim_time': 'false', 'host': '127.0.0.1', 'port': '8080', 'checkpoint': '',
        'pcm_state_file': '/tmp/x.safetensors'}
    assert v.remaps == (('reach_target', 'goal'),)
    # fewshot:=true adds the few-shot classifier (optional node of the same launch file)
    d = LF.load_launch_file(path, {'fewshot': 'true', 'fewshot_checkpoint': '/x/omniglot.pickle'})
    f = d.nodes[-1]
    assert f.label == 'fewshot_classifier' and f.exec in scripts
    assert dict(f.params)['checkpoint'] == '/x/omniglot.pickle'
    assert dict(f.params)['seed'] == '42'
