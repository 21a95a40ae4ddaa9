"""The layout keeps its layers: no module imports a layer above its own, and nothing below the CLI prints.

The layers are the ones the README's "Developing wanvid" section draws; every import statement in the
package counts, those inside functions and under ``TYPE_CHECKING`` too (a lazy import is still an arrow).
"""

import ast
import functools
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "wanvid"

# Each layer and the layers it may import (besides itself). One way down; the sandbox stands beside the stack.
BASE = {"errors", "redact", "report"}
ALLOWED = {
    "errors": set(),
    "redact": set(),
    "report": {"errors", "redact", "rules"},  # rules: the Task type its views are told about
    "config": {"errors", "redact"},
    "rules": {"errors", "redact", "config"},  # not report: report knows the Task type, so no cycle
    "store": BASE | {"config", "rules"},
    "gateway": BASE | {"config", "rules", "store"},
    "jobs": BASE | {"config", "rules", "store", "gateway"},
    "api": BASE | {"config", "rules", "store", "gateway", "jobs"},
    "cli": BASE | {"config", "rules", "store", "gateway", "jobs", "sandbox", "api"},
    "sandbox": BASE | {"config", "rules"},
    "__main__": {"cli"},
    "__init__": BASE | {"api", "jobs", "rules"},
}


def layer(module: str) -> str:
    """``wanvid.gateway.client`` -> ``gateway``; ``wanvid`` itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        found.append((name, path))
    return found


def imports(path: Path, name: str) -> list[tuple[int, str]]:
    """Every wanvid module ``path`` imports, with its line; relative imports resolved against ``name``."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "wanvid"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "wanvid":
                continue
            if target == "wanvid":  # from wanvid import config, redact, __version__
                out += [(node.lineno, f"wanvid.{a.name}") for a in node.names if a.name != "__version__"]
            else:
                out.append((node.lineno, target))
    return out


def test_the_layers_are_all_known() -> None:
    assert {layer(name) for name, _ in modules()} <= set(ALLOWED), "a new top-level module needs a layer here"


@pytest.mark.parametrize(("name", "path"), modules(), ids=[name for name, _ in modules()])
def test_no_module_imports_a_layer_above_its_own(name: str, path: Path) -> None:
    mine = layer(name)
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} ({layer(target)} is not below {mine})"
        for line, target in imports(path, name)
        if layer(target) != mine and layer(target) not in ALLOWED[mine]
    ]
    assert not wrong, "\n".join(wrong)


PRINTS = re.compile(r"\bprint\s*\(|\bsys\.(__)?std(out|err)|from sys import .*std|^\s*(import rich|from rich)", re.M)


@pytest.mark.parametrize(("name", "path"), modules(), ids=[name for name, _ in modules()])
def test_nothing_below_the_cli_prints_or_imports_rich(name: str, path: Path) -> None:
    if layer(name) in ("cli", "__main__"):
        return
    code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith(("#", ">>>")))
    # Docstrings may show examples: look at code only.
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            code = code.replace(node.value.value, "")
    found = [m.group(0) for m in PRINTS.finditer(code)]
    assert not found, f"{path.relative_to(PACKAGE.parent)} writes to a stream or imports rich: {found}"


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The checks above can fail: a gateway module importing the CLI is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from wanvid.cli.output import Output\n")
    (line, target), *_ = imports(bad, "wanvid.gateway.bad")
    assert (line, layer(target)) == (2, "cli")
    assert layer(target) not in ALLOWED["gateway"]


@functools.cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def calls(name: str) -> dict[str, set[str]]:
    """Which functions of which modules call ``name`` (``module:function``, nested functions by their outer one)."""
    found: dict[str, set[str]] = {}
    for module, path in modules():
        tree = parsed(path)
        for top in ast.walk(tree):
            if not isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            for node in ast.walk(top):
                if isinstance(node, ast.Call):
                    func = node.func
                    called = (
                        func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                    )
                    if called == name:
                        found.setdefault(module, set()).add(top.name)
    return found


def test_the_steps_of_a_video_are_put_together_in_one_place() -> None:
    """Waiting for a task and saving its video happen only inside the job pipeline; run, download and every
    batch row reach them through make_video (create, which only pays, calls submit_or_reuse itself)."""
    assert set(calls("save_video")) == {"wanvid.jobs.pipeline"}
    assert set(calls("run_hook")) == {"wanvid.jobs.pipeline"}
    assert set(calls("wait_task")) == {"wanvid.jobs.pipeline"}
    assert set(calls("submit_or_reuse")) == {"wanvid.jobs.pipeline", "wanvid.cli.tasks", "wanvid.api"}
    assert calls("submit_or_reuse")["wanvid.cli.tasks"] == {"create"}
    users = calls("make_video")
    assert "_make" in users["wanvid.cli.tasks"]  # run_ and download go through _make
    assert {"run_", "download"} <= calls("_make")["wanvid.cli.tasks"]
    assert "_Worker" in users["wanvid.jobs.batch"]  # every batch row
    assert {"run", "download"} <= users["wanvid.api"]
