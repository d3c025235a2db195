"""The authors' published checkpoints, read with the restricted unpickler: shapes and statistics.

Reference values: paper-notes §2.3 (statistics of the robot file read without TensorFlow) and §4
(Omniglot kernels). The files are fixed (their SHA-256 is asserted first), so every statistic is a
deterministic number: the tolerances below are the rounding of the quoted value (half a unit in
its last digit; range ends quoted to 2 decimals are checked within 0.01, because the notes round
some outward and some to nearest) and 1e-6 for our own golden values at full precision.
"""

from __future__ import annotations

import numpy as np
import pytest

from l2l_nmhw_ros.errors import CheckpointError
from l2l_nmhw_ros.reference import published as P

ROBOT = 'rlimc_checkpoints/robot_pretrained_weights.pickle'
OMNIGLOT = 'rlimc_checkpoints/omniglot_pretrained_weights.pickle'


@pytest.fixture(scope='module')
def robot():
    return P.read_published(_path(ROBOT))


@pytest.fixture(scope='module')
def omniglot():
    return P.read_published(_path(OMNIGLOT))


def _path(rel):
    # module-scoped twin of conftest's function-scoped `shared_data` fixture (read once per file)
    from conftest import SHARED_DATA

    if not (SHARED_DATA / rel).is_file():
        pytest.skip(f'reference data not found at {SHARED_DATA / rel} (a fresh clone has no '
                    '../shared)')
    return SHARED_DATA / rel


def test_files_are_the_published_ones(robot, omniglot):
    assert P.KNOWN_SOURCES[robot.sha256][0] == 'robot'
    assert P.KNOWN_SOURCES[omniglot.sha256][0] == 'omniglot'
    # the globals each file names: exactly the allow-listed ones the brief lists
    assert set(robot.globals) == {
        'functools.partial', 'tensorflow.python.ops.resource_variable_ops.ResourceVariable',
        'numpy.core.numeric._frombuffer', 'numpy.dtype',
        'tensorflow.python.framework.dtypes.as_dtype'}
    assert set(omniglot.globals) == {
        'functools.partial', 'tensorflow.python.ops.resource_variable_ops.ResourceVariable',
        'numpy.core.multiarray._reconstruct', 'numpy.ndarray', 'numpy.dtype',
        'tensorflow.python.framework.dtypes.as_dtype'}


def test_robot_published_shapes_and_names(robot):
    shapes = {k: v.value.shape for k, v in robot.variables.items()}
    assert shapes == {'W_in_lsg': (53, 800), 'W_rec_lsg': (800, 800), 'W_out_lsg': (800, 250),
                      'W_in_trainee': (5, 250), 'W_rec_trainee': (250, 250),
                      'W_out_trainee': (250, 2)}
    assert robot.variables['W_in_trainee'].name == 'input_weights_trainee'
    assert all(v.dtype == 'float32' and v.value.dtype == np.float32 and v.trainable
               for v in robot.variables.values())


def test_robot_conversion_transposes_to_n_post_n_pre(robot):
    w = P.convert_robot(robot)
    assert {k: v.shape for k, v in w.items()} == {
        'trainee.w_in': (250, 5), 'trainee.w_rec': (250, 250), 'trainee.w_out': (2, 250),
        'lsg.w_in': (800, 53), 'lsg.w_rec': (800, 800), 'lsg.w_out': (250, 800)}
    # element (post j, pre i) is the published (pre i, post j): exact, no clipping
    pub = robot.variables['W_in_trainee'].value
    assert w['trainee.w_in'][17, 3] == pub[3, 17]
    np.testing.assert_array_equal(w['lsg.w_out'], robot.variables['W_out_lsg'].value.T)


def test_robot_statistics_match_paper_notes(robot):
    w = P.convert_robot(robot)
    s = {k: P.weight_statistics(v) for k, v in w.items()}
    # paper-notes §2.3: W_in_trainee mean -0.175, SD 0.570, range [-2.47, 1.44], 10.8 % |w| > 1
    assert s['trainee.w_in']['mean'] == pytest.approx(-0.175, abs=5e-4)
    assert s['trainee.w_in']['std'] == pytest.approx(0.570, abs=5e-4)
    assert s['trainee.w_in']['min'] == pytest.approx(-2.47, abs=0.01)
    assert s['trainee.w_in']['max'] == pytest.approx(1.44, abs=0.01)
    assert int(np.sum(np.abs(w['trainee.w_in']) > 1.0)) == 135  # 135 / 1250 = 10.8 %
    # W_rec_trainee SD 0.144, range [-2.36, 1.87], 0.07 % with |w| > 1 (41 / 62500 = 0.066 %)
    assert s['trainee.w_rec']['std'] == pytest.approx(0.144, abs=5e-4)
    assert s['trainee.w_rec']['min'] == pytest.approx(-2.36, abs=0.01)
    assert s['trainee.w_rec']['max'] == pytest.approx(1.87, abs=0.01)
    assert s['trainee.w_rec']['frac_abs_gt_1'] == pytest.approx(0.0007, abs=5e-5)
    # W_out_trainee SD 0.0114, |w| <= 0.033
    assert s['trainee.w_out']['std'] == pytest.approx(0.0114, abs=5e-5)
    assert np.abs(w['trainee.w_out']).max() <= 0.033
    # LSG SDs 0.23 / 0.28 / 0.39; W_out_LSG range [-4.16, 5.01]
    assert s['lsg.w_in']['std'] == pytest.approx(0.23, abs=5e-3)
    assert s['lsg.w_rec']['std'] == pytest.approx(0.28, abs=5e-3)
    assert s['lsg.w_out']['std'] == pytest.approx(0.39, abs=5e-3)
    assert s['lsg.w_out']['min'] == pytest.approx(-4.16, abs=0.01)
    assert s['lsg.w_out']['max'] == pytest.approx(5.01, abs=0.01)


def test_robot_golden_statistics(robot):
    # our own full-precision values of the fixed file (float64 sums over float32 data)
    w = P.convert_robot(robot)
    golden = {'trainee.w_in': (-0.17497135, 0.56960541),
              'trainee.w_rec': (-0.03159705, 0.14375060),
              'trainee.w_out': (-1.9702168e-05, 0.01138054),
              'lsg.w_in': (-0.01863442, 0.22849895),
              'lsg.w_rec': (-0.04350870, 0.27629638),
              'lsg.w_out': (6.4602353e-05, 0.38564821)}
    for k, (mean, std) in golden.items():
        st = P.weight_statistics(w[k])
        assert st['mean'] == pytest.approx(mean, abs=1e-7), k
        assert st['std'] == pytest.approx(std, abs=1e-7), k
    # the W_rec diagonal is stored non-zero (the official code masks it in the forward pass)
    assert np.abs(np.diag(w['trainee.w_rec'])).max() == pytest.approx(0.17945091, abs=1e-7)


def test_omniglot_shapes_and_conversion(omniglot):
    shapes = {k: v.value.shape for k, v in omniglot.variables.items()}
    assert shapes == {'kernel1': (3, 3, 1, 56), 'kernel2': (3, 3, 56, 56),
                      'kernel3': (3, 3, 56, 56), 'kernel4': (3, 3, 56, 56), 'kernel5': (56, 5)}
    w = P.convert_omniglot(omniglot)
    assert {k: v.shape for k, v in w.items()} == {
        'omniglot.kernel1': (56, 1, 3, 3), 'omniglot.kernel2': (56, 56, 3, 3),
        'omniglot.kernel3': (56, 56, 3, 3), 'omniglot.kernel4': (56, 56, 3, 3),
        'omniglot.kernel5': (5, 56)}
    k2 = omniglot.variables['kernel2'].value
    assert w['omniglot.kernel2'][7, 11, 2, 0] == k2[2, 0, 11, 7]  # (c_out, c_in, kh, kw)
    # paper-notes §4: all |w| <= 1.37, readout |w| <= 0.47 (2 decimals, checked within 0.005)
    assert max(float(np.abs(v).max()) for v in w.values()) == pytest.approx(1.37, abs=5e-3)
    assert float(np.abs(w['omniglot.kernel5']).max()) == pytest.approx(0.47, abs=5e-3)
    assert float(np.abs(w['omniglot.kernel2']).max()) == pytest.approx(1.3709, abs=1e-4)


def test_robot_file_is_not_an_omniglot_file(robot):
    with pytest.raises(CheckpointError, match='not the Omniglot'):
        P.convert_omniglot(robot)


def test_import_checkpoint_writes_a_loadable_project_checkpoint(robot, tmp_path):
    from l2l_nmhw_ros.cli import main
    from l2l_nmhw_ros.l2l import checkpoint

    out = tmp_path / 'robot'
    assert main(['import-checkpoint', robot.source_path, '-o', str(out)]) == 0
    weights, meta = checkpoint.load(out)
    np.testing.assert_array_equal(weights['trainee.w_rec'],
                                  robot.variables['W_rec_trainee'].value.T)
    assert weights['lsg.w_in'].shape == (800, 53)
    src = meta['source']
    assert src['sha256'] == robot.sha256
    assert src['license'] == 'Apache-2.0'
    assert src['repository'] == 'https://github.com/IGITUGraz/RapidLearningInMemoryComputing'
    assert src['known_file'] is True
    assert src['tensorflow_names']['W_out_lsg'] == 'output_weights_lsg'
    assert meta['model'] == 'robot'
    assert len(meta['config_hash']) == 16
    # the published LSG was trained on the authors' target code; the paper preset is recorded
    assert checkpoint.target_code(meta) == 'paper'
    assert meta['config']['lsg']['n_rec'] == 800
    assert not meta['config']['pcm']['stochastic_rounding']
    assert meta['statistics']['trainee.w_in']['frac_abs_gt_1'] == pytest.approx(0.108)


def test_import_omniglot_round_trip(omniglot, tmp_path):
    out = tmp_path / 'omni'
    folder, meta = P.import_checkpoint(omniglot.source_path, out)
    weights, meta2 = P.load_omniglot(folder)
    assert meta2['source']['sha256'] == omniglot.sha256
    assert meta2['source']['path_in_repository'].startswith('few_shot_image_classification/')
    assert meta2['model'] == 'omniglot_cnn'
    np.testing.assert_array_equal(weights['omniglot.kernel5'],
                                  omniglot.variables['kernel5'].value.T)
    assert weights['omniglot.kernel1'].shape == (56, 1, 3, 3)
    # the robot loader refuses it (other keys), the Omniglot loader refuses a robot folder
    from l2l_nmhw_ros.l2l import checkpoint

    with pytest.raises(CheckpointError, match='missing'):
        checkpoint.load(folder)
