"""Job-style compressed index ranges: the resume source of truth, so they must round-trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkterm.engine.indexes import compress, expand


def test_consecutive_indexes_collapse_into_ranges_like_job_completed_indexes():
    assert compress([0, 1, 2, 3, 46, 5, 4, 44]) == "0-5,44,46"


def test_two_neighbours_form_a_range():
    assert compress([7, 8]) == "7-8"


def test_nothing_compresses_to_the_empty_string():
    assert compress([]) == ""
    assert expand("") == []
    assert expand(None) == []


def test_duplicates_are_harmless():
    assert compress([3, 3, 4]) == "3-4"


@pytest.mark.parametrize("bad", ["1-", "a", "3-1", "1,,2", "-1", "1 2"])
def test_malformed_ranges_are_rejected_rather_than_guessed(bad):
    with pytest.raises(ValueError):
        expand(bad)


def test_negative_indexes_cannot_be_compressed():
    with pytest.raises(ValueError):
        compress([-1])


@given(st.sets(st.integers(0, 20_000), max_size=300))
def test_compress_then_expand_gives_back_the_same_indexes(found):
    assert expand(compress(found)) == sorted(found)


@given(st.sets(st.integers(0, 500), max_size=100))
def test_expand_then_compress_is_canonical(found):
    text = compress(found)
    assert compress(expand(text)) == text
