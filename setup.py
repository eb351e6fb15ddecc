"""Packaging beyond setup.cfg: the top-level ``methods/`` and ``configs/`` folders of the
repository are installed inside the project's namespace, so an installed wheel has what the
library reads and claims no generic top-level name:

  methods/  -> the package ``ovseg_bench_methods`` (the built-in method plugins)
  configs/  -> ``ovseg_bench/configs`` (package data, setup.cfg: dataset, backbone, method and
               bench configs)
"""
from setuptools import find_packages, setup

METHODS = [p.replace('methods', 'ovseg_bench_methods', 1)
           for p in find_packages(include=['methods', 'methods.*'])]

setup(
    packages=find_packages(include=['ovseg_bench', 'ovseg_bench.*']) + METHODS
    + ['ovseg_bench.configs'],
    package_dir={'ovseg_bench_methods': 'methods', 'ovseg_bench.configs': 'configs'},
)
