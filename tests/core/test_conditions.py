"""The condition language: parsing, evaluation, errors with columns."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from waystation.conditions import parse_condition
from waystation.errors import ConditionSyntaxError


@pytest.mark.parametrize(
    ("source", "data", "expected"),
    [
        ("zipcode exists", {"zipcode": "02142"}, True),
        ("zipcode exists", {"zipcode": ""}, False),
        ("zipcode exists", {"zipcode": None}, False),
        ("zipcode exists", {}, False),
        ("phone not exists", {}, True),
        ("phone not exists", {"phone": "+14155550100"}, False),
        ("age > 30", {"age": 45}, True),
        ("age > 30", {"age": "45"}, True),  # CSV text compares as a number
        ("age > 30", {"age": "n/a"}, False),  # not comparable: false, no crash
        ("age > 30", {}, False),
        ("age <= 30.5", {"age": 30.5}, True),
        ("state == 'NY'", {"state": "NY"}, True),
        ('state != "NY"', {"state": "CA"}, True),
        ("state in ['NY', 'CA']", {"state": "CA"}, True),
        ("state not in ['NY', 'CA']", {"state": "TX"}, True),
        ("state not in ['NY']", {}, True),
        ("dnc.listed == true", {"dnc": {"listed": True}}, True),
        ("dnc.listed == true", {"dnc": None}, False),
        ("email == null", {}, True),
        ("email != null", {"email": "a@b.co"}, True),
        ("not (a exists or b exists)", {}, True),
        ("a exists and not b exists or c == 1", {"c": 1}, True),
        ("a exists and (b exists or c == 1)", {"a": 1, "c": 2}, False),
        ("NOT a EXISTS", {}, True),
    ],
)
def test_evaluate(source: str, data: dict, expected: bool) -> None:
    assert parse_condition(source).evaluate(data) is expected


def test_fields_referenced() -> None:
    cond = parse_condition("zipcode exists and (dnc.listed == false or phone not exists)")
    assert cond.fields == {"zipcode", "dnc", "phone"}


@pytest.mark.parametrize(
    ("source", "column", "fragment"),
    [
        ("", 1, "empty condition"),
        ("age >", 6, "expected a value"),
        ("age >> 3", 6, "expected a value"),
        ("zipcode exist", 9, "expected 'exists'"),
        ("(a exists", 10, "expected ')'"),
        ("a exists b exists", 10, "unexpected 'b'"),
        ("a in [1, 2", 11, "expected ',' or ']'"),
        ("a == 1 and", 11, "expected a field name"),
        ("a == __import__('os')", 6, "expected a value"),
        ("a $ 1", 3, "unexpected character '$'"),
    ],
)
def test_malformed(source: str, column: int, fragment: str) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition(source)
    assert info.value.column == column
    assert fragment in str(info.value)


@given(st.text(max_size=40))
def test_never_crashes_on_garbage(source: str) -> None:
    try:
        cond = parse_condition(source)
    except ConditionSyntaxError:
        return
    assert isinstance(cond.evaluate({"a": 1, "b": "x"}), bool)
