"""Running leads: scheduling, merging, statuses, skips, stops, validation, provenance, errors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import toys
from toys import SecretStation, make
from waystation import Engine, Outcome, Station, StepContext, Stop, hookimpl


def route(*steps: str, budget: float | None = None, extra: str = "") -> str:
    head = "name: test\n" + (f"budget: {budget}\n" if budget is not None else "") + extra
    return head + "steps:\n" + "".join(f"  - {s}\n" for s in steps)


@pytest.fixture(autouse=True)
def recorder() -> toys.Recorder:
    return toys.reset()


async def run(text: str, stations: list, lead: dict | None = None, **kw: Any):
    async with Engine.from_text(text, stations, **kw) as engine:
        return await engine.run(lead or {"first_name": "Ada"})


async def test_from_yaml_runs_a_linear_route(tmp_path: Path) -> None:
    a = make("A", {"a": str})
    b = make("B", {"b": str}, requires=("a",))
    path = tmp_path / "r.yaml"
    path.write_text(route("station: A", "station: B"))
    async with Engine.from_yaml(path, [a, b]) as engine:
        result = await engine.run({"id": "L1"})
    assert result.status == "succeeded" and result.lead_id == "L1"
    assert result.data == {"id": "L1", "a": "A:a", "b": "B:b"}
    assert result.steps["B"].status == "succeeded" and result.steps["B"].attempts == 1
    assert result.provenance["b"].step == "B"


async def test_level_wall_time_is_its_slowest_step_not_the_sum(recorder: toys.Recorder) -> None:
    stations = [make(n, {n.lower(): str}, sleep=0.2) for n in ("P", "Q", "R")]
    started = time.perf_counter()
    result = await run(route("station: P", "station: Q", "station: R"), stations)
    elapsed = time.perf_counter() - started
    assert result.status == "succeeded"
    assert recorder.max_running == 3
    assert elapsed < 0.2 * 3 * 0.75  # well under the sum of the three sleeps


async def test_no_level_barrier_a_step_starts_when_its_own_dependencies_end() -> None:
    marks: dict[str, float] = {}

    class Slow(Station):
        """Sleeps long."""

        name = "Slow"
        provides = {"slow": str}

        async def process(self, ctx: StepContext) -> Outcome:
            await asyncio.sleep(0.3)
            marks["slow_end"] = time.perf_counter()
            return Outcome({"slow": "x"})

    fast = make("Fast", {"fast": str}, sleep=0.01)

    class After(Station):
        """Needs Fast only."""

        name = "After"
        requires = ("fast",)
        provides = {"after": str}

        async def process(self, ctx: StepContext) -> Outcome:
            marks["after_start"] = time.perf_counter()
            return Outcome({"after": "y"})

    result = await run(route("station: Slow", "station: Fast", "station: After"), [Slow, fast, After])
    assert result.status == "succeeded"
    assert marks["after_start"] < marks["slow_end"]


async def test_each_step_sees_only_its_ancestors_so_results_never_depend_on_timing(recorder) -> None:
    early = make("Early", {"early": str}, sleep=0.0)
    late = make("Late", {"late": str}, sleep=0.05)
    needs_late = make("NeedsLate", {"n": str}, requires=("late",))
    for _ in range(3):
        result = await run(route("station: Early", "station: Late", "station: NeedsLate"),
                           [early, late, needs_late])
        assert "early" not in recorder.seen["NeedsLate"]
        assert recorder.seen["NeedsLate"]["late"] == "Late:late"
        assert list(result.data) == ["first_name", "early", "late", "n"]


async def test_merge_is_in_route_order_and_provenance_says_who_and_what_it_cost() -> None:
    a = make("A", {"phone": str}, value={"phone": "+14155550100"})
    b = make("B", {"phone": str}, requires=("phone",), cost=0.5, value={"phone": "+14155550199"})
    result = await run(route("station: A", "station: B"), [a, b])
    assert result.data["phone"] == "+14155550199"
    assert result.provenance["phone"].step == "B" and result.provenance["phone"].cost == 0.5
    assert result.costs == {"B": 0.5} and result.total_cost == 0.5


async def test_ctx_data_is_read_only_and_the_lead_is_not_corrupted() -> None:
    class Mutator(Station):
        """Tries to write into the lead."""

        name = "Mutator"
        provides = {"x": str}

        async def process(self, ctx: StepContext) -> Outcome:
            ctx.data["first_name"] = "Eve"  # type: ignore[index]
            return Outcome({"x": "1"})

    lead = {"first_name": "Ada"}
    result = await run(route("station: Mutator"), [Mutator], lead)
    assert result.steps["Mutator"].status == "failed"
    assert "TypeError" in (result.steps["Mutator"].error or "")
    assert result.data["first_name"] == "Ada" and lead == {"first_name": "Ada"}


# ----------------------------------------------------------------------------- skip reasons


async def test_skip_reasons(recorder) -> None:
    ident = make("Ident", {"zipcode": str}, value={"zipcode": None})
    disabled = make("Off", {"off": str})
    cond = make("Income", {"income": int}, requires=("zipcode",))
    provider = make("Finder", {"phone": str}, value={"phone": "+14155550100"})
    fallback = make("Backup", {"phone": str}, cost=0.1)
    needs = make("Needs", {"z": str}, requires=("zipcode",))
    pricey = make("Pricey", {"p": str}, cost=2.0)
    text = route(
        "station: Ident",
        "station: Off\n    enabled: false",
        "station: Income\n    condition: zipcode exists",
        "station: Finder",
        "station: Backup\n    fallback: true",
        "station: Needs",
        "station: Pricey",
        "station: NotInstalled\n    enabled: false",
        budget=1.0,
    )
    result = await run(text, [ident, disabled, cond, provider, fallback, needs, pricey])
    reasons = {sid: (r.status, r.reason) for sid, r in result.steps.items()}
    assert reasons == {
        "Ident": ("succeeded", None),
        "Off": ("skipped", "disabled"),
        "Income": ("skipped", "condition"),
        "Finder": ("succeeded", None),
        "Backup": ("skipped", "fallback_not_needed"),
        "Needs": ("skipped", "missing_requirements"),
        "Pricey": ("skipped", "budget"),
        "NotInstalled": ("skipped", "not_installed"),
    }
    assert result.steps["Needs"].error == "missing zipcode"
    assert "Backup" not in recorder.calls and "Pricey" not in recorder.calls
    assert result.status == "succeeded" and result.total_cost == 0


async def test_fallback_runs_when_the_provider_found_nothing_failed_or_was_skipped(recorder) -> None:
    for provider in (
        make("Finder", {"phone": str}, value={"phone": None}),
        make("Finder", {"phone": str}, raises=RuntimeError("down")),
        make("Finder", {"phone": str}, requires=("nothing_here",)),
    ):
        toys.reset()
        backup = make("Backup", {"phone": str}, value={"phone": "+14155550111"})
        text = route("station: Finder", "station: Backup\n    fallback: true",
                     extra="input: [first_name, nothing_here]\n")
        result = await run(text, [provider, backup])
        assert result.steps["Backup"].status == "succeeded"
        assert result.data["phone"] == "+14155550111"


async def test_fallback_only_fills_missing_fields() -> None:
    first = make("First", {"phone": str, "age": int}, value={"phone": None, "age": 40})
    second = make("Second", {"phone": str, "age": int}, value={"phone": "+14155550123", "age": 99})
    result = await run(route("station: First", "station: Second\n    fallback: true"), [first, second])
    assert result.data["phone"] == "+14155550123" and result.data["age"] == 40
    assert result.provenance["age"].step == "First"


# ----------------------------------------------------------------------------- stop conditions


async def test_skip_remaining_lets_running_steps_finish_and_starts_nothing_new(recorder) -> None:
    gate = make("Gate", {"gate": str}, stop=Stop.SKIP_REMAINING, reason="line type landline")
    sibling = make("Sibling", {"sib": str}, sleep=0.1)
    later = make("Later", {"later": str}, requires=("gate",))
    result = await run(route("station: Gate", "station: Sibling", "station: Later"), [gate, sibling, later])
    assert result.status == "stopped" and result.reason == "line type landline"
    assert result.steps["Sibling"].status == "succeeded" and result.data["sib"] == "Sibling:sib"
    assert result.steps["Later"].reason == "stopped" and "Later" not in recorder.calls
    assert result.data["gate"] == "Gate:gate"


async def test_fail_marks_the_lead_failed_keeps_its_data_and_nothing_later_runs(recorder) -> None:
    dnc = make("Dnc", {"dnc_listed": bool}, value={"dnc_listed": True}, stop=Stop.FAIL, reason="on DNC")
    save = make("Save", {"saved": bool}, optional=("dnc_listed",))
    result = await run(route("station: Dnc", "station: Save"), [dnc, save])
    assert result.status == "failed" and result.reason == "on DNC"
    assert result.data["dnc_listed"] is True
    assert result.steps["Save"].reason == "stopped" and "Save" not in recorder.calls


async def test_a_raising_step_follows_on_error() -> None:
    boom = make("Boom", {"b": str}, raises=ValueError("vendor said no"))
    after = make("After", {"a": str})
    result = await run(route("station: Boom", "station: After"), [boom, after])
    assert result.status == "succeeded"
    assert result.steps["Boom"].status == "failed" and "vendor said no" in (result.steps["Boom"].error or "")
    result = await run(route("station: Boom\n    on_error: fail", "station: After\n    after: Boom"), [boom, after])
    assert result.status == "failed" and "Boom failed" in (result.reason or "")
    assert result.steps["After"].reason == "stopped"


async def test_secrets_are_redacted_from_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "sk-very-secret-42")
    result = await run(route("station: SecretStation"), [SecretStation])
    assert result.steps["SecretStation"].status == "failed"
    assert "sk-very-secret-42" not in result.model_dump_json()
    assert "key=***" in (result.steps["SecretStation"].error or "")


# ----------------------------------------------------------------------------- validation


async def test_undeclared_field_fails_the_step_and_keeps_the_lead_clean() -> None:
    sneaky = make("Sneaky", {"a": str}, value={"a": "ok", "ssn": "123-45-6789"})
    result = await run(route("station: Sneaky"), [sneaky])
    rec = result.steps["Sneaky"]
    assert rec.status == "failed" and rec.error_category == "invalid_output"
    assert "'ssn'" in (rec.error or "") and "ssn" not in result.data and "a" not in result.data


async def test_wrong_type_fails_the_step() -> None:
    wrong = make("Wrong", {"age": int}, value={"age": "forty"})
    result = await run(route("station: Wrong"), [wrong])
    assert result.steps["Wrong"].status == "failed"
    assert "declared int" in (result.steps["Wrong"].error or "")


async def test_complex_declared_types_are_checked_by_pydantic() -> None:
    good = make("Good", {"phones": list[dict[str, str]]}, value={"phones": [{"number": "+14155550100"}]})
    bad = make("Bad", {"tags": list[str]}, value={"tags": [1, 2]})
    result = await run(route("station: Good", "station: Bad"), [good, bad])
    assert result.steps["Good"].status == "succeeded"
    assert result.steps["Bad"].status == "failed" and "tags" in (result.steps["Bad"].error or "")


async def test_lead_schema_violation_is_recorded_dropped_or_fails_when_strict() -> None:
    badphone = make("BadPhone", {"phone": str, "zipcode": str}, value={"phone": "555-0100", "zipcode": "02142"})
    result = await run(route("station: BadPhone"), [badphone])
    assert result.status == "succeeded"
    assert "phone" not in result.data and result.data["zipcode"] == "02142"
    assert "E.164" in result.steps["BadPhone"].validation[0]
    strict = await run(route("station: BadPhone", extra="validation: strict\n"), [badphone])
    assert strict.status == "failed" and "validation failed after BadPhone" in (strict.reason or "")


async def test_process_returning_a_dict_is_refused_clearly() -> None:
    class Lazy(Station):
        """Returns a dict instead of an Outcome."""

        name = "Lazy"
        provides = {"x": str}

        async def process(self, ctx: StepContext) -> Any:
            return {"x": "1"}

    result = await run(route("station: Lazy"), [Lazy])
    assert "not an Outcome" in (result.steps["Lazy"].error or "")


# ----------------------------------------------------------------------------- timeouts and ids


async def test_timeout_per_step_cancels_cleanly() -> None:
    slow = make("Slow", {"s": str}, sleep=5)
    result = await run(route("station: Slow\n    timeout: 0.05"), [slow])
    rec = result.steps["Slow"]
    assert rec.status == "failed" and rec.error_category == "timeout"
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_lead_ids_are_stable() -> None:
    from waystation import lead_id_of

    assert lead_id_of({"id": 7, "name": "x"}) == "7"
    assert lead_id_of({"name": " Ada ", "city": "NYC"}) == lead_id_of({"city": "nyc", "name": "ada"})
    assert lead_id_of({"name": "Ada"}) != lead_id_of({"name": "Bob"})


async def test_many_leads_concurrently_share_one_engine() -> None:
    a = make("A", {"a": str}, sleep=0.001)
    b = make("B", {"b": str}, requires=("a",))
    async with Engine.from_text(route("station: A", "station: B"), [a, b]) as engine:
        results = await asyncio.gather(*(engine.run({"id": i}) for i in range(200)))
    assert {r.status for r in results} == {"succeeded"} and len({r.lead_id for r in results}) == 200


async def test_station_open_and_close_called_once() -> None:
    events: list[str] = []

    class Client(Station):
        """Has a client to open and close."""

        name = "Client"
        provides = {"c": str}

        async def open(self) -> None:
            events.append("open")

        async def close(self) -> None:
            events.append("close")

        async def process(self, ctx: StepContext) -> Outcome:
            return Outcome({"c": "1"})

    async with Engine.from_text(route("station: Client"), [Client]) as engine:
        await asyncio.gather(*(engine.run({"id": i}) for i in range(20)))
    assert events == ["open", "close"]


async def test_async_hook_implementations_are_awaited() -> None:
    seen: list[str] = []

    class AsyncObserver:
        @hookimpl
        def after_step(self, step: Any) -> Any:
            async def write() -> None:
                await asyncio.sleep(0)
                seen.append(step.id)

            return write()

    await run(route("station: A"), [make("A", {"a": str})], plugins=[AsyncObserver()])
    assert seen == ["A"]


async def test_a_raising_observer_hook_is_recorded_not_fatal() -> None:
    class Broken:
        @hookimpl
        def before_step(self) -> None:
            raise RuntimeError("observer bug")

    result = await run(route("station: A"), [make("A", {"a": str})], plugins=[Broken()])
    assert result.status == "succeeded" and "observer bug" in result.errors[0]


async def test_a_station_can_clear_a_declared_field_so_later_steps_do_not_use_it(recorder) -> None:
    class Normalizer(Station):
        """Clears an input phone that is not a real number."""

        name = "Normalizer"
        provides = {"phone": str, "phone_valid": bool}

        async def process(self, ctx: StepContext) -> Outcome:
            return Outcome({"phone_valid": False}, clear=("phone",), misses={"phone": "not a number"})

    lookup = make("Lookup", {"line_type": str}, requires=("phone",), cost=0.01)
    result = await run(route("station: Normalizer", "station: Lookup"), [Normalizer, lookup],
                       {"first_name": "Ada", "phone": "555-CALL-NOW"})
    assert "phone" not in result.data and result.data["phone_valid"] is False
    assert result.steps["Normalizer"].cleared == ["phone"]
    assert result.steps["Lookup"].reason == "missing_requirements" and "Lookup" not in recorder.calls


async def test_clearing_an_undeclared_field_is_refused() -> None:
    class Rogue(Station):
        """Clears what it does not own."""

        name = "Rogue"
        provides = {"x": str}

        async def process(self, ctx: StepContext) -> Outcome:
            return Outcome({}, clear=("first_name",))

    result = await run(route("station: Rogue"), [Rogue])
    assert result.steps["Rogue"].status == "failed" and result.data["first_name"] == "Ada"


async def test_declared_cost_can_follow_settings() -> None:
    from waystation import StationSettings

    class PriceSettings(StationSettings):
        """Which data sets to buy."""

        caller_name: bool = False

    class Lookup(Station):
        """Costs more with caller name."""

        name = "Lookup"
        provides = {"x": str}
        cost = 0.0025
        Settings = PriceSettings

        @classmethod
        def declared_cost(cls, settings: Any) -> float:
            return cls.cost + (0.003 if settings.caller_name else 0.0)

        async def process(self, ctx: StepContext) -> Outcome:
            return Outcome({"x": "1"}, cost=0.0055)

    engine = Engine.from_text(route("station: Lookup\n    settings: {caller_name: true}"), [Lookup])
    assert engine.plan.steps[0].cost == 0.0055
    result = await run(route("station: Lookup\n    settings: {caller_name: true}", budget=0.005), [Lookup])
    assert result.steps["Lookup"].reason == "budget"
