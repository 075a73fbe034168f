# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Packaging for the PSALM OpenMMLab extension (``pip install -e .``).

The OpenMMLab packages (``requirements/mminstall.txt``) are not declared in
``install_requires``: mmcv must be built with ``--no-build-isolation`` against the
installed torch, which pip's isolated builds cannot do. ``tools/install.sh``
installs them in the right order.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent


def parse_requirements(fname: str) -> list:
    """Read a requirements file, dropping comments and blank lines."""
    reqs = []
    for line in (ROOT / fname).read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if line and not line.startswith('-r'):
            reqs.append(line)
    return reqs


def get_version() -> str:
    text = (ROOT / 'projects' / 'psalm' / 'version.py').read_text()
    return re.search(r"__version__ = '([^']+)'", text).group(1)


setup(
    name='psalm-openmmlab',
    version=get_version(),
    description='PSALM: Pixelwise SegmentAtion with Large Multi-modal Model, '
    'as an OpenMMLab extension',
    long_description=(ROOT / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    packages=find_packages(include=['projects', 'projects.*']),
    include_package_data=True,
    package_data={'projects.psalm.datasets': ['class_names/*.txt']},
    python_requires='>=3.10',
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={
        'tests': parse_requirements('requirements/tests.txt'),
        'optional': parse_requirements('requirements/optional.txt'),
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'License :: OSI Approved :: Apache Software License',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    zip_safe=False,
)
