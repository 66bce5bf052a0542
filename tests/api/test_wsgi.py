"""The server entry point ``api.wsgi``: an app, and the cycle collector tuned for a server."""

from __future__ import annotations

import gc
import importlib
import sys

import pytest


@pytest.fixture
def wsgi(monkeypatch, tmp_path):
    """``api.wsgi`` imported afresh on a database of its own, the collector put back after."""
    before = gc.get_threshold()
    monkeypatch.setenv("BLOCKWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'wsgi.db'}")
    monkeypatch.delenv("BLOCKWATCH_GC_GEN0_THRESHOLD", raising=False)
    sys.modules.pop("api.wsgi", None)
    try:
        yield importlib.import_module("api.wsgi")
    finally:
        sys.modules.pop("api.wsgi", None)
        gc.set_threshold(*before)


def test_importing_it_makes_the_app_and_raises_the_first_threshold(wsgi) -> None:
    assert wsgi.app.extensions["blockwatch.db"] is not None
    assert wsgi.app.url_map.bind("localhost").match("/v1/sync/pull", method="POST")
    assert gc.get_threshold()[0] == wsgi.DEFAULT_GC_GEN0_THRESHOLD


def test_the_threshold_comes_from_the_environment_and_zero_leaves_pythons(wsgi) -> None:
    gc.set_threshold(700, 10, 10)
    wsgi.tune_collector({"BLOCKWATCH_GC_GEN0_THRESHOLD": "0"})
    assert gc.get_threshold() == (700, 10, 10)
    wsgi.tune_collector({"BLOCKWATCH_GC_GEN0_THRESHOLD": "12345"})
    assert gc.get_threshold() == (12345, 10, 10)  # the older generations keep their ratios


def test_a_threshold_that_is_not_a_number_is_named(wsgi) -> None:
    with pytest.raises(ValueError, match="BLOCKWATCH_GC_GEN0_THRESHOLD"):
        wsgi.tune_collector({"BLOCKWATCH_GC_GEN0_THRESHOLD": "lots"})
