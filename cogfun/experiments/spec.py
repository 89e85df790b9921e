"""Experiment files and their parameters: ``experiments/<name>.yaml`` checked against a notebook's ``parameters`` cell.

An experiment file names a notebook and the full-size values that override the notebook's tiny CPU defaults::

    notebook: notebooks/03_embedding_resize.ipynb   # relative to the experiments folder's parent (the repo root)
    description: Which positional-embedding resize trains best at 768x768?
    parameters:
      seeds: [0, 1, 2]
      train_steps: 2000
    kernel: python3        # optional (default: the notebook's kernelspec, else python3)
    timeout: 3600          # optional: seconds allowed per cell

The notebook's parameters are read the way papermill reads them (``papermill.inspect_notebook``: the cell tagged
``parameters``, lines ``name: type = literal  # help``), so a key that papermill would not see is an error here
too. Override values are checked against the declared type, as nanoGPT-style ``key=value`` overrides are in
STYLE.md rule 6: unknown keys raise with a close-match suggestion, values of the wrong type raise naming the type.
"""

from __future__ import annotations

import ast
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: Keys an experiment file may hold.
SPEC_KEYS = ("notebook", "description", "parameters", "kernel", "timeout")
#: The parameter the runner fills with the run folder's absolute path (when the notebook declares it).
RUN_DIR_PARAMETER = "run_dir"


# ---------------------------------------------------------------------------------------------------------------
# Finding experiments
# ---------------------------------------------------------------------------------------------------------------


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def find_experiments_dir(experiments_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding the experiment files.

    Args:
        experiments_dir: explicit folder; default ``./experiments`` when it exists, else the ``experiments/`` folder
            of the checkout this package is installed from (editable install).

    Returns:
        the folder (absolute).
    """
    if experiments_dir is not None:
        path = Path(experiments_dir).resolve()
        if not path.is_dir():
            raise ValueError(f"experiments folder {path} does not exist; pass an existing folder")
        return path
    here = Path.cwd() / "experiments"
    if here.is_dir():
        return here.resolve()
    checkout = Path(__file__).resolve().parents[2] / "experiments"
    if checkout.is_dir():
        return checkout
    raise ValueError(f"no experiments folder in {Path.cwd()}; run from the repository root or pass --experiments-dir")


def list_experiments(experiments_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Every experiment file in the folder, by name (the file stem), sorted.

    Args:
        experiments_dir: see ``find_experiments_dir``.
    """
    folder = find_experiments_dir(experiments_dir)
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    return {f.stem: f for f in files}


# ---------------------------------------------------------------------------------------------------------------
# Experiment files
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExperimentSpec:
    """One experiment file, read and checked (the notebook exists; keys are known).

    Attributes:
        name: the experiment's name (file stem); runs go to ``runs/<name>/``.
        path: the experiment file.
        notebook: the notebook (absolute path).
        description: one line or more saying what the experiment asks.
        parameters: overrides of the notebook's defaults, as written in the file.
        kernel: Jupyter kernel name, or None for the notebook's own (else ``python3``).
        timeout: seconds allowed per cell, or None for no limit.
    """

    name: str
    path: Path
    notebook: Path
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    kernel: str | None = None
    timeout: float | None = None


def load_experiment(name: str, experiments_dir: str | os.PathLike | None = None) -> ExperimentSpec:
    """Read an experiment by name (or by the path of its ``.yaml`` file).

    Args:
        name: the file stem in the experiments folder (``embedding_resize``) or a path to a ``.yaml`` file.
        experiments_dir: see ``find_experiments_dir``; ignored when ``name`` is a file path.

    Raises:
        ValueError: unknown experiment (the message lists the known ones), unknown keys in the file, a missing
            notebook.
    """
    as_path = Path(name)
    if as_path.suffix in (".yaml", ".yml") and as_path.is_file():
        path, root = as_path.resolve(), as_path.resolve().parent.parent
    else:
        known = list_experiments(experiments_dir)
        if name not in known:
            folder = find_experiments_dir(experiments_dir)
            listing = ", ".join(known) if known else "none yet"
            raise ValueError(f"unknown experiment '{name}'{_did_you_mean(name, known)}; known experiments in "
                             f"{folder}: {listing}")
        path = known[name]
        root = path.parent.parent
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"{path} is not valid YAML: {problem}{where}; fix that line") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must be a mapping with keys {', '.join(SPEC_KEYS)}")
    for key in data:
        if key not in SPEC_KEYS:
            raise ValueError(f"{path}: unknown key '{key}'{_did_you_mean(key, SPEC_KEYS)}; allowed keys: "
                             f"{', '.join(SPEC_KEYS)}")
    if "notebook" not in data:
        raise ValueError(f"{path}: missing 'notebook:' (the notebook to run, relative to {root})")
    notebook = Path(data["notebook"])
    notebook = (notebook if notebook.is_absolute() else root / notebook).resolve()
    if not notebook.is_file():
        raise ValueError(f"{path}: notebook {notebook} does not exist; fix 'notebook:' (relative to {root})")
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ValueError(f"{path}: 'parameters:' must be a mapping key: value")
    timeout = data.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"{path}: 'timeout:' must be a positive number of seconds per cell (got {timeout!r})")
    return ExperimentSpec(
        name=path.stem, path=path, notebook=notebook, description=str(data.get("description") or "").strip(),
        parameters=dict(parameters), kernel=data.get("kernel"), timeout=timeout,
    )


# ---------------------------------------------------------------------------------------------------------------
# The notebook's parameters and typed overrides
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotebookParameter:
    """One line of a notebook's parameters cell, as papermill reads it.

    Attributes:
        name: the variable.
        type_name: the annotation as written (``int``, ``list[int]``, ``dict[str, float]``), or ``"None"`` when
            there is none.
        default: the default's source text.
        help: the trailing comment.
    """

    name: str
    type_name: str
    default: str
    help: str

    @property
    def default_value(self) -> Any:
        """The default as a Python value (its source text when it is not a literal)."""
        try:
            return ast.literal_eval(self.default)
        except (ValueError, SyntaxError):
            return self.default


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, NotebookParameter]:
    """The parameters a notebook declares in its cell tagged ``parameters`` (papermill's ``inspect_notebook``).

    Args:
        notebook: path of the ``.ipynb``.

    Returns:
        ``{name: NotebookParameter}`` in cell order; empty when there is no parameters cell.
    """
    import papermill

    found = papermill.inspect_notebook(str(notebook))
    return {
        name: NotebookParameter(name, p["inferred_type_name"], p["default"], p["help"]) for name, p in found.items()
    }


def _split_type(type_name: str) -> tuple[str, list[str], bool]:
    """``"Optional[list[int]]"`` -> ``("list", ["int"], True)``; ``"dict[str, int]"`` -> ``("dict", [...], False)``."""
    t = (type_name or "None").replace(" ", "")
    optional = False
    if t.startswith("Optional[") and t.endswith("]"):
        t, optional = t[len("Optional["):-1], True
    base, _, rest = t.partition("[")
    args: list[str] = []
    if rest:
        depth, current = 0, ""
        for ch in rest[:-1]:  # drop the closing bracket
            if ch == "," and depth == 0:
                args.append(current)
                current = ""
                continue
            depth += ch == "["
            depth -= ch == "]"
            current += ch
        args.append(current)
    return base.lower(), [a for a in args if a], optional


def coerce_value(key: str, value: Any, type_name: str, default: Any = None) -> Any:
    """Check (and convert) one override against its declared type.

    Text from the command line (``-p steps=3``) is parsed with ``yaml.safe_load`` unless the type is ``str``;
    values from an experiment file arrive already typed. ``int`` accepts whole numbers only, ``float`` accepts
    ints and numeric text such as ``1e-5`` (which YAML leaves as a string), ``bool`` accepts true/false,
    ``list[...]``/``tuple[...]``/``dict[...]`` check their items. A parameter without annotation takes the
    type of its default.

    Args:
        key: the parameter's name (for messages).
        value: the override, text or typed.
        type_name: the declared annotation (``NotebookParameter.type_name``).
        default: the notebook's default, used when there is no annotation.

    Returns:
        the value to inject.

    Raises:
        ValueError: naming the parameter, the expected type and the value.
    """
    base, args, optional = _split_type(type_name)
    if base == "none":  # no annotation: the default's type decides
        if default is None:
            return yaml.safe_load(value) if isinstance(value, str) else value
        base, args = type(default).__name__, []

    def fail(extra: str = "") -> ValueError:
        return ValueError(f"parameter '{key}' expects {type_name} (got {value!r}){extra}")

    if isinstance(value, str) and base != "str":
        text = value.strip()
        if optional and text.lower() in ("none", "null", "~", ""):
            return None
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise fail() from None
    if value is None:
        if optional:
            return None
        raise fail("; None is allowed only for Optional[...] parameters")

    if base == "str":
        if not isinstance(value, str):
            raise fail("; quote it in the experiment file")
        return value
    if base == "bool":
        if not isinstance(value, bool):
            raise fail("; use true or false")
        return value
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("; use a whole number such as 3")
        return value
    if base == "float":
        if isinstance(value, str):  # YAML 1.1 reads '1e-5' as text
            try:
                return float(value)
            except ValueError:
                raise fail("; use a number such as 0.5 or 1e-5") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("; use a number such as 0.5 or 1e-5")
        return float(value)
    if base in ("list", "tuple", "sequence"):
        if not isinstance(value, (list, tuple)):
            raise fail("; use a YAML list such as [1, 2, 3]")
        if base == "tuple" and args and args[-1] != "...":
            if len(value) != len(args):
                raise fail(f"; expected {len(args)} items")
            return [coerce_value(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args))]
        item = args[0] if args else "None"
        return [coerce_value(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if base == "dict":
        if not isinstance(value, dict):
            raise fail("; use a YAML mapping such as {a: 1}")
        if len(args) == 2:
            return {coerce_value(f"{key} key", k, args[0]): coerce_value(f"{key}[{k}]", v, args[1])
                    for k, v in value.items()}
        return dict(value)
    return value  # an annotation we do not know: pass the parsed value through


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """``['steps=3', 'seeds=[0, 1]']`` -> ``{'steps': '3', 'seeds': '[0, 1]'}`` (split at the first ``=``)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"-p expects key=value (got {item!r}); e.g. -p num_inference_steps=50")
        out[key.strip()] = value
    return out


def resolve_parameters(
    spec: ExperimentSpec,
    overrides: dict[str, Any] | None = None,
    declared: dict[str, NotebookParameter] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge the experiment file's parameters and the overrides, checked against the notebook.

    Args:
        spec: the experiment.
        overrides: later overrides (the command line's ``-p``), text or typed; they win over the file.
        declared: the notebook's parameters (default: read from ``spec.notebook``).

    Returns:
        ``(inject, resolved)``: the values papermill injects (file + overrides, typed), and every parameter's
        value in the run (the notebook's defaults updated by ``inject``).

    Raises:
        ValueError: an unknown or mistyped key (with a close match and the known parameters), a value of the wrong
            type, ``run_dir`` given by hand, or overrides for a notebook without a parameters cell.
    """
    declared = notebook_parameters(spec.notebook) if declared is None else declared
    merged = {**spec.parameters, **(overrides or {})}
    if merged and not declared:
        raise ValueError(f"notebook {spec.notebook.name} has no cell tagged 'parameters'; tag one to accept "
                         f"{', '.join(merged)}")
    known = [n for n in declared if n != RUN_DIR_PARAMETER]
    inject: dict[str, Any] = {}
    for key, value in merged.items():
        origin = "-p" if overrides and key in overrides else spec.path.name
        if key == RUN_DIR_PARAMETER:
            raise ValueError(f"{origin}: '{RUN_DIR_PARAMETER}' is set by the runner to the run folder; remove it")
        if key not in declared:
            raise ValueError(f"{origin}: unknown parameter '{key}'{_did_you_mean(key, known)}; "
                             f"{spec.notebook.name} declares: {', '.join(known) or 'nothing'}")
        p = declared[key]
        try:
            inject[key] = coerce_value(key, value, p.type_name, p.default_value)
        except ValueError as error:
            raise ValueError(f"{origin}: {error}") from None
    resolved = {name: p.default_value for name, p in declared.items()}
    resolved.update(inject)
    return inject, resolved
