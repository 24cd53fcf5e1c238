"""Preflight (no plugin installed): input columns, --map, delimiter, encoding, keys, conditions, --fail-on."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from toys import make
from waystation import PluginHost, Route, RouteError, StationSettings, compile_route
from waystation.batch import BatchConfig, BatchRunner, compile_for_input
from waystation.failon import check_fail_on, parse_fail_on
from waystation.preflight import closest, delimiter_problem, parse_maps, preflight
from waystation.stores.memory import MemoryStore


class KeySettings(StationSettings):
    model_config = SettingsConfigDict(env_prefix="WSTEST_", extra="forbid", frozen=True)
    api_key: SecretStr | None = Field(default=None, validation_alias="WSTEST_VENDOR_KEY")


def host() -> PluginHost:
    h = PluginHost()
    h.add_stations([
        # a normaliser: reads phone, gives it back
        make("Normalize", {"phone": str}, optional=("phone",), value={"phone": "+14155550100"}),
        make("Gate", {"listed": bool}, requires=("phone",), gate=True, value={"listed": False}),
        make("Paid", {"email": str}, requires=("phone",), cost=0.01, settings=KeySettings,
             required_settings=("api_key",)),
        make("Income", {"income": int}, requires=("zipcode",)),
    ])
    return h


ROUTE = "name: r\nsteps:\n  - station: Normalize\n  - station: Gate\n  - station: Income\n" \
        "    condition: \"zipcode exists\"\n"


def plan(text: str = ROUTE, fields: Any = None) -> Any:
    return compile_route(Route.from_text(text, "r.yaml"), host(), fields)


def test_closest_column() -> None:
    assert closest("phone", ["id", "Phone Number", "zip"]) == "Phone Number"
    assert closest("zipcode", ["zip_code", "name"]) == "zip_code"
    assert closest("zipcod", {"zipcode", "phone"}) == "zipcode"
    assert closest("email", ["id", "name"]) is None


def test_a_required_column_a_normaliser_only_passes_on_is_an_error_with_the_map() -> None:
    p = plan(fields=["id", "Phone Number", "zipcode"])
    found = preflight(p, ["id", "Phone Number", "zipcode"], what="leads.csv")
    assert [e.message for e in found.errors] == [
        "step 'Gate' requires 'phone', which leads.csv does not have (step 'Normalize' only normalises it); "
        "its columns: id, Phone Number, zipcode: 'Phone Number' looks like 'phone': add --map "
        "'Phone Number=phone'"]
    assert preflight(p, ["id", "phone", "zipcode"]).ok


def test_standard_input_fields_never_hide_a_missing_column_once_the_input_is_known() -> None:
    p = plan()  # compiled against the standard fields: fine without an input
    assert preflight(p, None).ok
    assert not preflight(p, ["id", "name"]).ok


def test_a_condition_field_typo_is_a_warning_without_input_and_an_error_with_it() -> None:
    text = ROUTE.replace("zipcode exists", "zipcod exists")
    p = plan(text)
    found = preflight(p, None)
    assert found.ok and "names field 'zipcod'" in found.warnings[0].message
    assert "did you mean 'zipcode'?" in found.warnings[0].message
    found = preflight(plan(text, ["id", "phone", "zipcode"]), ["id", "phone", "zipcode"])
    assert any("names field 'zipcod'" in e.message for e in found.errors)


def test_a_missing_key_is_refused_naming_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WSTEST_VENDOR_KEY", raising=False)
    text = ROUTE + "  - station: Paid\n"
    found = preflight(plan(text), None)
    assert len(found.errors) == 1
    assert "needs 'api_key'" in found.errors[0].message and "WSTEST_VENDOR_KEY" in found.errors[0].message
    monkeypatch.setenv("WSTEST_VENDOR_KEY", "k")
    assert preflight(plan(text), None).ok


def test_delimiter_problem_and_maps() -> None:
    assert "tab-separated" in (delimiter_problem(["id\tname\tphone"], ",") or "")
    assert "semicolon" in (delimiter_problem(["id;name"], ",") or "")
    assert delimiter_problem(["id", "name"], ",") is None
    assert parse_maps(["Phone Number=phone", " Zip = zipcode"]) == {"Phone Number": "phone", "Zip": "zipcode"}
    with pytest.raises(ValueError, match="--map 'Input Column=field'"):
        parse_maps(["phone"])


def _csv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",",
         encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


async def test_batch_map_delimiter_encoding(tmp_path: Path) -> None:
    route = tmp_path / "r.yaml"
    route.write_text(ROUTE)
    rows = [["L1", "+14155550100", "02139", "Jos\u00e9"], ["L2", "+14155550101", "", "Ren\u00e9e"]]
    inp = _csv(tmp_path / "in.csv", ["id", "Phone Number", "zipcode", "name"], rows, "\t", "latin-1")
    cfg = BatchConfig(route=route, input=inp, output=tmp_path / "out.csv")
    with pytest.raises(RouteError) as err:
        compile_for_input(cfg, host())
    assert "tab-separated" in str(err.value.problems[0]) and "--delimiter" in str(err.value.problems[0])
    cfg = BatchConfig(route=route, input=inp, output=tmp_path / "out.csv", delimiter="\t", encoding="latin-1",
                      maps={"Phone Number": "phone"})
    res = await BatchRunner(cfg, host(), store=MemoryStore()).run()
    assert res.report.leads["succeeded"] == 2, (tmp_path / "out.csv").read_text()
    with (tmp_path / "out.csv").open(newline="", encoding="utf-8") as f:
        out = list(csv.DictReader(f))
    assert [r["name"] for r in out] == ["Jos\u00e9", "Ren\u00e9e"] and out[0]["phone"] == "+14155550100"
    # the route's own map: does the same
    route.write_text(ROUTE + "map:\n  Phone Number: phone\n")
    cfg = BatchConfig(route=route, input=inp, output=tmp_path / "out2.csv", delimiter="\t", encoding="latin-1")
    res = await BatchRunner(cfg, host(), store=MemoryStore()).run()
    assert res.report.leads["succeeded"] == 2


def test_fail_on_rules() -> None:
    leads = {"succeeded": 90, "failed": 6, "held": 4, "rejected": 0}
    assert check_fail_on(parse_fail_on("failed>5%"), leads) == ["failed = 6.0% of 100 leads (failed>5%)"]
    assert check_fail_on(parse_fail_on("failed>10%"), leads) == []
    assert check_fail_on(parse_fail_on("failed+held>=10"), leads) == ["failed+held = 10 of 100 leads (failed+held>=10)"]
    assert check_fail_on(parse_fail_on("held>0, rejected>0"), leads) == ["held = 4 of 100 leads (held>0)"]
    assert parse_fail_on("none") == []
    with pytest.raises(ValueError, match="unknown status 'faild'"):
        parse_fail_on("faild>1")
    with pytest.raises(ValueError, match="write rules like"):
        parse_fail_on("failed much")
