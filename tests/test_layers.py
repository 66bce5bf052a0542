"""Layers point one way: api -> blockwatch -> geo. Checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys

import pytest

IMPORT_ALL = """
import importlib, pkgutil, sys
import {package}
for module in pkgutil.walk_packages({package}.__path__, "{package}."):
    if ".migrations" not in module.name:
        importlib.import_module(module.name)
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in {forbidden!r})))
"""


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("geo", ("blockwatch", "api", "flask", "werkzeug", "sqlalchemy")),
     ("blockwatch", ("api", "flask", "werkzeug", "flask_restx", "marshmallow"))],
)
def test_lower_layers_never_import_higher_ones(package, forbidden):
    code = IMPORT_ALL.format(package=package, forbidden=set(forbidden))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == ""
