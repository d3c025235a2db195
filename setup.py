"""ament_python package definition; also a plain setuptools package for pip-only installs."""

import os

from setuptools import find_packages, setup

PACKAGE = 'l2l_nmhw_ros'

NODES = {
    'pcm_accelerator': 'l2l_nmhw_ros.ros.pcm_accelerator_node:main',
    'snn_controller': 'l2l_nmhw_ros.ros.snn_controller_node:main',
    'arm_sim': 'l2l_nmhw_ros.ros.arm_sim_node:main',
    'ed_scorbot_driver': 'l2l_nmhw_ros.ros.ed_scorbot_driver_node:main',
    'web_viewer': 'l2l_nmhw_ros.ros.web_viewer_node:main',
    'fewshot_classifier': 'l2l_nmhw_ros.ros.fewshot_classifier_node:main',
}


def _share(folder):
    """Return data_files entries that install every file below `folder` under share/<pkg>/."""
    entries = []
    for root, _dirs, files in os.walk(folder):
        paths = [os.path.join(root, f) for f in files if not f.endswith('.pyc')]
        if paths:
            entries.append((os.path.join('share', PACKAGE, root), paths))
    return entries


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'bench', 'bench.*']),
    package_data={PACKAGE: ['py.typed']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        *_share('launch'),
        *_share('config'),
        *_share('urdf'),
        *_share('checkpoints'),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='l2l_nmhw_ros maintainers',
    maintainer_email='maintainers@l2l-nmhw.invalid',
    description='Learning-to-learn on emulated PCM in-memory computing for robot arms (ROS 2).',
    license='Apache-2.0',
    python_requires='>=3.11',
    entry_points={
        'console_scripts': [
            'l2l-nmhw = l2l_nmhw_ros.cli:main',
            *[f'{name} = {target}' for name, target in NODES.items()],
        ],
    },
)
