"""The live 3D web view on the real graph, looked at by a headless browser.

Starts ``launch/reach.launch.yaml viewer:=true`` (separate processes, simulated arm at 4x, the
shipped checkpoint), runs one episode, loads the page in headless Chromium (Debian's
``chromium`` package; skipped with the reason when there is none) and checks

- from the page's own state (its "Scene" text, which the browser received from the viewer):
  the arm with every URDF shape, the target at the coordinates that were sent, the
  demonstration and both executed paths with 249 points, the learning signal, the devices
  written in the episode;
- from a screenshot: the arm (its orange URDF material), the target (magenta) and a path (blue
  demonstration, green execution after the update) are drawn in the 3D canvas;
- that the web server listens on 127.0.0.1 only;
- a click in the view (after "Pick a target by clicking") on the target sends a reach target
  that the controller answers.

``L2L_NMHW_SCREENSHOT_DIR``: also copy the screenshots there.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('viser', reason='viser (the web view) is not installed: pip install viser')

from l2l_nmhw_ros import config as C  # noqa: E402
from l2l_nmhw_ros.reach.episode import network_config, resolve_checkpoint  # noqa: E402

from _browser import Browser, find_chromium  # noqa: E402 - test/e2e is on sys.path

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason='no headless browser: install Debian\'s "chromium" package '
    '(apt-get install chromium) to load the web view in this test')

EPISODE_S = 150.0
PAGE_S = 90.0
#: the 3D canvas: left of the control panel (1280 px window, panel ~400 px at the right), with
#: the orientation gizmo in the lower left corner and the notification at the top left left out
VIEW = (slice(160, 760), slice(80, 860))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> list[str]:
    """Local addresses of the TCP sockets listening on ``port`` (IPv4 and IPv6)."""
    out = []
    for proto in ('tcp', 'tcp6'):
        path = Path('/proc/net') / proto
        if not path.is_file():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            addr, p = cols[1].rsplit(':', 1)
            if int(p, 16) == port and cols[3] == '0A':  # LISTEN
                if proto == 'tcp':
                    out.append(socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1]))
                else:
                    raw = bytes.fromhex(addr)
                    raw = b''.join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    out.append(socket.inet_ntop(socket.AF_INET6, raw))
    return out


@pytest.fixture(scope='module')
def graph(tmp_path_factory: pytest.TempPathFactory):
    from l2l_nmhw_ros.l2l import checkpoint as ckpt_io
    from l2l_nmhw_ros.ros.tools.demo import draw_targets
    from l2l_nmhw_ros.ros.tools.demo_client import DemoClient
    from l2l_nmhw_ros.ros.tools.launch_file import find_package_share, load_launch_file
    from l2l_nmhw_ros.ros.tools.launcher import Launcher, ros_environment

    out = tmp_path_factory.mktemp('viewer')
    ckpt = resolve_checkpoint('')
    cfg, _ = network_config(C.load(), ckpt_io.load(ckpt)[1])
    env = ros_environment(spawn=True)
    for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'FASTDDS_DEFAULT_PROFILES_FILE'):
        if k in env:
            os.environ[k] = env[k]
    port = _free_port()
    desc = load_launch_file(find_package_share('l2l_nmhw_ros') / 'launch' / 'reach.launch.yaml', {
        'arm': 'sim', 'use_sim_time': 'true', 'real_time_factor': '4.0',
        'checkpoint': str(ckpt), 'pcm_state_file': str(out / 'pcm_state.safetensors'),
        'viewer': 'true', 'viewer_port': str(port)})
    assert 'web_viewer' in [n.label for n in desc.nodes]
    launcher = Launcher(desc, log_dir=out / 'logs', echo=False, env=env,
                        stream=open(os.devnull, 'w'))  # noqa: SIM115
    launcher.start()
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    client = DemoClient(ctx, None, list(cfg.arm.joints), use_sim_time=True)
    browser = None
    try:
        def viewer_listens() -> bool:  # the learning signal is sent once, volatile
            return any(i.node_name == 'web_viewer' for i in client.node
                       .get_subscriptions_info_by_topic('/pcm_accelerator/learning_signal'))

        assert client.spin_until(
            lambda: client.graph_ready('arm_sim') and viewer_listens(), 90.0), 'graph not up'
        # the controller's writer has to match the viewer's reader too (the signal is sent once)
        t_match = time.monotonic() + 3.0
        client.spin_until(lambda: time.monotonic() > t_match, 5.0)
        target = draw_targets(cfg, 1, 7)[0]  # in front of and above the arm: in view
        n0 = len(client.results)
        client.send_target(target, cfg.control.frame_id)
        assert client.spin_until(lambda: client.result_for(target, n0) is not None, EPISODE_S), \
            'no result for the target'
        result = client.result_for(target, n0)
        browser = Browser(CHROMIUM)
        browser.goto(f'http://127.0.0.1:{port}')
        yield {'launcher': launcher, 'client': client, 'browser': browser, 'port': port,
               'target': target, 'result': result, 'out': out}
    finally:
        if browser is not None:
            browser.close()
        client.close()
        ctx.try_shutdown()
        code = launcher.shutdown()
        logs = {p.spec.label: p.log_path for p in launcher.procs}
        assert code == 0, f"unclean shutdown {launcher.returncodes}; viewer log: " \
            f"{logs['web_viewer'].read_text(errors='replace')[-3000:]}"


def _page_text(browser: Browser, must: str, timeout: float = PAGE_S) -> str:
    text = browser.wait_for(
        f"document.body && document.body.innerText.includes({must!r}) && "
        'document.body.innerText', timeout)
    assert text, f'the page never showed {must!r}; it shows: ' + str(browser.evaluate(
        'document.body ? document.body.innerText : ""'))[:3000]
    return str(text)


def _save(png: bytes, name: str, out: Path) -> Path:
    path = out / name
    path.write_bytes(png)
    dest = os.environ.get('L2L_NMHW_SCREENSHOT_DIR')
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(dest) / name)
    return path


def _colour_masks(png: bytes) -> dict[str, np.ndarray]:
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(png), format='png')[..., :3][VIEW]
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return {'arm': (r > 0.7) & (g > 0.3) & (g < 0.7) & (b < 0.3) & (r - g > 0.25),
            'target': (r > 0.55) & (b > 0.55) & (g < 0.35),
            'demonstration': (b > 0.7) & (r < 0.35) & (g < 0.55),
            'executed': (g > 0.5) & (r < 0.3) & (b < 0.4)}


def test_page_state_shows_arm_target_paths_signal_devices(graph) -> None:
    b, target = graph['browser'], graph['target']
    assert graph['result']['status'] == 'ok', graph['result']
    _page_text(b, 'weights written this episode: ')
    text = _page_text(b, 'path executed after the update')
    assert 'arm: 8 shapes on 7 links; joint_states received: yes' in text
    m = re.search(r'target: \(([-+\d.]+), ([-+\d.]+), ([-+\d.]+)\) m', text)
    assert m, text
    np.testing.assert_allclose([float(v) for v in m.groups()], target, atol=6e-4)
    for label in ('demonstration', 'executed before the update', 'executed after the update'):
        assert f'path {label}: 249 points' in text, text
    assert 'learning signal: 249 × 253' in text  # 250 neurons + 3 readouts (shipped checkpoint)
    n = int(re.search(r'weights written this episode: (\d+)', text).group(1))
    # every weight the update changed was written (and restored): the result's count
    assert n == int(graph['result']['weights_changed']), (n, graph['result'])
    assert 0 < n < 8000


def test_screenshot_shows_arm_target_and_a_path(graph) -> None:
    b = graph['browser']
    _page_text(b, 'path executed after the update')

    def drawn(c: dict[str, int]) -> bool:
        return c['arm'] > 500 and c['target'] > 30 and c['demonstration'] + c['executed'] > 100

    for _ in range(8):  # the software renderer of a busy machine may lag the last update
        time.sleep(1.5)
        png = b.screenshot()
        counts = {k: int(v.sum()) for k, v in _colour_masks(png).items()}
        if drawn(counts):
            break
    _save(png, 'web_viewer.png', graph['out'])
    assert counts['arm'] > 500, counts
    assert counts['target'] > 30, counts
    assert counts['demonstration'] + counts['executed'] > 100, counts
    # the canvas is WebGL, rendered (not a blank page with the panel only)
    assert b.evaluate("document.querySelectorAll('canvas').length") >= 1


def test_panel_shows_the_learning_signal_and_the_written_devices(graph) -> None:
    """The two images of the panel as the browser decoded them: the heat map (250 neurons + 3
    readout signals x 249 steps, drawn 2:1) and the crossbar (274 x 275 weights: 250 neuron rows
    and 8 copies of the 3 readout rows, drawn 2:1) with the written weights in their colour (the
    shipped checkpoint: three readouts, 25 clock inputs, readout learning, pcm.readout_replicas
    8)."""
    b = graph['browser']
    _page_text(b, 'weights written this episode: ')
    sizes = b.wait_for("""(() => {
        const s = [...document.querySelectorAll('img')]
            .filter(i => i.complete && i.naturalWidth > 100)
            .map(i => [i.naturalWidth, i.naturalHeight]);
        return s.length >= 2 ? s : null; })()""", 30.0)
    assert sizes is not None
    assert [249 * 2, 253] in sizes and [275 * 2, 250 + 8 * 3] in sizes, sizes
    rect = b.evaluate("""(() => {
        const el = [...document.querySelectorAll('img')].find(i => i.naturalWidth === 550);
        if (!el) return null; el.scrollIntoView({block: 'end'});
        const r = el.getBoundingClientRect();
        return [r.left, r.top, r.right, r.bottom]; })()""")
    assert rect is not None
    time.sleep(1.0)
    png = b.screenshot()
    _save(png, 'web_viewer_panel.png', graph['out'])
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(png), format='png')[..., :3] * 255
    x0, y0, x1, y1 = (int(round(v)) for v in rect)
    # (the bottom rows stay in: the readout rows, the only ones readout learning writes)
    crossbar = img[max(y0, 0) + 2:min(y1, img.shape[0]), x0 + 2:x1 - 2]
    assert crossbar.size > 0
    # white background; the written weights (dark blue, blended by the downscaling) tint it
    tinted = (crossbar.mean(axis=-1) < 225) & (crossbar[..., 2] > crossbar[..., 0] + 15)
    share = float(tinted.mean())
    assert 0.0003 < share < 0.5, share  # readout learning writes only readout rows


def test_web_server_listens_on_loopback_only(graph) -> None:
    addrs = _listening(graph['port'])
    assert addrs, f"nothing listens on port {graph['port']}"
    assert set(addrs) <= {'127.0.0.1', '::ffff:127.0.0.1'}, addrs


def test_click_in_the_view_sends_a_reach_target(graph) -> None:
    """Pick mode, then a click on the drawn target: the viewer maps the click to the reachable
    surface point under it and publishes it on reach_target; the controller answers it."""
    b, client = graph['browser'], graph['client']
    _page_text(b, 'path executed after the update')
    png = b.screenshot()
    ys, xs = np.nonzero(_colour_masks(png)['target'])
    assert len(xs) > 30
    x = float(np.median(xs)) + VIEW[1].start
    y = float(np.median(ys)) + VIEW[0].start
    assert b.evaluate("""(() => {
        const el = [...document.querySelectorAll('button')]
            .find(e => e.innerText.includes('Pick a target by clicking'));
        if (!el) return false; el.click(); return true; })()""")
    time.sleep(1.0)
    n0 = len(client.results)
    for kind in ('mouseMoved', 'mousePressed', 'mouseReleased'):
        b.send('Input.dispatchMouseEvent', type=kind, x=x, y=y, button='left',
               clickCount=1 if kind != 'mouseMoved' else 0)
    _page_text(b, 'targets sent from this page: 1', 30.0)
    assert client.spin_until(lambda: len(client.results) > n0, EPISODE_S), \
        'the controller never answered the clicked target'
    r = client.results[n0]
    assert r['status'] in ('ok', 'unreachable'), r
    p = np.array([float(r[k]) for k in ('target_x', 'target_y', 'target_z')])
    # a point of the reachable surface: within the controller's tolerance of it
    assert r['status'] == 'ok' or float(r['ik_distance']) < 0.05, r
    assert np.linalg.norm(p) > 0.1
