"""Packaging: `core/`, `tui/` and `presets/` install as `neuraterm.core`, `neuraterm.tui` and
`neuraterm.presets`. Subpackages are discovered from the tree, never listed by hand, so a new folder
with an `__init__.py` cannot be left out of the wheel (tests/test_install.py checks the wheel)."""
from setuptools import find_packages, setup

ROOTS = {"neuraterm": "neuraterm", "neuraterm.core": "core", "neuraterm.tui": "tui",
         "neuraterm.presets": "presets"}

packages = [f"{name}.{sub}" if sub else name
            for name, folder in ROOTS.items() for sub in ["", *find_packages(folder)]]
setup(packages=packages, package_dir=ROOTS)
