"""Where the files that are not Python live: templates, static files, hypercorn.toml.

The repository keeps them at the top level (``templates/``, ``static/``); the build copies
them into the package (``streamzy/_assets/``, setup.py), because an installed wheel has no
top level to reach. The packaged copy wins when it exists: a checkout never has one (the
build hook skips editable installs and .gitignore keeps it out), while an installed
package's parent is site-packages, where a folder called ``templates`` may belong to anyone.
"""

from __future__ import annotations

from pathlib import Path

PACKAGED = Path(__file__).resolve().parent / "_assets"
CHECKOUT = Path(__file__).resolve().parent.parent


def asset_path(name: str) -> Path:
    """The folder or file ``name`` (``templates``, ``static``, ``hypercorn.toml``)."""
    packaged = PACKAGED / name
    return packaged if packaged.exists() else CHECKOUT / name
