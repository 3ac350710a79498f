"""`npvae --version`: setup.cfg's version, through the installed metadata or, in a source tree
that was never installed, read from setup.cfg itself."""
import configparser
import importlib.metadata
import pathlib

import pytest

import npvae
from npvae.cli import main

SETUP_CFG = pathlib.Path(__file__).resolve().parent.parent / "setup.cfg"


def _declared_version():
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    return parser["metadata"]["version"]


def test_version_flag_prints_setup_cfgs_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"npvae {_declared_version()}"
    assert npvae.__version__ == _declared_version()


def test_version_without_installed_metadata(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(npvae, "version", not_installed)
    assert npvae._package_version() == _declared_version()
