"""The package's shape: imports run one way, downward, and every module is short enough to
read in one sitting. These tests read the source; they fail when a change breaks the rule."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "npvae"

# Bottom to top. A module may import from its own package and from packages on a lower level;
# packages on one level do not import each other. docs/architecture.md draws the same picture.
LEVELS = [
    ("kernels", "files"),
    ("nn", "data"),
    ("losses", "runtime"),
    ("optim",),
    ("models",),
    ("runs",),
    ("pretrained", "evaluation"),
    ("tracking",),
    ("training",),
    ("gradcheck", "diagnostics"),
    ("viz",),
    ("experiments",),
    ("cli",),
]
LEVEL = {package: rank for rank, packages in enumerate(LEVELS) for package in packages}

# Deliberate exceptions, each with its reason.
ALLOWED_UPWARD = {
    # npvae.models.load_pretrained is the name users type; the files and their checks live in
    # npvae.pretrained, which needs the run-directory format from npvae.runs.
    ("models", "pretrained"),
}
MAX_LINES = 400


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _package_of(path, root=PACKAGE):
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else None        # None: npvae/__init__.py, __main__.py


def _imported_packages(path, root=PACKAGE):
    """The npvae sub-packages a module imports, anywhere in the file (function bodies too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names = [node.module or ""]
            else:
                up = node.level - 1                         # 1 = this folder
                here = list(path.relative_to(root).parts[:-1])
                base = here[:len(here) - up] if up <= len(here) else None
                if base is None:
                    continue
                module = (node.module or "").split(".") if node.module else []
                names = [".".join(["npvae", *base, *module])]
                if not module:      # from . import a, b
                    names = [".".join(["npvae", *base, alias.name]) for alias in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "npvae" and len(parts) > 1:
                    found.add(parts[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "npvae" and len(parts) > 1:
                    found.add(parts[1])
    return found


def _check_downward(path, root=PACKAGE):
    package = _package_of(path, root)
    if package is None:
        return
    assert package in LEVEL, f"npvae/{package}/ has no level in LEVELS: add it (and to docs/architecture.md)"
    for imported in _imported_packages(path, root) - {package}:
        if imported not in LEVEL:           # a module of npvae's top level, e.g. npvae.__version__
            continue
        if (package, imported) in ALLOWED_UPWARD:
            continue
        assert LEVEL[imported] < LEVEL[package], (
            f"{path.relative_to(root.parent)} imports npvae.{imported} (level {LEVEL[imported]}) "
            f"from npvae.{package} (level {LEVEL[package]}): imports must run downward")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_downward(path):
    _check_downward(path)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_are_short_enough_to_read_in_one_sitting(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE.parent)} has {lines} lines (at most {MAX_LINES})"


@pytest.mark.parametrize("source", ["from ..models import VAE", "import npvae.models.vae",
                                    "def f():\n    from ...npvae.models import VAE"])
def test_the_checker_catches_an_upward_import(tmp_path, source):
    """The checker itself: a kernels module importing the models, however spelled, is found."""
    root = tmp_path / "npvae"
    (root / "kernels").mkdir(parents=True)
    probe = root / "kernels" / "probe.py"
    probe.write_text(source.replace("...npvae.models", "..models") + "\n")
    with pytest.raises(AssertionError, match="imports must run downward"):
        _check_downward(probe, root)
