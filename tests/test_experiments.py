"""Experiments: papermill runs into new run folders, typed overrides, clear errors, recorded metrics.

Kernel runs are the slow part: a kernel that imports cogfun pays for torch and diffusers (about 15 s on a loaded
2-core machine), so only one run here imports cogfun (``record_metrics`` in the kernel, shared through a module
fixture); the other runs use notebooks that do not (about 2 s each).
"""

import argparse
import json
import sys

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from cogfun.experiments import (
    ExperimentFailed,
    add_experiment_parser,
    coerce_value,
    default_run_dir,
    list_runs,
    load_experiment,
    new_run_dir,
    read_metrics,
    read_status,
    record_metrics,
    resolve_parameters,
    resolve_run_dir,
    run_experiment,
    save_figure,
    save_video,
)
from cogfun.experiments.spec import parse_assignments

PARAMETERS = 'steps: int = 2  # x\nrun_dir: str = ""  # y\n'
RECORD = (
    "import sys\n"
    "from cogfun.experiments import record_metrics, resolve_run_dir\n"
    "out = resolve_run_dir(run_dir, 'tiny')\n"
    "record_metrics(out, steps=steps, double=2 * steps, python=sys.executable, run_dir=str(out))\n"
    "assert steps > 0"
)
PLAIN = (  # the same record without importing cogfun: a fast kernel
    "import json, pathlib\n"
    "pathlib.Path(run_dir, 'metrics.json').write_text(json.dumps({'steps': steps, 'double': 2 * steps}))\n"
    "assert steps > 0"
)


def write_notebook(path, body, parameters=PARAMETERS):
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    cell = new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [new_markdown_cell("# Does the runner work?"), cell, new_code_cell(body)]
    nbformat.write(nb, str(path))
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A repo-like folder: notebooks/ and experiments/ (steps: 3 in the file)."""
    root = tmp_path_factory.mktemp("project")
    (root / "notebooks").mkdir()
    (root / "experiments").mkdir()
    write_notebook(root / "notebooks" / "tiny.ipynb", RECORD)
    write_notebook(root / "notebooks" / "plain.ipynb", PLAIN)
    write_notebook(root / "notebooks" / "boom.ipynb", "x = steps\nraise ValueError(f'boom at {x}')")
    (root / "experiments" / "tiny.yaml").write_text(
        "notebook: notebooks/tiny.ipynb\ndescription: a tiny notebook\nparameters:\n  steps: 3\n")
    (root / "experiments" / "plain.yaml").write_text("notebook: notebooks/plain.ipynb\nparameters:\n  steps: 3\n")
    (root / "experiments" / "boom.yaml").write_text("notebook: notebooks/boom.ipynb\ndescription: always fails\n")
    return root


def cli(project, *argv):
    parser = argparse.ArgumentParser(prog="cogfun")
    add_experiment_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["experiment", "--experiments-dir", str(project / "experiments"), *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def api_run(project):
    """One run through the Python API, with a text override parsed to the declared int."""
    return run_experiment("tiny", {"steps": "4"}, experiments_dir=project / "experiments", progress_bar=False)


# ---------------------------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------------------------


def test_api_run_writes_notebook_parameters_and_metrics(project, api_run):
    assert api_run.parent == project / "experiments" / "runs" / "tiny"
    assert read_status(api_run)["status"] == "ok"
    # the notebook recorded into the injected run folder, with the override parsed to int
    assert read_metrics(api_run) == {"steps": 4, "double": 8, "python": sys.executable, "run_dir": str(api_run)}
    params = json.loads((api_run / "parameters.json").read_text())
    assert params["parameters"] == {"steps": 4, "run_dir": str(api_run)}
    assert params["injected"] == {"steps": 4, "run_dir": str(api_run)}
    assert params["overrides"] == {"steps": 4}
    assert params["experiment"] == "tiny" and params["kernel"] == "python3"
    assert set(params["git"]) == {"commit", "dirty"}
    executed = nbformat.read(str(api_run / "tiny.ipynb"), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "steps = 4" in injected[0].source


def test_cli_runs_use_the_file_values_and_new_folders(project, capsys):
    assert cli(project, "run", "plain", "--no-progress") == 0
    assert "ok in" in capsys.readouterr().out
    assert cli(project, "run", "plain", "-p", "steps=5", "--no-progress") == 0
    first, second = list_runs(project / "experiments" / "runs", "plain")  # a second run never reuses a folder
    assert read_metrics(first) == {"steps": 3, "double": 6}  # steps: 3 from the experiment file
    assert read_metrics(second) == {"steps": 5, "double": 10}  # -p wins over the file
    assert json.loads((second / "parameters.json").read_text())["overrides"] == {"steps": 5}
    assert all((r / "plain.ipynb").exists() and read_status(r)["status"] == "ok" for r in (first, second))


def test_failing_notebook_exits_non_zero_and_keeps_the_executed_notebook(project, capsys):
    assert cli(project, "run", "boom", "-p", "steps=7", "--no-progress") == 1
    err = capsys.readouterr().err
    assert "ValueError: boom at 7" in err and "executed notebook kept" in err
    (run,) = list_runs(project / "experiments" / "runs", "boom")
    status = read_status(run)
    assert status["status"] == "failed" and status["error"]["ename"] == "ValueError"
    executed = nbformat.read(str(run / "boom.ipynb"), as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert errors and errors[0].evalue == "boom at 7"
    with pytest.raises(ExperimentFailed, match="boom at 2") as info:
        run_experiment("boom", experiments_dir=project / "experiments", progress_bar=False)
    assert read_status(info.value.run_dir)["status"] == "failed"
    assert len(list_runs(project / "experiments" / "runs", "boom")) == 2


# ---------------------------------------------------------------------------------------------------------------
# Bad input: a message and exit 2, before any folder is made
# ---------------------------------------------------------------------------------------------------------------


def test_unknown_experiment(project, capsys):
    assert cli(project, "run", "tinny") == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'tinny'" in err and "did you mean 'tiny'" in err and "boom, plain, tiny" in err
    with pytest.raises(ValueError, match="known experiments"):
        run_experiment("nope", experiments_dir=project / "experiments")


def test_mistyped_parameter_suggests_the_right_one(project, capsys):
    before = list_runs(project / "experiments" / "runs", "tiny")
    assert cli(project, "run", "tiny", "-p", "stpes=3") == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'stpes'" in err and "did you mean 'steps'" in err and "declares: steps" in err
    assert list_runs(project / "experiments" / "runs", "tiny") == before


def test_bad_type_names_the_expected_type(project, capsys):
    assert cli(project, "run", "tiny", "-p", "steps=abc") == 2
    assert "parameter 'steps' expects int (got 'abc')" in capsys.readouterr().err
    assert cli(project, "run", "tiny", "-p", "steps") == 2
    assert "-p expects key=value" in capsys.readouterr().err
    assert cli(project, "run", "tiny", "-p", "run_dir=/tmp/x") == 2
    assert "set by the runner" in capsys.readouterr().err


def test_dry_run_and_list(project, capsys):
    before = list_runs(project / "experiments" / "runs", "tiny")
    assert cli(project, "run", "tiny", "-p", "steps=9", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "steps = 9 (-p)" in out and "run_dir = <the new run folder>" in out
    assert list_runs(project / "experiments" / "runs", "tiny") == before
    assert cli(project, "list") == 0
    out = capsys.readouterr().out
    assert "boom: boom.ipynb" in out and "tiny: tiny.ipynb" in out and "a tiny notebook" in out


def test_unknown_kernel_is_bad_input(project, tmp_path, capsys):
    (tmp_path / "k.yaml").write_text(f"notebook: {project / 'notebooks' / 'plain.ipynb'}\nkernel: python9\n")
    assert cli(project, "run", str(tmp_path / "k.yaml"), "--dry-run") == 2
    err = capsys.readouterr().err
    assert "no Jupyter kernel named 'python9'" in err and "python3" in err


def test_experiment_file_errors(tmp_path):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "a.yaml").write_text("notebok: x.ipynb\n")
    with pytest.raises(ValueError, match="unknown key 'notebok' \\(did you mean 'notebook'\\?\\)"):
        load_experiment("a", tmp_path / "experiments")
    (tmp_path / "experiments" / "a.yaml").write_text("notebook: notebooks/missing.ipynb\n")
    with pytest.raises(ValueError, match="missing.ipynb does not exist"):
        load_experiment("a", tmp_path / "experiments")
    (tmp_path / "experiments" / "a.yaml").write_text("notebook: n.ipynb\nparameters:\n  steps: many\n")
    write_notebook(tmp_path / "n.ipynb", "pass")
    spec = load_experiment(str(tmp_path / "experiments" / "a.yaml"))  # a path works as the name
    with pytest.raises(ValueError, match="a.yaml: parameter 'steps' expects int"):
        resolve_parameters(spec)


# ---------------------------------------------------------------------------------------------------------------
# Typed overrides
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, type_name, expected",
    [
        ("3", "int", 3),
        (3, "int", 3),
        ("1e-5", "float", 1e-5),  # YAML 1.1 leaves this as text
        ("2", "float", 2.0),
        ("true", "bool", True),
        ("no", "bool", False),
        ("123", "str", "123"),  # a str parameter keeps the text as given
        ("a red ball", "str", "a red ball"),
        ("[0, 1, 2]", "list[int]", [0, 1, 2]),
        ("[0.5, 1]", "list[float]", [0.5, 1.0]),
        ("[64, 96]", "tuple[int, int]", [64, 96]),
        ("{a: 1}", "dict[str, float]", {"a": 1.0}),
        ("none", "Optional[int]", None),
        ("5", "Optional[int]", 5),
        ("[1, x]", "list", [1, "x"]),
    ],
)
def test_coerce_value(value, type_name, expected):
    out = coerce_value("k", value, type_name)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize(
    "value, type_name, message",
    [
        ("abc", "int", "expects int"),
        ("2.5", "int", "whole number"),
        ("true", "int", "expects int"),
        ("abc", "float", "expects float"),
        ("maybe", "bool", "true or false"),
        ("3", "list[int]", "YAML list"),
        ("[1, a]", "list[int]", "k\\[1\\]' expects int"),
        ("[1, 2, 3]", "tuple[int, int]", "expected 2 items"),
        ("null", "int", "Optional"),
        (5, "str", "quote it"),
    ],
)
def test_coerce_value_errors(value, type_name, message):
    with pytest.raises(ValueError, match=message):
        coerce_value("k", value, type_name)


def test_untyped_parameter_takes_its_defaults_type():
    assert coerce_value("k", "7", "None", default=2.0) == 7.0
    with pytest.raises(ValueError, match="expects None"):
        coerce_value("k", "x", "None", default=2)
    assert parse_assignments(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}


# ---------------------------------------------------------------------------------------------------------------
# Run folders and what notebooks record
# ---------------------------------------------------------------------------------------------------------------


def test_new_run_dir_never_reuses_a_folder(tmp_path):
    folders = {new_run_dir(tmp_path, "exp") for _ in range(20)}  # same second: the suffix differs
    assert len(folders) == 20 and all(f.parent == tmp_path / "exp" and f.is_dir() for f in folders)


def test_record_metrics_merges_and_converts(tmp_path):
    import torch

    record_metrics(tmp_path, loss=np.float32(0.5), curve=np.arange(3), steps=10)
    merged = record_metrics(tmp_path, loss=torch.tensor(0.25), table={"a": [1, 2]})
    assert merged == {"loss": 0.25, "curve": [0, 1, 2], "steps": 10, "table": {"a": [1, 2]}}
    assert json.loads((tmp_path / "metrics.json").read_text()) == merged
    with pytest.raises(ValueError, match="run_dir is empty"):
        record_metrics("", loss=1.0)
    with pytest.raises(ValueError, match="not JSON"):
        record_metrics(tmp_path, bad=object())


def test_default_run_dir_is_a_fresh_temporary_folder(tmp_path):
    a, b = default_run_dir("03_embedding_resize"), default_run_dir("03_embedding_resize")
    assert a != b and a.is_dir() and not any(a.iterdir()) and a.name.startswith("cogfun-03_embedding_resize-")
    assert resolve_run_dir(str(tmp_path / "r"), "x") == tmp_path / "r" and (tmp_path / "r").is_dir()
    c = resolve_run_dir("", "x")
    assert c.parent == a.parent and c not in (a, b)
    for folder in (a, b, c):
        folder.rmdir()


def test_save_figure_and_video(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert save_figure(fig, tmp_path, "loss_curve") == tmp_path / "figures" / "loss_curve.png"
    assert save_figure(fig, tmp_path, "loss.svg").read_text().startswith("<?xml")
    plt.close(fig)
    assert (tmp_path / "figures" / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="plain file name"):
        save_figure(fig, tmp_path, "../x")
    from cogfun.data.video_io import probe_video

    path = save_video(np.zeros((5, 16, 16, 3), np.float32), tmp_path, "sample")
    assert path == tmp_path / "videos" / "sample.mp4" and probe_video(path)["num_frames"] == 5


def test_run_folders_list_in_creation_order(tmp_path):
    from cogfun.experiments import new_run_dir

    made = [new_run_dir(tmp_path / "runs", "fast") for _ in range(5)]  # several inside one second
    assert list_runs(tmp_path / "runs", "fast") == made
    assert len({p.name[:15] for p in made}) <= 2 and len(set(made)) == 5


def test_no_progress_bars_silences_tqdm_and_the_libraries_and_restores_them(capsys):
    import tqdm.auto
    import transformers.utils.logging as transformers_logging

    from cogfun.experiments import no_progress_bars

    before = tqdm.auto.tqdm
    transformers_logging.enable_progress_bar()  # an earlier test may have left it off: start from "on"
    with no_progress_bars():
        bar = tqdm.auto.tqdm(range(3), desc="train", disable=False)  # an explicit disable=False loses
        assert list(bar) == [0, 1, 2] and bar.disable
        assert list(transformers_logging.tqdm(range(2), desc="Writing model shards")) == [0, 1]
        assert not transformers_logging.is_progress_bar_enabled()
    assert "train" not in capsys.readouterr().err
    assert tqdm.auto.tqdm is before and transformers_logging.is_progress_bar_enabled()
