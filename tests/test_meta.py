"""The test suite checks itself: no test function may pass without checking anything."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_tests", REPO / "tools" / "check_tests.py")
assert _spec is not None and _spec.loader is not None
check_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_tests)


def flagged(source: str) -> list[str]:
    return [line.split()[-1] for line in check_tests.check_source(textwrap.dedent(source))]


def test_every_test_in_the_suite_checks_something():
    problems = check_tests.check_paths(sorted((REPO / "tests").rglob("test_*.py")))
    assert problems == [], "tests that check nothing:\n" + "\n".join(problems)


def test_checker_flags_tests_that_only_run_code():
    source = """
        import numpy as np
        import pytest
        from numpy import testing as npt
        from sklearn.utils import estimator_checks as ec

        def _helper(x):
            assert x > 0

        def _runs_only(x):
            return x + 1

        def _calls_helper(x):
            _helper(x)

        def test_runs_only():
            _runs_only(1)

        def test_assert_true():
            _runs_only(1)
            assert True

        def test_swallows_everything():
            try:
                _runs_only(1)
            except Exception:
                pass

        def test_plain_assert():
            assert _runs_only(1) == 2

        def test_raises():
            with pytest.raises(TypeError):
                _runs_only(None)

        def test_numpy_testing():
            np.testing.assert_allclose(_runs_only(1), 2)

        def test_module_alias():
            npt.assert_array_equal([1], [1])

        def test_getattr_on_check_module():
            getattr(ec, "check_estimator_repr")("x", object())

        def test_helper_two_levels_down():
            _calls_helper(3)

        class TestGroup:
            def test_method_without_check(self):
                _runs_only(1)

            def test_method_with_check(self):
                assert _runs_only(0) == 1
        """
    assert flagged(source) == [
        "test_runs_only",
        "test_assert_true",
        "test_swallows_everything",
        "TestGroup.test_method_without_check",
    ]


def test_checker_follows_helpers_imported_from_other_test_files(tmp_path):
    (tmp_path / "helpers.py").write_text("def expect_two(x):\n    assert x == 2\n\ndef quiet(x):\n    return x\n")
    (tmp_path / "test_a.py").write_text(
        "from .helpers import expect_two, quiet\n\n"
        "def test_checked():\n    expect_two(2)\n\n"
        "def test_unchecked():\n    quiet(2)\n"
    )
    problems = check_tests.check_paths([tmp_path / "test_a.py"])
    assert [p.split()[-1] for p in problems] == ["test_unchecked"]
    assert check_tests.main([str(tmp_path / "test_a.py")]) == 1
