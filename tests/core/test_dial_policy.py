"""Evidence and verdicts: missing or expired evidence is never a yes; listed or reassigned is a no."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from waystation.dial import decide, policy, recheck, refusal
from waystation.dial import evidence as ev

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 in New York
PHONE = "+12125550123"


def item(check: str, result: str, *, age_days: float = 1, valid_days: float = 31, phone: str = PHONE,
         **kw: Any) -> dict[str, Any]:
    checked = NOW - timedelta(days=age_days)
    return ev.make(check, result, station="Test", phone=phone, checked_at=checked,
                   expires_at=checked + timedelta(days=valid_days), file="212.txt", date=checked, **kw)


def lead(*evidence: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"phone": PHONE, "phone_timezone": "America/New_York", "state": "NY",
            ev.EVIDENCE_FIELD: list(evidence), **fields}


CLEAR = (item("federal_dnc", "not_listed"), item("internal_dnc", "not_listed"), item("line_type", "landline"))


def test_fresh_clear_evidence_is_yes_with_a_window() -> None:
    v = decide(lead(*CLEAR), policy("tsr-2025"), NOW)
    assert (v.eligible, v.reasons) == ("yes", [])
    fields = v.fields()
    assert fields["dial_eligible"] == "yes" and fields["dial_policy"] == "tsr-2025"
    assert fields["dial_window_start_utc"] == "2026-12-01T15:00:00+00:00"
    assert fields["dial_window_end_local"] == "2026-12-01T21:00-05:00"


def test_internal_list_is_no() -> None:
    v = decide(lead(item("federal_dnc", "not_listed"), item("internal_dnc", "listed"),
                    item("line_type", "landline")), policy("tsr-2025"), NOW)
    assert (v.eligible, v.reasons) == ("no", ["listed:internal_dnc"])


def test_listed_wins_over_missing_evidence() -> None:
    v = decide(lead(item("litigator", "listed")), policy("tsr-2025"), NOW)
    assert v.eligible == "no" and v.reasons == ["listed:litigator"]


def test_expired_registry_evidence_is_unknown_even_when_listed() -> None:
    stale = item("federal_dnc", "listed", age_days=40)
    v = decide(lead(stale, item("internal_dnc", "not_listed"), item("line_type", "landline")), policy(), NOW)
    assert (v.eligible, v.reasons) == ("unknown", ["expired:federal_dnc"])


def test_missing_and_not_loaded_checks_are_unknown() -> None:
    v = decide(lead(item("internal_dnc", "not_listed"), item("line_type", "landline")), policy(), NOW)
    assert v.eligible == "unknown" and v.reasons == ["missing:federal_dnc"]
    v = decide(lead(item("federal_dnc", "not_loaded"), *CLEAR[1:]), policy(), NOW)
    assert v.eligible == "unknown" and v.reasons == ["not_loaded:federal_dnc"]


def test_wireless_without_consent_date_is_unknown_with_that_reason() -> None:
    base = (CLEAR[0], CLEAR[1], item("line_type", "wireless", vendor="telnyx"))
    v = decide(lead(*base), policy("tsr-2025", wireless="consent-required"), NOW)
    assert (v.eligible, v.reasons) == ("unknown", ["wireless_without_consent"])
    assert decide(lead(*base, consent_date="2026-06-01"), policy(), NOW).eligible == "yes"
    assert decide(lead(*base, consent_date="2027-06-01"), policy(), NOW).reasons == ["consent_date_invalid"]
    assert decide(lead(*base, signed_on="2026-06-01"), policy(consent_field="signed_on"), NOW).eligible == "yes"
    assert decide(lead(*base), policy(wireless="ignore"), NOW).eligible == "yes"


def test_unknown_line_type_under_consent_required_is_unknown() -> None:
    v = decide(lead(*CLEAR[:2]), policy(), NOW)
    assert v.reasons == ["line_type_unknown"]


def test_reassigned_yes_is_no_and_no_data_is_unknown_when_required() -> None:
    pol = policy("tsr-2025", also_require=["reassigned"])
    assert "reassigned" in pol.require
    yes = decide(lead(*CLEAR, item("reassigned", "yes", vendor="fcc-rnd")), pol, NOW)
    assert (yes.eligible, yes.reasons) == ("no", ["reassigned"])
    nodata = decide(lead(*CLEAR, item("reassigned", "no_data")), pol, NOW)
    assert (nodata.eligible, nodata.reasons) == ("unknown", ["no_data:reassigned"])
    assert decide(lead(*CLEAR, item("reassigned", "no")), pol, NOW).eligible == "yes"
    assert decide(lead(*CLEAR), pol, NOW).reasons == ["missing:reassigned"]


def test_evidence_about_another_number_does_not_count() -> None:
    other = item("federal_dnc", "not_listed", phone="+13125550100")
    v = decide(lead(other, *CLEAR[1:]), policy(), NOW)
    assert v.reasons == ["missing:federal_dnc"]


def test_no_phone_and_no_time_zone() -> None:
    assert decide({"state": "NY"}, policy(), NOW).reasons == ["no_phone"]
    v = decide({**lead(*CLEAR), "phone_timezone": None}, policy(), NOW)
    assert (v.eligible, v.reasons) == ("unknown", ["no_time_zone"])
    assert decide({**lead(*CLEAR), "phone_timezone": None}, policy(window="ignore"), NOW).eligible == "yes"


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown dial policy"):
        policy("tsr-1999")


def test_evidence_travels_as_json_text_and_add_replaces_same_check() -> None:
    import json

    first = [item("federal_dnc", "listed")]
    again = ev.add(json.dumps(first), [item("federal_dnc", "not_listed"), item("internal_dnc", "not_listed")])
    assert [(e["check"], e["result"]) for e in again] == [("federal_dnc", "not_listed"), ("internal_dnc", "not_listed")]
    assert ev.invalid_items([{"check": "nonsense"}, *again]) == 1


CHECK = st.sampled_from(["federal_dnc", "internal_dnc", "litigator", "line_type", "reassigned", "state_dnc"])
RESULT = st.sampled_from(["listed", "not_listed", "not_loaded", "wireless", "landline", "yes", "no", "no_data"])


@settings(max_examples=300, deadline=None)
@given(items=st.lists(st.tuples(CHECK, RESULT, st.floats(0, 60), st.floats(0.5, 40)), max_size=8),
       extra=st.lists(st.sampled_from(["reassigned", "litigator", "state_dnc"]), max_size=3))
def test_yes_only_when_every_required_check_is_fresh_and_clear(items: list[Any], extra: list[str]) -> None:
    evs = [item(c, r, age_days=a, valid_days=v) for c, r, a, v in items]
    pol = policy("tsr-2025", also_require=extra, wireless="ignore")
    v = decide(lead(*evs), pol, NOW)
    fresh = [e for e in ev.items(evs) if not e.expired(NOW)]
    listed = any(e.result == "listed" and e.check != "line_type" and e.check != "reassigned" for e in fresh) or any(
        e.check == "reassigned" and e.result == "yes" for e in fresh)
    if v.eligible == "yes":
        for check in pol.require:
            latest = ev.latest(fresh, check)
            assert latest and latest[0].result in ("not_listed", "no", "wireless", "landline")
        assert not listed
    if listed:
        assert v.eligible == "no"


def test_recheck_downgrades_a_yes_whose_evidence_expired() -> None:
    data = {**lead(*CLEAR), **decide(lead(*CLEAR), policy(), NOW).fields()}
    later = NOW + timedelta(days=40)
    checked = recheck(data, later)
    assert checked.changed and checked.data["dial_eligible"] == "unknown"
    assert set(checked.expired) == {"federal_dnc", "internal_dnc", "line_type"}
    assert "expired:federal_dnc" in checked.data["dial_reasons"]
    # the window ended too: it moved to the next one
    assert checked.data["dial_window_start_utc"] >= later.isoformat(timespec="seconds")[:10]
    assert refusal(data, later) is not None and "federal_dnc" in str(refusal(data, later))
    assert refusal(data, NOW) is None
    assert recheck(data, NOW).data["dial_eligible"] == "yes"


def test_recheck_never_upgrades_and_ignores_leads_without_verdict() -> None:
    data = {**lead(item("internal_dnc", "listed")), "dial_eligible": "no", "dial_reasons": '["listed:internal_dnc"]'}
    assert recheck(data, NOW + timedelta(days=400)).data["dial_eligible"] == "no"
    plain = {"phone": PHONE}
    assert recheck(plain, NOW).changed is False and refusal(plain, NOW) is None
