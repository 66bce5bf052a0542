"""The shared argument checks: the one-pass UUID list check must never let a bad item through."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockwatch.checks import are_canonical_uuids, check_uuid
from blockwatch.domain import ValidationError

A, B = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.mark.parametrize("values", [[], [A], [A, B], (A, B)])
def test_canonical_lists_pass(values) -> None:
    assert are_canonical_uuids(values)


@pytest.mark.parametrize("values", [
    [f"{A},{B}"],  # two ids in one item: the joined text alone would look fine
    [A, f"{A},{B}"[:-1]],
    [A.upper()],  # valid, but not canonical: goes the slow way
    [A, 1],
    [A, None],
    [A + " "],
    [A[:-1]],
    [f"{A}{B}"],
    "not a list",
    None,
])
def test_anything_else_fails(values) -> None:
    assert not are_canonical_uuids(values)


@given(st.lists(st.one_of(st.uuids().map(str), st.text(max_size=80)), max_size=6))
def test_agrees_with_checking_each_item(values: list[str]) -> None:
    def canonical(value: str) -> bool:
        try:
            return check_uuid(value) == value
        except ValidationError:
            return False

    assert are_canonical_uuids(values) == all(canonical(value) for value in values)
