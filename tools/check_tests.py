"""Find test functions that check nothing.

A test passes the check when its body (nested functions and lambdas included) contains at least
one of:

- an ``assert`` statement (not of a constant: ``assert True`` checks nothing);
- ``pytest.raises`` / ``pytest.warns`` / ``pytest.deprecated_call`` / ``pytest.fail``;
- a call whose name starts with ``assert`` (``np.testing.assert_allclose``,
  ``pd.testing.assert_frame_equal``, ``self.assertEqual``);
- a call into a module made of checks (``numpy.testing``, ``pandas.testing``, ``torch.testing``,
  ``sklearn.utils.estimator_checks``), also as ``getattr(module, name)(...)``;
- a call to a helper of the test files (same module, or imported from ``tests``) that itself
  passes this check.

Anything else (a test that only runs code and relies on "it did not raise") is reported with its
file and line. Usage: ``python tools/check_tests.py [tests/]``; exit status 1 when a test is
reported. ``tests/test_meta.py`` runs it over the suite.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Set, Tuple

_PYTEST_CHECKS = {"raises", "warns", "deprecated_call", "fail"}
# Modules whose every function raises AssertionError when its check fails.
_CHECK_MODULES = ("numpy.testing", "pandas.testing", "torch.testing", "sklearn.utils.estimator_checks")


def _check_module_aliases(tree: ast.Module) -> Set[str]:
    """Local names bound to one of the check modules by an import."""
    names: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname for a in node.names if a.asname and a.name in _CHECK_MODULES}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {a.asname or a.name for a in node.names if f"{node.module}.{a.name}" in _CHECK_MODULES}
    return names


def _call_name(call: ast.Call) -> Tuple[str, str]:
    """(dotted prefix, last name) of the called object, e.g. ("np.testing", "assert_allclose")."""
    parts: List[str] = []
    node = call.func
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    parts.reverse()
    if not parts:
        return "", ""
    return ".".join(parts[:-1]), parts[-1]


def _direct_check(node: ast.AST, pytest_names: Set[str], check_modules: Set[str]) -> bool:
    if isinstance(node, ast.Assert):
        return not isinstance(node.test, ast.Constant)  # `assert True` checks nothing
    if isinstance(node, ast.Call):
        prefix, name = _call_name(node)
        if name.startswith("assert"):
            return True
        if name in _PYTEST_CHECKS and (prefix == "pytest" or (not prefix and name in pytest_names)):
            return True
        if prefix and prefix.split(".")[0] in check_modules:
            return True
        func = node.func
        if (  # getattr(check_module, name)(...)
            isinstance(func, ast.Call)
            and isinstance(func.func, ast.Name)
            and func.func.id == "getattr"
            and func.args
            and isinstance(func.args[0], ast.Name)
            and func.args[0].id in check_modules
        ):
            return True
    return False


def _called_names(body: ast.AST) -> Set[str]:
    return {_call_name(n)[1] for n in ast.walk(body) if isinstance(n, ast.Call) and not _call_name(n)[0]}


class _Module:
    """The functions of one file, and which of them check something (transitively)."""

    def __init__(self, tree: ast.Module, imported: Dict[str, bool]) -> None:
        self.pytest_names = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "pytest"
            for alias in node.names
            if alias.name in _PYTEST_CHECKS
        }
        self.check_modules = _check_module_aliases(tree)
        self.functions: Dict[str, ast.AST] = {}
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[node.name] = node
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        self.functions[f"{node.name}.{item.name}"] = item
        self.checks: Dict[str, bool] = dict(imported)
        self._visiting: Set[str] = set()

    def function_checks(self, name: str) -> bool:
        if name in self.checks:
            return self.checks[name]
        node = self.functions.get(name)
        if node is None or name in self._visiting:
            return False
        self._visiting.add(name)
        found = any(_direct_check(n, self.pytest_names, self.check_modules) for n in ast.walk(node))
        if not found:
            found = any(self.function_checks(callee) for callee in _called_names(node) if callee != name)
        self._visiting.discard(name)
        self.checks[name] = found
        return found


def _test_functions(tree: ast.Module) -> Iterable[Tuple[str, ast.AST]]:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith("test"):
                    yield f"{node.name}.{item.name}", item


def _helper_modules(tree: ast.Module, tests_dir: Path) -> Dict[str, Path]:
    """Names imported from other files of the test folder -> that file."""
    out: Dict[str, Path] = {}
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        module = node.module
        if node.level:
            path = tests_dir / (module.replace(".", "/") + ".py")
        elif module.startswith("tests."):
            path = tests_dir / (module[len("tests.") :].replace(".", "/") + ".py")
        else:
            continue
        if path.is_file():
            for alias in node.names:
                out[alias.asname or alias.name] = path
    return out


def check_source(source: str, filename: str = "<test>", imported: Dict[str, bool] | None = None) -> List[str]:
    """``file:line name`` of every test function in ``source`` that checks nothing."""
    tree = ast.parse(source, filename)
    module = _Module(tree, imported or {})
    return [
        f"{filename}:{node.lineno} {name}"  # type: ignore[attr-defined]
        for name, node in _test_functions(tree)
        if not module.function_checks(name)
    ]


def check_paths(paths: Iterable[Path]) -> List[str]:
    problems: List[str] = []
    cache: Dict[Path, _Module] = {}

    def module_of(path: Path) -> _Module:
        if path not in cache:
            cache[path] = _Module(ast.parse(path.read_text(encoding="utf-8"), str(path)), {})
        return cache[path]

    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        imported = {
            name: module_of(helper_path).function_checks(name)
            for name, helper_path in _helper_modules(tree, path.parent).items()
        }
        problems += check_source(path.read_text(encoding="utf-8"), str(path), imported)
    return problems


def main(argv: List[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "tests"
    files = sorted(root.rglob("test_*.py")) if root.is_dir() else [root]
    problems = check_paths(files)
    for line in problems:
        print(f"{line}: checks nothing (no assert, pytest.raises/warns or assert_* call)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
