"""The shared argument checks: the one-pass UUID list check must never let a bad item through."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockwatch.checks import are_canonical_uuids, check_uuid
from blockwatch.domain import ValidationError

A, B = str(uuid.uuid4()), str(uuid.uuid4())


def canonical(value: str) -> bool:
    """What the one-pass check must agree with: the item checked on its own."""
    try:
        return check_uuid(value) == value
    except ValidationError:
        return False


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
    assert are_canonical_uuids(values) == all(canonical(value) for value in values)


@given(
    st.lists(st.uuids().map(str), min_size=1, max_size=5),
    st.data(),
)
def test_one_character_off_is_caught(ids: list[str], data) -> None:
    """Near misses the joined check must see: one character of one id replaced by a dash, a
    comma, an upper-case or non-ASCII letter, or an id cut short while its neighbour grows."""
    index = data.draw(st.integers(0, len(ids) - 1))
    position = data.draw(st.integers(0, 35))
    if data.draw(st.booleans()) and index + 1 < len(ids):
        moved = ids[index][position]
        ids[index] = ids[index][:position] + ids[index][position + 1:]
        ids[index + 1] = moved + ids[index + 1]
    else:
        swap = data.draw(st.sampled_from(["-", ",", "A", "g", " ", "é", "0"]))
        ids[index] = ids[index][:position] + swap + ids[index][position + 1:]

    assert are_canonical_uuids(ids) == all(canonical(value) for value in ids)
