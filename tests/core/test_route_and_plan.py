"""Loading routes (safe YAML, line numbers) and compiling them into plans (every static error)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from toys import make
from waystation import Engine, PluginHost, Route, RouteError, StationSettings, compile_route

A = make("IdentityStation", {"first_name": str, "zipcode": str, "phone": str})
B = make("PeopleSearch", {"age": int}, requires=("first_name",))
C = make("SkipTrace", {"phone": str, "age": int}, requires=("first_name",), cost=0.02)
D = make("Income", {"income": int}, requires=("zipcode",))
E = make("Save", {"saved": bool}, optional=("income", "age", "phone"))


class ThresholdSettings(StationSettings):
    """Settings with a bounded number and a secret."""

    threshold: int = 3
    api_key: SecretStr | None = None


F = make("Thresh", {"t": int}, settings=ThresholdSettings)


def host(*stations) -> PluginHost:
    h = PluginHost()
    h.add_stations(stations or (A, B, C, D, E, F))
    return h


def problems(text: str, *stations) -> list:
    with pytest.raises(RouteError) as info:
        compile_route(Route.from_text(text, "route.yaml"), host(*stations))
    return info.value.problems


def test_yaml_keeps_zip_codes_and_refuses_python_tags(tmp_path: Path) -> None:
    route = Route.from_text("name: r\nsteps:\n  - station: Thresh\n    settings: {zip: 02142, flag: no}\n")
    assert route.spec.steps[0].settings == {"zip": "02142", "flag": "no"}
    with pytest.raises(RouteError, match="invalid YAML"):
        Route.from_text("name: !!python/object/apply:os.system ['true']\nsteps: []\n")


def test_missing_file_and_bad_yaml_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(RouteError, match=r"nope\.yaml"):
        Route.from_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: r\nsteps:\n  - station: [unclosed\n")
    with pytest.raises(RouteError) as info:
        Route.from_file(bad)
    assert info.value.problems[0].file == str(bad)
    assert info.value.problems[0].line is not None


def test_unknown_key_has_line() -> None:
    with pytest.raises(RouteError) as info:
        Route.from_text("name: r\nsteps:\n  - station: A\n    enabeld: true\n", "r.yaml")
    p = info.value.problems[0]
    assert (p.file, p.line) == ("r.yaml", 4)
    assert "enabeld" in p.message


def test_levels_and_dependencies() -> None:
    text = """name: hybrid
steps:
  - station: IdentityStation
  - station: PeopleSearch
  - station: SkipTrace
    fallback: true
    condition: "phone not exists"
  - station: Income
    condition: "zipcode exists"
  - station: Save
"""
    plan = compile_route(Route.from_text(text, "r.yaml"), host())
    ids = [[s.id for s in level] for level in plan.levels]
    assert ids == [["IdentityStation"], ["PeopleSearch", "Income"], ["SkipTrace"], ["Save"]]
    skip = plan.step("SkipTrace")
    assert skip.fallback_fields == ("age",)
    assert plan.step("Save").deps == (0, 1, 2, 3)


def test_unknown_station_suggests_and_has_line() -> None:
    [p] = problems("name: r\nsteps:\n  - station: IdentityStation\n  - station: PeopleSerch\n")
    assert p.line == 4 and "did you mean 'PeopleSearch'" in p.message


def test_unknown_but_disabled_station_is_a_warning_and_skipped() -> None:
    text = "name: r\nsteps:\n  - station: IdentityStation\n  - station: Scraper\n    enabled: false\n"
    plan = compile_route(Route.from_text(text, "r.yaml"), host())
    assert not plan.step("Scraper").installed
    assert "unknown station 'Scraper'" in str(plan.warnings[0])


def test_required_field_nothing_provides() -> None:
    [p] = problems("name: r\ninput: [name]\nsteps:\n  - station: PeopleSearch\n")
    assert p.line == 4 and "requires field 'first_name'" in p.message


def test_required_field_provided_only_later_says_so() -> None:
    [p] = problems("name: r\ninput: [name]\nsteps:\n  - station: PeopleSearch\n  - station: IdentityStation\n")
    assert "comes later" in p.message


def test_cycle_through_after() -> None:
    text = "name: r\nsteps:\n  - station: IdentityStation\n    after: Income\n  - station: Income\n"
    [p] = problems(text)
    assert "cycle" in p.message and p.line == 3


def test_parallel_steps_providing_the_same_field() -> None:
    text = "name: r\nsteps:\n  - station: IdentityStation\n  - station: PeopleSearch\n  - station: SkipTrace\n"
    [p] = problems(text)
    assert "both provide age" in p.message and p.line == 5


def test_fallback_resolves_the_parallel_conflict() -> None:
    text = ("name: r\nsteps:\n  - station: IdentityStation\n  - station: PeopleSearch\n"
            "  - station: SkipTrace\n    fallback: true\n")
    compile_route(Route.from_text(text), host())


def test_malformed_condition_line_and_column() -> None:
    text = "name: r\nsteps:\n  - station: Income\n    condition: zipcode exist\n"
    [p] = problems(text)
    assert (p.line, p.column) == (4, 16 + 8)
    assert "malformed condition" in p.message


def test_settings_that_do_not_validate() -> None:
    text = "name: r\nsteps:\n  - station: Thresh\n    settings:\n      threshold: many\n      bogus: 1\n"
    ps = problems(text)
    assert {p.line for p in ps} == {5, 6}
    assert any("threshold" in p.message for p in ps) and any("bogus" in p.message for p in ps)


def test_bad_policy_override() -> None:
    [p] = problems("name: r\nsteps:\n  - station: Thresh\n    retry: {max_attempts: 0}\n")
    assert p.line == 4 and "max_attempts" in p.message


def test_after_unknown_step_and_duplicate_ids() -> None:
    ps = problems("name: r\nsteps:\n  - station: Thresh\n    after: [Thres]\n  - station: Thresh\n")
    messages = " | ".join(p.message for p in ps)
    assert "did you mean 'Thresh'" in messages and "used twice" in messages


def test_every_error_is_reported_at_once() -> None:
    text = ("name: r\nsteps:\n  - station: Nope\n  - station: Income\n    condition: 'a =='\n"
            "  - station: Thresh\n    settings: {threshold: x}\n")
    assert len(problems(text)) == 3


def test_secret_setting_value_never_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "name: r\nsteps:\n  - station: Thresh\n    settings: {api_key: sk-live-123, threshold: nope}\n"
    ps = problems(text)
    assert all("sk-live-123" not in str(p) for p in ps)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRESHOLD", "9")
    engine = Engine.from_text("name: r\nsteps:\n  - station: Thresh\n", [F])
    assert engine.plan.steps[0].settings.threshold == 9  # type: ignore[union-attr]
