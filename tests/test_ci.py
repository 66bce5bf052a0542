"""tests.ci: a missing dependency skips a test outside CI and fails it on CI."""

from __future__ import annotations

import pytest

from tests.ci import on_ci, skip_unless_ci


@pytest.mark.parametrize("value", ["true", "1", "True", "yes", "github-actions"])
def test_on_ci_a_missing_dependency_fails_the_test(monkeypatch, value) -> None:
    monkeypatch.setenv("CI", value)
    assert on_ci()
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL is not reachable"):
        skip_unless_ci("PostgreSQL is not reachable")


@pytest.mark.parametrize("value", [None, "", "0", "false", "FALSE", "no"])
def test_elsewhere_it_skips_with_the_reason(monkeypatch, value) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not on_ci()
    with pytest.raises(pytest.skip.Exception, match=r"Node\.js is not installed"):
        skip_unless_ci("Node.js is not installed")
