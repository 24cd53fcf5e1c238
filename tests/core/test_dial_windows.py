"""Calling windows: federal and stricter state hours, several zones, DST changes, the date line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from waystation.dial.windows import load_rules, next_window, parse_rules


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_shipped_rules_have_sources_and_the_stricter_states() -> None:
    rules = load_rules()
    assert (rules.federal.start.hour, rules.federal.end.hour) == (8, 21)
    assert "64.1200" in rules.federal.source and "310.4" in rules.federal.source
    for state, statute in (("FL", "501.616"), ("OK", "775C")):
        rule = rules.states[state]
        assert (rule.start.hour, rule.end.hour, rule.max_calls_24h) == (8, 20, 3)
        assert statute in rule.source
    raw = json.loads((Path(__file__).resolve().parents[2] / "core/waystation/dial/state_rules.json").read_text())
    assert all(v.get("source") for v in raw["states"].values())


def test_before_during_and_after_the_federal_window() -> None:
    ny = ["America/New_York"]
    before = next_window(ny, [], utc(2026, 12, 1, 12, 0))  # 07:00 EST
    assert before is not None
    assert (before.start, before.end) == (utc(2026, 12, 1, 13, 0), utc(2026, 12, 2, 2, 0))
    assert before.start_local.isoformat() == "2026-12-01T08:00:00-05:00"
    assert before.end_local.isoformat() == "2026-12-01T21:00:00-05:00"
    during = next_window(ny, [], utc(2026, 12, 1, 15, 30))
    assert during is not None and during.start == utc(2026, 12, 1, 15, 30) and during.open_at(utc(2026, 12, 1, 15, 30))
    after = next_window(ny, [], utc(2026, 12, 2, 3, 0))  # 22:00 EST on Dec 1
    assert after is not None and after.start == utc(2026, 12, 2, 13, 0)


def test_los_angeles_and_other_zones() -> None:
    la = next_window(["America/Los_Angeles"], [], utc(2026, 12, 1, 12, 0))  # 04:00 PST
    assert la is not None and la.start == utc(2026, 12, 1, 16, 0) and la.end == utc(2026, 12, 2, 5, 0)
    hi = next_window(["Pacific/Honolulu"], [], utc(2026, 12, 1, 12, 0))  # 02:00 HST
    assert hi is not None and hi.start == utc(2026, 12, 1, 18, 0)


def test_florida_ends_at_8pm_and_fits_both_of_its_zones() -> None:
    w = next_window(["America/New_York"], ["FL"], utc(2026, 12, 1, 12, 0))
    assert w is not None
    # 08:00 Central = 09:00 Eastern; 20:00 Eastern closes it
    assert (w.start, w.end) == (utc(2026, 12, 1, 14, 0), utc(2026, 12, 2, 1, 0))
    assert w.end_local.hour == 20 and w.max_calls_24h == 3
    assert "FL 08:00-20:00" in w.describe() and "America/Chicago" in w.zones
    # at 20:30 Eastern the federal window would still be open, Florida's is not
    late = next_window(["America/New_York"], ["FL"], utc(2026, 12, 2, 1, 30))
    assert late is not None and late.start == utc(2026, 12, 2, 14, 0)
    federal = next_window(["America/New_York"], [], utc(2026, 12, 2, 1, 30))
    assert federal is not None and federal.start == utc(2026, 12, 2, 1, 30)


def test_oklahoma_8am_to_8pm_central() -> None:
    w = next_window(["America/Chicago"], ["ok"], utc(2026, 7, 1, 12, 0))  # 07:00 CDT
    assert w is not None
    assert (w.start, w.end) == (utc(2026, 7, 1, 13, 0), utc(2026, 7, 2, 1, 0))
    assert w.start_local.isoformat() == "2026-07-01T08:00:00-05:00" and w.max_calls_24h == 3


def test_state_without_a_rule_gets_the_federal_window() -> None:
    w = next_window(["America/New_York"], ["ME"], utc(2026, 12, 1, 12, 0))
    assert w is not None and w.end == utc(2026, 12, 2, 2, 0) and w.max_calls_24h is None


def test_spring_forward() -> None:
    # 2026-03-08: US clocks go from 02:00 EST to 03:00 EDT
    w = next_window(["America/New_York"], [], utc(2026, 3, 8, 2, 30))  # 21:30 EST on Mar 7
    assert w is not None
    assert w.start == utc(2026, 3, 8, 12, 0)  # 08:00 EDT, one hour earlier in UTC than the day before
    assert w.start_local.isoformat() == "2026-03-08T08:00:00-04:00"
    assert w.end == utc(2026, 3, 9, 1, 0)
    day_before = next_window(["America/New_York"], [], utc(2026, 3, 7, 12, 0))
    assert day_before is not None and day_before.start == utc(2026, 3, 7, 13, 0)


def test_fall_back() -> None:
    # 2026-11-01: US clocks go from 02:00 EDT back to 01:00 EST
    w = next_window(["America/New_York"], [], utc(2026, 11, 1, 1, 30))  # 21:30 EDT on Oct 31
    assert w is not None
    assert w.start == utc(2026, 11, 1, 13, 0) and w.start_local.isoformat() == "2026-11-01T08:00:00-05:00"


def test_date_line_guam_is_a_day_ahead() -> None:
    # 23:00 UTC on Dec 1 is 09:00 on Dec 2 in Guam (UTC+10): the window is open now
    w = next_window(["Pacific/Guam"], [], utc(2026, 12, 1, 23, 0))
    assert w is not None and w.start == utc(2026, 12, 1, 23, 0)
    assert w.start_local.date().isoformat() == "2026-12-02"
    assert w.end == utc(2026, 12, 2, 11, 0)
    # American Samoa (UTC-11) at 10:00 UTC on Dec 1 is 23:00 on Nov 30
    s = next_window(["Pacific/Pago_Pago"], [], utc(2026, 12, 1, 10, 0))
    assert s is not None and s.start == utc(2026, 12, 1, 19, 0)
    assert s.start_local.isoformat() == "2026-12-01T08:00:00-11:00"


def test_zones_on_both_sides_of_the_date_line_share_a_window() -> None:
    w = next_window(["Pacific/Guam", "Pacific/Pago_Pago"], [], utc(2026, 12, 1, 12, 0))
    assert w is not None
    assert (w.start, w.end) == (utc(2026, 12, 1, 22, 0), utc(2026, 12, 2, 8, 0))
    # 08:00 in Guam on Dec 2 is 11:00 in Pago Pago on Dec 1
    assert w.start_local.isoformat() == "2026-12-02T08:00:00+10:00"


def test_no_common_window_or_no_known_zone() -> None:
    # two 13-hour windows always overlap on a 24-hour clock; three zones need not
    assert next_window(["America/New_York", "Asia/Tokyo", "Europe/London"], [], utc(2026, 12, 1, 12, 0)) is None
    assert next_window([], ["FL"], utc(2026, 12, 1, 12, 0)) is not None  # Florida's own zones
    assert next_window([], [], utc(2026, 12, 1, 12, 0)) is None
    assert next_window(["Not/AZone"], [], utc(2026, 12, 1, 12, 0)) is None


def test_a_rule_without_a_source_is_refused() -> None:
    with pytest.raises(ValueError, match="source"):
        parse_rules({"federal": {"start": "08:00", "end": "21:00", "source": ""}})
    with pytest.raises(ValueError, match="not before"):
        parse_rules({"federal": {"start": "21:00", "end": "08:00", "source": "x"}})


ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
         "America/Anchorage", "Pacific/Honolulu", "Pacific/Guam", "Pacific/Pago_Pago", "America/Puerto_Rico"]


@settings(max_examples=150, deadline=None)
@given(zone=st.sampled_from(ZONES), state=st.sampled_from(["", "FL", "OK", "TX"]),
       minutes=st.integers(0, 60 * 24 * 400))
def test_window_is_always_inside_the_local_hours(zone: str, state: str, minutes: int) -> None:
    now = utc(2026, 1, 1) + timedelta(minutes=minutes)
    w = next_window([zone], [state] if state else [], now)
    assert w is not None and now <= w.start < w.end
    last_hour = 20 if state in ("FL", "OK") else 21
    for z in w.zones:
        from zoneinfo import ZoneInfo

        a, b = w.start.astimezone(ZoneInfo(z)), (w.end - timedelta(seconds=1)).astimezone(ZoneInfo(z))
        assert 8 <= a.hour < last_hour and 8 <= b.hour < last_hour
    assert w.start - now < timedelta(hours=25)
