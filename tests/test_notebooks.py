"""Executes the notebooks at reduced size (nbclient, the `python3` kernel)."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO_ROOT

NOTEBOOKS = os.path.join(REPO_ROOT, "notebooks")


def _run(name, parameters, tmp_path, monkeypatch):
    nb = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    for cell in nb.cells:  # Outputs are stripped in git.
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None
    index = next(i for i, c in enumerate(nb.cells) if c.source.startswith("# Parameters"))
    nb.cells[index].source = "# Parameters\n" + "\n".join(
        f"{k} = {v!r}" for k, v in parameters.items())
    pythonpath = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (REPO_ROOT, pythonpath) if p))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def _stdout(nb):
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs if o.get("name") == "stdout")


@pytest.mark.slow
def test_sentiment_notebook_small(tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    nb = _run("01_sentiment_distillation.ipynb",
              {"MAX_EXAMPLES": 24, "EPOCHS": 1, "EXPORT": False, "OUTPUT": out},
              tmp_path, monkeypatch)
    text = _stdout(nb)
    assert "distilled student" in text and "teacher" in text
    assert os.path.exists(os.path.join(out, "results.json"))
    assert os.path.exists(os.path.join(out, "training_curves.png"))


@pytest.mark.slow
def test_digits_few_labels_notebook_small(tmp_path, monkeypatch):
    nb = _run("02_digits_few_labels.ipynb",
              {"LABEL_FRACTION": 0.1, "STUDENT_EPOCHS": 3, "SEED": 0},
              tmp_path, monkeypatch)
    text = _stdout(nb)
    assert "distilled student" in text and "student alone (10% labels)" in text
    accuracies = [float(line.split()[-1].rstrip("%")) for line in text.splitlines()
                  if line.startswith(("teacher (", "student alone", "distilled"))]
    assert len(accuracies) == 3 and all(0 <= a <= 100 for a in accuracies)
    # The label-spreading teacher on 10% labels is far above chance (10%).
    assert accuracies[0] > 80
