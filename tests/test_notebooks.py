"""The notebooks of examples/notebooks/ run clean, top to bottom, in a real Jupyter kernel.

They are stored as jupytext py:percent files; each is converted to a notebook in memory and
executed by nbclient with NPVAE_NOTEBOOK_QUICK=1, which the notebooks read to shrink their
sample sizes (the three together take well under two minutes). A cell that raises fails the test
with the cell's traceback.
"""
import os
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext", reason="the notebook tests need the dev extra: pip install -e '.[dev]'")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "examples" / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
REPOSITORY = str(NOTEBOOKS.parent.parent)


def test_the_three_notebooks_are_there():
    assert [p.name[:2] for p in PATHS] == ["01", "02", "03"]


def execute(path, monkeypatch):
    """Run the notebook at ``path`` in a fresh python3 kernel; returns the executed notebook."""
    monkeypatch.setenv("NPVAE_NOTEBOOK_QUICK", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)     # the kernel's inline backend: figures as PNG
    # The kernel imports this checkout's npvae, wherever pytest was started.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [REPOSITORY, os.environ.get("PYTHONPATH")])))
    notebook = jupytext.read(path)
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return notebook


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_runs_clean(path, monkeypatch):
    notebook = execute(path, monkeypatch)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.get("execution_count") for cell in code)
    outputs = [output for cell in code for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert not [o for o in outputs if o.get("name") == "stderr" and "Warning" in o.get("text", "")]
    # What each teaches shows up in its output: gradient checks passed (and, in notebook 1, the
    # broken backward passes caught), figures drawn.
    text = "".join(o.get("text", "") for o in outputs)
    assert " ok " in text or path.stem.startswith("03")
    assert "FAIL" in text or not path.stem.startswith("01")
    assert any("image/png" in o.get("data", {}) for o in outputs) or path.stem.startswith("01")


def test_notebooks_open_with_what_they_teach_and_a_link_to_the_derivations():
    for path in PATHS:
        first = jupytext.read(path).cells[0]
        assert first.cell_type == "markdown" and first.source.startswith(f"# {int(path.name[:2])}. ")
        assert "eq. " in first.source and "../../docs/derivations.md#" in first.source
        for anchor in first.source.split("derivations.md#")[1:]:
            heading = anchor.split(")")[0]
            assert heading in _anchors(), f"{path.name}: no section #{heading} in docs/derivations.md"


def _anchors():
    """GitHub's anchors of docs/derivations.md's headings."""
    text = (NOTEBOOKS.parent.parent / "docs" / "derivations.md").read_text()
    anchors = []
    for line in text.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            kept = "".join(c for c in title if c.isalnum() or c in " -")
            anchors.append(kept.replace(" ", "-"))
    return anchors
