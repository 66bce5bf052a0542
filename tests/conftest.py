"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real public data sets, ``../shared/data`` from the project root.

    The data is not copied into the project, so a checkout without it skips the tests that need
    it; on CI (``CI=true``) a missing folder is a failure, so the tests cannot silently vanish.
    """
    if not SHARED_DATA.is_dir():
        reason = f"../shared/data not present: expected the public data sets at {SHARED_DATA}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return SHARED_DATA
