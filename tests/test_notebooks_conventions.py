"""House rules of the committed notebooks and experiment files (STYLE.md rules 4 and 5), checked without running.

nbval runs the notebooks themselves (``pytest --nbval-lax notebooks/``); this file checks what nbval cannot see:
one typed parameters cell, no definitions or path tricks, a question for a title, asserts, and experiment files
that name real notebooks and parameters. The checker is tested on notebooks built here, so this file tests
something even before the first notebook is committed.
"""

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from cogfun.experiments import check_experiment_file, check_notebook

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
EXPERIMENTS = sorted([*(REPO / "experiments").glob("*.yaml"), *(REPO / "experiments").glob("*.yml")])


def _cases(paths, what):
    """One test per file, named by it; a single skipped case (with the reason) when there are none yet."""
    if paths:
        return [pytest.param(p, id=p.name) for p in paths]
    return [pytest.param(None, id=f"no-{what}", marks=pytest.mark.skip(reason=f"no {what} committed yet"))]


def test_the_globs_look_where_the_files_live():
    assert (REPO / "notebooks").is_dir() and (REPO / "experiments").is_dir()
    assert all(p.parent == REPO / "notebooks" and p.suffix == ".ipynb" for p in NOTEBOOKS)
    assert not any(".ipynb_checkpoints" in p.parts for p in NOTEBOOKS)
    assert all(p.parent == REPO / "experiments" for p in EXPERIMENTS)  # runs/ holds no experiment files


@pytest.mark.parametrize("notebook", _cases(NOTEBOOKS, "notebooks"))
def test_notebook_follows_the_house_rules(notebook):
    assert check_notebook(notebook) == []


@pytest.mark.parametrize("experiment", _cases(EXPERIMENTS, "experiments"))
def test_experiment_names_a_notebook_and_its_parameters(experiment):
    assert check_experiment_file(experiment) == []


# ---------------------------------------------------------------------------------------------------------------
# The checker itself, on notebooks built here
# ---------------------------------------------------------------------------------------------------------------

GOOD_PARAMETERS = (
    "# tiny CPU defaults; experiments/ holds the full sizes\n"
    "num_inference_steps: int = 2  # denoising steps\n"
    "seeds: list[int] = [0, 1, 2]  # one run per seed\n"
    "sampler: str = \"ddim\"  # see cogfun.pipelines\n"
    "guidance_scale: float = -1.5  # negative to test literals\n"
    "checkpoint: str = \"\"  # a local folder; empty: the toy model\n"
    "size: tuple[int, int] = (64, 96)  # height, width\n"
    "weights: dict[str, float] = {\"a\": 1.0}  # per-term loss weights\n"
    "run_dir: str = \"\"  # run folder (set by the runner)\n"
)
GOOD_CODE = [
    "%matplotlib inline\nfrom cogfun.experiments import resolve_run_dir\nout = resolve_run_dir(run_dir, '03')",
    "import numpy as np\nx = np.arange(num_inference_steps)\nassert x.sum() == 1",
    "f = lambda v: v + 1\nassert f(1) == 2",
]


def build(tmp_path, name="03_embedding_resize.ipynb", title="# Which embedding resize trains best?",
          parameters=GOOD_PARAMETERS, code=GOOD_CODE, kernel="python3", tags=("parameters",)):
    nb = new_notebook(metadata={"kernelspec": {"name": kernel, "display_name": "Python 3", "language": "python"}})
    cell = new_code_cell(parameters)
    cell.metadata["tags"] = list(tags)
    nb.cells = [new_markdown_cell(title + "\n\nWhat this notebook shows."), cell, *map(new_code_cell, code)]
    path = tmp_path / name
    nbformat.write(nb, str(path))
    return path


def test_a_good_notebook_passes(tmp_path):
    assert check_notebook(build(tmp_path)) == []


@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": "embedding.ipynb"}, "NN_snake_case"),
        ({"kernel": "python"}, "kernelspec.name is 'python'"),
        ({"title": "## Embeddings?"}, "first cell must be markdown"),
        ({"title": "# Embedding resize"}, "should be a question"),
        ({"tags": ()}, "0 cells tagged 'parameters'"),
        ({"parameters": "steps = 2  # no type\n"}, "add a type annotation"),
        ({"parameters": "steps: int = 2\n"}, "add a comment"),
        ({"parameters": "steps: int = min(2, 3)  # computed\n"}, "must be a literal"),
        ({"parameters": "import os  # not a parameter\n"}, "only typed literal assignments"),
        ({"parameters": "steps: int | None = 2  # union\n"}, "papermill cannot read 'steps'"),
        ({"parameters": "path: Optional[str] = None  # needs an import\n"}, "runs without imports"),
        ({"parameters": "prompt: str = \"a=b\"  # two '='\n"}, "papermill cannot read 'prompt'"),
        ({"code": ["def f():\n    return 1\nassert f()"]}, "no def in notebooks (def f)"),
        ({"code": ["class A:\n    pass\nassert A"]}, "no class in notebooks (class A)"),
        ({"code": ["import sys\nsys.path.insert(0, '..')\nassert sys"]}, "no sys.path edits"),
        ({"code": ["import os\nos.chdir('..')\nassert os"]}, "no os.chdir"),
        ({"code": ["%load_ext autoreload\n%autoreload 2\nassert True"]}, "no %autoreload"),
        ({"code": ["x = 1"]}, "no assert in any code cell"),
        ({"code": ["x = = 1\nassert x"]}, "does not parse"),
    ],
)
def test_each_broken_rule_is_named(tmp_path, change, message):
    problems = check_notebook(build(tmp_path, **change))
    assert len(problems) >= 1 and any(message in p for p in problems), problems


def test_two_parameters_cells_are_one_too_many(tmp_path):
    path = build(tmp_path)
    nb = nbformat.read(str(path), as_version=4)
    extra = new_code_cell("more: int = 1  # second cell")
    extra.metadata["tags"] = ["parameters"]
    nb.cells.append(extra)
    nbformat.write(nb, str(path))
    assert any("2 cells tagged 'parameters'" in p for p in check_notebook(path))


def test_experiment_file_checks(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "experiments").mkdir()
    build(tmp_path / "notebooks")
    good = tmp_path / "experiments" / "resize.yaml"
    good.write_text("notebook: notebooks/03_embedding_resize.ipynb\nparameters:\n  num_inference_steps: 50\n"
                    "  seeds: [0, 1, 2, 3]\n  checkpoint: /models/CogVideoX-Fun-2b\n")
    assert check_experiment_file(good) == []
    typo = tmp_path / "experiments" / "typo.yaml"
    typo.write_text("notebook: notebooks/03_embedding_resize.ipynb\nparameters:\n  num_inference_step: 50\n")
    (problem,) = check_experiment_file(typo)
    assert "unknown parameter 'num_inference_step'" in problem and "did you mean 'num_inference_steps'" in problem
    missing = tmp_path / "experiments" / "missing.yaml"
    missing.write_text("notebook: notebooks/09_nothing.ipynb\n")
    assert "09_nothing.ipynb does not exist" in check_experiment_file(missing)[0]
