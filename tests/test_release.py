"""The release's version has one source, the CLI reports it, and the app finds its templates
and static files both in a checkout and inside an installed package."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

import streamzy
from streamzy import assets
from streamzy.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_the_version_has_one_source() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "streamzy.__version__"}
    assert version("streamzy") == streamzy.__version__


@pytest.mark.parametrize("argv", [["--version"], ["version"]])
def test_the_cli_prints_the_version(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's --version action exits 0
        status = int(exc.code or 0)
    assert status == 0
    assert capsys.readouterr().out.strip() == f"streamzy {streamzy.__version__}"


def test_the_changelog_and_license_exist() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text("utf-8")
    assert "## [Unreleased]" in changelog
    assert f"## [{streamzy.__version__}]" in changelog
    assert "Apache License" in (ROOT / "LICENSE").read_text("utf-8")


def test_a_checkout_reads_the_top_level_folders() -> None:
    assert not assets.PACKAGED.exists()  # the build hook never writes into a checkout
    assert assets.asset_path("templates") == ROOT / "templates"
    assert assets.asset_path("static") == ROOT / "static"
    assert (assets.asset_path("templates") / "error.html").is_file()


def test_an_installed_package_reads_its_packaged_copy(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """site-packages/templates may belong to another distribution: the packaged copy wins."""
    packaged, beside = tmp_path / "streamzy" / "_assets", tmp_path
    (packaged / "templates").mkdir(parents=True)
    (beside / "templates").mkdir()
    monkeypatch.setattr(assets, "PACKAGED", packaged)
    monkeypatch.setattr(assets, "CHECKOUT", beside)
    assert assets.asset_path("templates") == packaged / "templates"
    assert assets.asset_path("static") == beside / "static"  # nothing packaged: the checkout
