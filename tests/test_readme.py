"""The README's example runs as written."""

from __future__ import annotations

import doctest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_geo_example(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = doctest.testfile(str(ROOT / "README.md"), module_relative=False)
    assert result.attempted >= 7
    assert result.failed == 0


def test_demo_groups_fixture_is_valid():
    import geo

    groups = geo.read_geojson(ROOT / "fixtures" / "demo_groups.geojson")
    assert len(groups) == 31
    assert all(g.properties["name"] for g in groups)
