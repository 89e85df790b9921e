"""The house rules of a cogfun notebook, checked without running it (STYLE.md rules 4 and 5).

A notebook in ``notebooks/`` must:

1. be named ``NN_snake_case.ipynb`` and name the ``python3`` kernel (nbval and papermill start that kernel);
2. open with a markdown title that asks the notebook's question (``# Which embedding resize ...?``);
3. hold exactly one code cell tagged ``parameters`` in which every statement is a typed literal assignment with a
   comment, ``num_inference_steps: int = 2  # denoising steps``, written so papermill sees it (one ``=`` per
   line; papermill silently skips ``int | None`` or ``Literal[...]``) and so it runs without imports (the
   annotation is evaluated: use ``int``, ``float``, ``str``, ``bool``, ``list[int]``, ``dict[str, float]``,
   ``tuple[int, int]``; for "none" use ``""`` or ``-1`` rather than ``Optional``);
4. define nothing and patch nothing: no ``def``, ``class``, ``sys.path`` edits, ``os.chdir`` or ``%autoreload``
   in code cells (a helper belongs in the package, with a test);
5. check itself: at least one ``assert`` in its code cells (nbval ``--nbval-lax`` compares no outputs).

An experiment file must name an existing notebook and only parameters that notebook declares, with values of the
declared types (``cogfun.experiments.spec.resolve_parameters``).
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import tokenize
from pathlib import Path

NAME_PATTERN = re.compile(r"^\d{2}_[a-z0-9_]+\.ipynb$")
KERNEL = "python3"
_MAGIC = re.compile(r"^\s*[%!]")
#: Annotation names a parameters cell can evaluate without an import.
BUILTIN_TYPES = {"int", "float", "str", "bool", "list", "dict", "tuple"}
_AUTORELOAD = re.compile(r"^\s*%(load_ext\s+autoreload|autoreload)\b", re.MULTILINE)


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _parse(source: str) -> ast.Module | None:
    """Parse a code cell, with IPython magics and shell lines replaced by ``pass`` (same line numbers)."""
    lines = ["pass" if _MAGIC.match(line) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _comment_lines(source: str) -> set[int]:
    """Line numbers (1-based) that carry a ``#`` comment after code."""
    lines: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                lines.add(tok.start[0])
    except (tokenize.TokenError, IndentationError):
        pass
    return lines


def check_parameters_cell(source: str) -> list[str]:
    """Problems in a parameters cell's source (``[]`` when it follows rule 3).

    Args:
        source: the cell's text.
    """
    from papermill.translators import PythonTranslator

    problems: list[str] = []
    tree = _parse(source)
    if tree is None:
        return ["parameters cell: does not parse as Python"]
    comments = _comment_lines(source)
    lines = source.splitlines()
    names = []
    for stmt in tree.body:
        where = f"parameters cell line {stmt.lineno}: {lines[stmt.lineno - 1].strip()!r}"
        if isinstance(stmt, ast.Assign):
            problems.append(f"{where}: add a type annotation (name: int = 2  # what it is)")
            continue
        if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name) or stmt.value is None:
            problems.append(f"{where}: only typed literal assignments belong here (name: int = 2  # what it is)")
            continue
        names.append(stmt.target.id)
        used = {n.id for n in ast.walk(stmt.annotation) if isinstance(n, ast.Name)}
        if used - BUILTIN_TYPES or not isinstance(stmt.annotation, (ast.Name, ast.Subscript)):
            problems.append(f"{where}: annotate with {', '.join(sorted(BUILTIN_TYPES))} (or list[int] ...): the "
                            f"cell runs without imports; for 'none' use \"\" or -1")
        try:
            ast.literal_eval(stmt.value)
        except (ValueError, TypeError, SyntaxError):
            problems.append(f"{where}: the value must be a literal (a number, string, bool, None, list, dict)")
        if stmt.end_lineno not in comments:
            problems.append(f"{where}: add a comment saying what it is (name: int = 2  # what it is)")
    seen = {p.name for p in PythonTranslator.inspect({"source": source})}
    for name in names:
        if name not in seen:
            problems.append(f"parameters cell: papermill cannot read '{name}' (one '=' per line and a plain "
                            f"annotation such as int or list[int]; not 'X | None' or Literal[...])")
    return problems


def check_notebook(path: str | os.PathLike) -> list[str]:
    """Every house-rule violation of one notebook (``[]`` when it follows them all).

    Args:
        path: the ``.ipynb`` file.

    Returns:
        one line per problem, each naming the rule and the fix.
    """
    path = Path(path)
    nb = json.loads(path.read_text())
    cells = nb.get("cells", [])
    problems: list[str] = []

    # 1. Name and kernel.
    if not NAME_PATTERN.match(path.name):
        problems.append(f"name: {path.name} should be NN_snake_case.ipynb (e.g. 03_embedding_resize.ipynb)")
    kernel = (nb.get("metadata", {}).get("kernelspec") or {}).get("name")
    if kernel != KERNEL:
        problems.append(f"kernel: metadata.kernelspec.name is {kernel!r}; set it to '{KERNEL}' (save the notebook "
                        f"from the cogfun venv's 'Python 3 (ipykernel)')")

    # 2. A title that asks a question.
    first = cells[0] if cells else {}
    heading = next((line for line in _source(first).splitlines() if line.startswith("# ")), None)
    if first.get("cell_type") != "markdown" or heading is None:
        problems.append("title: the first cell must be markdown starting with a '# ' title that asks the question")
    elif not heading.rstrip().endswith("?"):
        problems.append(f"title: {heading.strip()!r} should be a question (end it with '?')")

    # 3. Exactly one parameters cell of typed, commented literals.
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        problems.append(f"parameters: {len(tagged)} cells tagged 'parameters' (cells {tagged}); tag exactly one")
    for i in tagged:
        if cells[i].get("cell_type") != "code":
            problems.append(f"parameters: cell {i} is tagged 'parameters' but is not a code cell")
        else:
            problems.extend(check_parameters_cell(_source(cells[i])))

    # 4. and 5. Code cells: no definitions or path tricks; at least one assert.
    asserts = 0
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        source = _source(cell)
        if _AUTORELOAD.search(source):
            problems.append(f"cell {i}: no %autoreload; restart the kernel after changing the package")
        tree = _parse(source)
        if tree is None:
            problems.append(f"cell {i}: does not parse as Python")
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                kind = "class" if isinstance(node, ast.ClassDef) else "def"
                problems.append(f"cell {i}: no {kind} in notebooks ({kind} {node.name}); move it into the "
                                f"cogfun package with a test")
            elif isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", "") == "sys":
                problems.append(f"cell {i}: no sys.path edits; install the package (pip install -e .)")
            elif isinstance(node, ast.Attribute) and node.attr == "chdir" and getattr(node.value, "id", "") == "os":
                problems.append(f"cell {i}: no os.chdir; resolve paths from the package and write to run_dir")
            elif isinstance(node, ast.Assert):
                asserts += 1
    if asserts == 0:
        problems.append("asserts: no assert in any code cell; check a real value (nbval --nbval-lax compares no "
                        "outputs)")
    return problems


def check_experiment_file(path: str | os.PathLike) -> list[str]:
    """Problems of an experiment file: a missing notebook, unknown parameters, values of the wrong type.

    Args:
        path: the ``experiments/<name>.yaml`` file.
    """
    from .spec import load_experiment, resolve_parameters

    try:
        resolve_parameters(load_experiment(str(path)))
    except ValueError as error:
        return [str(error)]
    return []
