"""npvae: convolutional VAE and CVAE in NumPy + Numba, every gradient written by hand."""
import configparser
import os
from importlib.metadata import PackageNotFoundError, version


def _package_version():
    """setup.cfg's version, the one source of truth: as installed (the package metadata), or,
    in a source tree that was never installed, read from setup.cfg beside the package."""
    try:
        return version("npvae")
    except PackageNotFoundError:
        pass
    setup_cfg = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.cfg")
    parser = configparser.ConfigParser()
    try:
        parser.read(setup_cfg)
        return parser["metadata"]["version"]
    except (configparser.Error, KeyError):
        return "unknown (not installed, and no setup.cfg beside the package)"


__version__ = _package_version()
