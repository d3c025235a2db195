"""DDS sockets stay on loopback: the Fast DDS profile and the environment that loads it.

Fault injected: a network interface besides ``lo`` (the machine's own address; a bind to 0.0.0.0
counts as one). Two child processes with a node each (publisher + subscription, talking to each
other) run with the environment the launcher gives its children; every UDP/TCP socket they hold
(``/proc/net/{udp,udp6,tcp,tcp6}`` matched with the socket inodes of ``/proc/<pid>/fd``; no
``ss`` needed) must be bound to 127.0.0.1 (or ::1), and the two must still talk. The same
reader finds 0.0.0.0 sockets with ``L2L_NMHW_DDS=network`` (Fast DDS's defaults), so it is not
vacuous. Plus the choices of ``ros_environment``/``dds_environment``: the package's profile by
default, a user's own profile respected, the network switch, other RMWs, the Makefile's copy.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from l2l_nmhw_ros.errors import ConfigError
from l2l_nmhw_ros.ros.tools import launch_file as LF
from l2l_nmhw_ros.ros.tools.launcher import (DDS_PROFILE, PROFILE_VARIABLES, Launcher,
                                             dds_environment, loopback_profile, ros_environment)

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / 'config' / 'dds' / 'fastdds_loopback.xml'
FASTDDS, FASTRTPS = PROFILE_VARIABLES

#: a node that publishes ``chatter_<me>``, listens to ``chatter_<other>``, and reports
TALKER = r'''
import sys, time
import rclpy
from std_msgs.msg import String
me, other, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
rclpy.init()
node = rclpy.create_node('dds_probe_' + me)
got = []
pub = node.create_publisher(String, 'chatter_' + me, 10)
node.create_subscription(String, 'chatter_' + other, lambda m: got.append(m.data), 10)
print('READY', flush=True)
end = time.monotonic() + secs
while time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
    pub.publish(String(data=me))
print('RECEIVED', len(got), flush=True)
node.destroy_node()
rclpy.shutdown()
'''


def _address(hex_addr: str, v6: bool) -> str:
    """``0100007F:1F90`` (little-endian words, as /proc/net/* writes them) -> ``127.0.0.1``."""
    raw = bytes.fromhex(hex_addr.split(':')[0])
    if v6:
        raw = b''.join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
        return str(ipaddress.IPv6Address(raw))
    return str(ipaddress.IPv4Address(raw[::-1]))


def sockets_of(pid: int) -> list[tuple[str, str, int]]:
    """Every inet socket the process holds: ``(protocol, local address, local port)``."""
    inodes = set()
    for fd in os.listdir(f'/proc/{pid}/fd'):
        try:
            target = os.readlink(f'/proc/{pid}/fd/{fd}')
        except OSError:  # closed meanwhile
            continue
        m = re.fullmatch(r'socket:\[(\d+)\]', target)
        if m:
            inodes.add(m.group(1))
    out = []
    for proto in ('udp', 'udp6', 'tcp', 'tcp6'):
        with open(f'/proc/{pid}/net/{proto}', encoding='ascii') as fh:
            next(fh)  # header
            for line in fh:
                cols = line.split()
                if cols[9] in inodes:
                    out.append((proto, _address(cols[1], proto.endswith('6')),
                                int(cols[1].split(':')[1], 16)))
    return out


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback  # 0.0.0.0 and :: are not


def _run_pair(tmp_path: Path, env: dict[str, str], secs: float = 6.0
              ) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]], list[str]]:
    """Two talkers with ``env``; return both socket listings (taken mid-run) and their output."""
    script = tmp_path / 'talker.py'
    script.write_text(TALKER, encoding='utf-8')
    procs = [subprocess.Popen([sys.executable, str(script), a, b, str(secs)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for a, b in (('a', 'b'), ('b', 'a'))]
    try:
        heads = []
        for p in procs:
            assert p.stdout is not None
            head = ''
            while (line := p.stdout.readline()) and line.strip() != 'READY':
                head += line  # rclpy/Fast DDS log lines before the node is up
            assert line, head
            heads.append(head)
        time.sleep(2.0)  # discovery under way: every transport has opened its sockets
        listings = [sockets_of(p.pid) for p in procs]
        outs = [h + p.communicate(timeout=secs + 30)[0] for h, p in zip(heads, procs, strict=True)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return listings[0], listings[1], outs


def _received(out: str) -> int:
    m = re.search(r'RECEIVED (\d+)', out)
    assert m, out
    return int(m.group(1))


# ---- the profile at work ---------------------------------------------------------------------

def test_node_sockets_are_bound_to_loopback_only(tmp_path: Path) -> None:
    pytest.importorskip('rclpy')
    env = ros_environment(dict(os.environ, **{FASTDDS: '', FASTRTPS: ''}), spawn=True)
    assert env[FASTDDS] == str(loopback_profile())
    assert FASTRTPS not in env
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SYSTEM_DEFAULT'
    a, b, outs = _run_pair(tmp_path, env)
    for listing in (a, b):
        assert listing, 'no socket found: the reader is broken or DDS did not start'
        assert any(proto == 'udp' for proto, _, _ in listing)
        outside = [s for s in listing if not _is_loopback(s[1])]
        assert outside == [], f'DDS sockets off loopback: {outside} (all: {listing})'
    # the profile keeps discovery working: each node received the other's messages
    assert _received(outs[0]) > 0, outs
    assert _received(outs[1]) > 0, outs
    # and it loads cleanly (no XML parser error, no deprecated variable)
    for out in outs:
        assert 'XMLPARSER' not in out and 'deprecated' not in out, out


def test_without_the_profile_fast_dds_binds_every_interface(tmp_path: Path) -> None:
    """The reader is not vacuous: Fast DDS's defaults (the network switch) bind 0.0.0.0."""
    pytest.importorskip('rclpy')
    env = ros_environment(dict(os.environ, L2L_NMHW_DDS='network'), spawn=True)
    assert FASTDDS not in env and FASTRTPS not in env
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    a, _, outs = _run_pair(tmp_path, env, secs=3.0)
    assert any(not _is_loopback(addr) for _, addr, _ in a), a
    assert _received(outs[0]) > 0, outs


def test_socket_reader_decodes_proc_addresses() -> None:
    assert _address('0100007F:1F90', v6=False) == '127.0.0.1'
    assert _address('00000000:1F90', v6=False) == '0.0.0.0'
    assert _address('00000000000000000000000001000000:0016', v6=True) == '::1'
    mapped = ipaddress.IPv6Address(_address('0000000000000000FFFF00000100007F:0016', v6=True))
    assert mapped.ipv4_mapped == ipaddress.IPv4Address('127.0.0.1')
    assert _is_loopback('::ffff:127.0.0.1') and _is_loopback('::1')
    assert not _is_loopback('0.0.0.0') and not _is_loopback('::')
    assert not _is_loopback('192.0.2.2')


def test_profile_restricts_every_transport_to_loopback() -> None:
    ns = {'d': 'http://www.eprosima.com'}
    root = ET.parse(PROFILE).getroot()
    descriptors = {d.findtext('d:transport_id', namespaces=ns): d
                   for d in root.iterfind('.//d:transport_descriptor', ns)}
    assert {d.findtext('d:type', namespaces=ns) for d in descriptors.values()} == {'UDPv4', 'SHM'}
    udp = next(d for d in descriptors.values() if d.findtext('d:type', namespaces=ns) == 'UDPv4')
    assert [a.text for a in udp.iterfind('d:interfaceWhiteList/d:address', ns)] == ['127.0.0.1']
    (participant,) = root.iterfind('.//d:participant', ns)
    assert participant.get('is_default_profile') == 'true'
    rtps = participant.find('d:rtps', ns)
    assert rtps.findtext('d:useBuiltinTransports', namespaces=ns) == 'false'
    used = [t.text for t in rtps.iterfind('d:userTransports/d:transport_id', ns)]
    assert sorted(used) == sorted(descriptors)
    for where in ('metatrafficUnicastLocatorList', 'initialPeersList'):
        addrs = [a.text for a in rtps.iterfind(f'd:builtin/d:{where}//d:address', ns)]
        assert addrs == ['127.0.0.1'], where
    assert rtps.find('d:builtin/d:metatrafficMulticastLocatorList', ns) is None


# ---- which environment gets it ---------------------------------------------------------------

def test_ros_environment_sets_the_profile_and_its_discovery_range() -> None:
    ours = str(loopback_profile())
    assert Path(ours).resolve() == PROFILE.resolve()
    assert DDS_PROFILE == 'config/dds/fastdds_loopback.xml'
    env = ros_environment({'PATH': '/bin', 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET',
                           'ROS_LOCALHOST_ONLY': '1'}, spawn=True)
    assert env[FASTDDS] == ours
    assert FASTRTPS not in env  # both -> rmw_fastrtps loads the file twice (errors in the log)
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SYSTEM_DEFAULT'
    assert env['RMW_IMPLEMENTATION'] == 'rmw_fastrtps_cpp'
    assert 'ROS_LOCALHOST_ONLY' not in env
    # an environment a caller may copy single variables from: SYSTEM_DEFAULT never travels
    # without the profile (the demo copies the range into its own process, not the profile)
    env = ros_environment({'PATH': '/bin'})
    assert (env[FASTDDS], env['ROS_AUTOMATIC_DISCOVERY_RANGE']) == (ours, 'LOCALHOST')
    # ... unless the base already runs with the profile (make demo; the test session)
    env = ros_environment({'PATH': '/bin', FASTDDS: ours})
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SYSTEM_DEFAULT'
    # the launcher's children always get the pair
    desc = LF.LaunchDescription(path=Path('x'), args=(), values={}, nodes=())
    env = Launcher(desc, env={'PATH': '/bin'}).env
    assert (env[FASTDDS], env['ROS_AUTOMATIC_DISCOVERY_RANGE']) == (ours, 'SYSTEM_DEFAULT')


def test_a_users_own_profile_is_respected(tmp_path: Path) -> None:
    mine = tmp_path / 'mine.xml'
    mine.write_text('<dds/>', encoding='utf-8')
    for var in PROFILE_VARIABLES:
        env = ros_environment({'PATH': '/bin', var: str(mine)}, spawn=True)
        assert env[var] == str(mine)
        assert all(env.get(v, '') in ('', str(mine)) for v in PROFILE_VARIABLES)
        assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'


def test_the_network_switch_leaves_fast_dds_alone(tmp_path: Path) -> None:
    ours = str(loopback_profile())
    for value in ('network', 'NETWORK', ' network '):
        env = ros_environment({'PATH': '/bin', 'L2L_NMHW_DDS': value}, spawn=True)
        assert not any(v in env for v in PROFILE_VARIABLES)
        assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    # the package's profile inherited from a parent goes; a user's own stays
    env = ros_environment({'L2L_NMHW_DDS': 'network', FASTDDS: ours, FASTRTPS: ours}, spawn=True)
    assert not any(v in env for v in PROFILE_VARIABLES)
    mine = tmp_path / 'mine.xml'
    mine.write_text('<dds/>', encoding='utf-8')
    env = ros_environment({'L2L_NMHW_DDS': 'network', FASTDDS: str(mine)}, spawn=True)
    assert env[FASTDDS] == str(mine)
    env = ros_environment({'L2L_NMHW_DDS': 'loopback'}, spawn=True)
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SYSTEM_DEFAULT'
    with pytest.raises(ConfigError, match=r"L2L_NMHW_DDS='lan': expected one of"):
        ros_environment({'L2L_NMHW_DDS': 'lan'})


def test_other_rmws_and_a_missing_profile_keep_localhost(tmp_path: Path) -> None:
    env = ros_environment({'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}, spawn=True)
    assert not any(v in env for v in PROFILE_VARIABLES)
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    env = dds_environment({}, profile=tmp_path / 'missing.xml', spawn=True)
    assert env == {'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
    env = dds_environment({'RMW_IMPLEMENTATION': 'rmw_fastrtps_dynamic_cpp'}, profile=PROFILE)
    assert env[FASTDDS] == str(PROFILE)


def test_this_test_session_runs_with_the_profile() -> None:
    if os.environ.get('L2L_NMHW_DDS', '').strip().lower() == 'network':
        pytest.skip('session started with L2L_NMHW_DDS=network')
    assert Path(os.environ[FASTDDS]).resolve() == PROFILE.resolve()
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SYSTEM_DEFAULT'


def test_the_makefile_gives_the_same_pair(tmp_path: Path) -> None:
    if shutil.which('make') is None:
        pytest.skip('make is not installed')
    mk = tmp_path / 'show.mk'
    mk.write_text(f'include {REPO / "Makefile"}\nshow:\n\t@$(ros_env); '
                  'echo "$$FASTDDS_DEFAULT_PROFILES_FILE|$$FASTRTPS_DEFAULT_PROFILES_FILE|'
                  '$$ROS_AUTOMATIC_DISCOVERY_RANGE"\n', encoding='utf-8')
    base = {k: v for k, v in os.environ.items()
            if k not in PROFILE_VARIABLES and k != 'L2L_NMHW_DDS'}

    def show(**extra: str) -> list[str]:
        res = subprocess.run(['make', '-s', '-C', str(REPO), '-f', str(mk), 'show'],
                             env={**base, **extra}, capture_output=True, text=True, timeout=60,
                             check=True)
        return res.stdout.strip().splitlines()[-1].split('|')

    assert show() == [str(PROFILE), '', 'SYSTEM_DEFAULT']
    assert show(L2L_NMHW_DDS='network') == ['', '', 'LOCALHOST']
    assert show(FASTDDS_DEFAULT_PROFILES_FILE='/my.xml') == ['/my.xml', '', 'LOCALHOST']
    assert show(FASTRTPS_DEFAULT_PROFILES_FILE='/my.xml') == ['', '/my.xml', 'LOCALHOST']
