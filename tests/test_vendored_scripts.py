"""The browser libraries we vendor under static/vendor are exactly the files we recorded.

Each one has a record (version, npm integrity, SHA-256 of the file we ship), a licence file
and a refresh script whose ``--check`` compares the file with its record. Here the hash is
checked independently of the script, the script's check is run, and the check is shown to
refuse a file that changed by one byte.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

VENDOR = ROOT / "static" / "vendor"
# file we ship, its record, its licence, the script that fetches and checks it
VENDORED = [
    ("socket.io.min.js", "SOCKETIO-VERSION.txt", "SOCKETIO-LICENSE.txt", "vendor-socketio.sh",
     "socket.io-client"),
    ("markdown-it.min.js", "MARKDOWN-IT-VERSION.txt", "MARKDOWN-IT-LICENSE.txt",
     "vendor-markdown-it.sh", "markdown-it"),
]
IDS = [entry[0] for entry in VENDORED]


def record(name: str) -> dict[str, str]:
    fields = {}
    for line in (VENDOR / name).read_text().splitlines():
        key, _, value = line.partition(": ")
        fields[key] = value
    return fields


@pytest.mark.parametrize(("file", "record_name", "licence", "script", "package"), VENDORED, ids=IDS)
def test_each_vendored_file_matches_its_record(file: str, record_name: str, licence: str,
                                               script: str, package: str) -> None:
    fields = record(record_name)
    assert fields["package"] == package
    assert re.fullmatch(r"\d+\.\d+\.\d+", fields["version"]), fields["version"]
    assert fields["npm-integrity"].startswith("sha512-")
    assert hashlib.sha256((VENDOR / file).read_bytes()).hexdigest() == fields["sha256"]
    assert "Permission is hereby granted" in (VENDOR / licence).read_text()
    # we ship no source map, so the file must not point at one
    assert "sourceMappingURL" not in (VENDOR / file).read_text()


@pytest.mark.parametrize(("file", "record_name", "licence", "script", "package"), VENDORED, ids=IDS)
def test_the_refresh_scripts_check_passes_and_refuses_a_changed_file(
        tmp_path: Path, file: str, record_name: str, licence: str, script: str,
        package: str) -> None:
    done = subprocess.run(["bash", f"scripts/{script}", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert record(record_name)["version"] in done.stdout

    # The same script on a copy of the tree whose file changed by one byte.
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / script, tmp_path / "scripts" / script)
    shutil.copytree(VENDOR, tmp_path / "static" / "vendor")
    changed = tmp_path / "static" / "vendor" / file
    changed.write_bytes(changed.read_bytes() + b"\n")
    done = subprocess.run(["bash", f"scripts/{script}", "--check"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "does not match" in done.stderr


def test_markdown_it_licence_carries_every_bundled_package() -> None:
    """The browser build bundles markdown-it's dependencies; their licences ship with it."""
    bundles = [b.rsplit("@", 1)[0] for b in record("MARKDOWN-IT-VERSION.txt")["bundles"].split(", ")]
    assert {"linkify-it", "mdurl", "entities"} <= set(bundles)
    licence = (VENDOR / "MARKDOWN-IT-LICENSE.txt").read_text()
    for name in bundles:
        assert f"Bundled in the browser build: {name} " in licence



def test_the_room_page_loads_only_vendored_and_own_scripts_in_order() -> None:
    """Deferred scripts run in document order: the libraries before the code that uses them."""
    template = (ROOT / "templates" / "room.html").read_text()
    sources = re.findall(r'<script src="([^"]+)" defer></script>', template)
    assert sources == ["/static/vendor/socket.io.min.js", "/static/vendor/markdown-it.min.js",
                       "/static/markdown.js", "/static/chat-render.js", "/static/chat-files.js",
                       "/static/chat-actions.js", "/static/chat-notify.js", "/static/chat.js",
                       "/static/search.js"]
    assert len(re.findall(r"<script", template)) == len(sources)
