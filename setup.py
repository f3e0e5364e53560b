"""Build hook: ship the top-level templates/, static/ and hypercorn.toml inside the package.

The repository keeps them at the top level (the layout the docs and scripts use); a wheel
only carries what is inside ``streamzy/``, so without this an installed ``streamzy serve``
answered 500 on every page. They are copied to ``streamzy/_assets/`` in the build tree
only: editable installs keep reading the checkout's folders (streamzy/assets.py). Everything
else about the build is declared in pyproject.toml; MANIFEST.in puts the folders in the sdist.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ASSETS = ("templates", "static", "hypercorn.toml")


class BuildPyWithAssets(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # the checkout's folders are read in place
            return
        target = Path(self.build_lib) / "streamzy" / "_assets"
        for name in ASSETS:
            if Path(name).is_dir():
                self.copy_tree(name, str(target / name))
            else:
                self.mkpath(str(target))
                self.copy_file(name, str(target / name))


setup(cmdclass={"build_py": BuildPyWithAssets})
