"""Retries and timeouts against a real HTTP server on 127.0.0.1 that fails on command.

Each fault (500, 503, 429 + Retry-After, slow answer, connection reset, malformed JSON, empty
body) is checked for the step's attempts, the delays the hooks see, the final status and what the
breaker did. Test mode (the autouse ``waystation_fast_retries`` fixture) switches the waits off;
one test switches it off to check the real waits.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stamina
import yaml
from faultserver import FaultServer, Reply, ToyVendor, empty, malformed, ok, reset, slow, status
from waystation import Engine, Outcome, RetryPolicy, Station, StepContext, hookimpl
from waystation.errors import RouteError, ServerError, ThrottledError
from waystation.resilience.policies import classify_error, parse_retry_after, retry_after_of

POLICY = {"max_attempts": 3, "base_delay": 0.2, "multiplier": 2.0, "max_delay": 0.5, "jitter": 0}


class Spy:
    """Records every resilience hook call."""

    def __init__(self) -> None:
        self.retries: list[tuple[int, str, float]] = []
        self.changes: list[tuple[str, str, str, str | None]] = []
        self.skips: list[str] = []

    @hookimpl
    def on_retry(self, step: Any, attempt: int, error: BaseException, delay: float) -> None:
        self.retries.append((attempt, classify_error(error), delay))

    @hookimpl
    def on_breaker_change(self, station: str, old: str, new: str, cause: str | None) -> None:
        self.changes.append((station, old, new, cause))

    @hookimpl
    def on_step_skipped(self, step: Any, reason: str) -> None:
        self.skips.append(reason)


@pytest.fixture
def srv() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def route_text(srv: FaultServer, **step: Any) -> str:
    spec: dict[str, Any] = {"station": "ToyVendor", "settings": {"base_url": srv.url, "path": "/v"}}
    spec.update(step)
    return yaml.safe_dump({"name": "resilience", "input": ["id", "phone"], "steps": [spec]})


def engine_for(srv: FaultServer, spy: Spy, stations: list[type[Station]] | None = None, **step: Any) -> Engine:
    step.setdefault("retry", POLICY)
    step.setdefault("timeout", 0.8)
    return Engine.from_text(route_text(srv, **step), stations or [ToyVendor], plugins=[spy])


def lead(i: int = 0) -> dict[str, Any]:
    return {"id": f"L{i}", "phone": f"+1415555{i:04d}"}


# (fault, its category, whether the breaker counts it as a vendor failure)
CASES = [
    pytest.param(status(500), "server_error", True, id="500"),
    pytest.param(status(503), "server_error", True, id="503"),
    pytest.param(status(429, retry_after="0.3"), "throttled", False, id="429-retry-after"),
    pytest.param(slow(3.0), "timeout", True, id="slow"),
    pytest.param(reset(), "connection", True, id="reset"),
    pytest.param(malformed(), "transient", True, id="malformed-json"),
    pytest.param(empty(), "transient", True, id="empty-body"),
]


def expected_delays(category: str) -> list[float]:
    # the vendor's Retry-After (0.3, within max_delay 0.5); otherwise 0.2 * 2 ** (k - 1)
    return [0.3, 0.3] if category == "throttled" else [0.2, 0.4]


@pytest.mark.parametrize(("fault", "category", "_counts"), CASES)
async def test_fault_then_recovery_is_retried(srv: FaultServer, fault: Reply, category: str,
                                              _counts: bool) -> None:
    srv.script("/v", fault, fault)
    spy = Spy()
    async with engine_for(srv, spy, breaker={"failure_threshold": 3, "reset_after": 60}) as engine:
        result = await engine.run(lead())
        state = await engine.breaker("ToyVendor").state()  # type: ignore[union-attr]
    rec = result.steps["ToyVendor"]
    assert (rec.status, rec.attempts, result.data["line_type"]) == ("succeeded", 3, "mobile")
    assert srv.count("/v") == 3
    delays = expected_delays(category)
    assert spy.retries == [(1, category, delays[0]), (2, category, delays[1])]
    assert spy.changes == []
    assert (state.state, state.failures) == ("closed", 0)


@pytest.mark.parametrize(("fault", "category", "counts"), CASES)
async def test_persistent_fault_fails_the_step_and_opens_the_breaker(srv: FaultServer, fault: Reply,
                                                                     category: str, counts: bool) -> None:
    srv.default("/v", fault)
    spy = Spy()
    async with engine_for(srv, spy, breaker={"failure_threshold": 3, "reset_after": 60}) as engine:
        first = await engine.run(lead(1))
        second = await engine.run(lead(2))
    rec = first.steps["ToyVendor"]
    if category == "throttled":
        # a wait on the last attempt defers the lead (resumable) instead of failing it; the
        # throttled call is not counted, the breaker stays closed (a throttle is a sign of life)
        assert (first.status, rec.status, rec.reason, rec.attempts) == ("deferred", "pending", "deferred", 2)
        assert first.retry_at is not None and "line_type" not in first.data
        assert spy.changes == [] and srv.count("/v") == 6
        assert second.status == "deferred"
        return
    assert (rec.status, rec.attempts, rec.error_category) == ("failed", 3, category)
    assert "line_type" not in first.data
    assert [a for a, _, _ in spy.retries[:2]] == [1, 2]
    if counts:
        # three consecutive vendor failures open it; the next lead is skipped without a call
        assert spy.changes == [("ToyVendor", "closed", "open", "failures")]
        assert (second.steps["ToyVendor"].status, second.steps["ToyVendor"].reason) == ("skipped", "breaker_open")
        assert second.steps["ToyVendor"].attempts == 0 and second.total_cost == 0
        assert srv.count("/v") == 3
    else:
        # a throttle is a sign of life: the breaker stays closed and the next lead calls again
        assert spy.changes == []
        assert second.steps["ToyVendor"].status == "failed" and srv.count("/v") == 6


@pytest.mark.parametrize(("reply", "category"), [
    pytest.param(status(402), "exhausted", id="402"),
    pytest.param(Reply(429, b"{}", (("X-RateLimit-Requests-Remaining", "0"),)), "exhausted", id="quota-429"),
    pytest.param(status(404), "permanent", id="404"),
    pytest.param(status(400), "permanent", id="400"),
    pytest.param(ok({"line_type": 5}), "invalid_output", id="validation"),
])
async def test_not_retryable(srv: FaultServer, reply: Reply, category: str) -> None:
    srv.default("/v", reply)
    spy = Spy()
    async with engine_for(srv, spy, breaker={"failure_threshold": 5, "reset_after": 60}) as engine:
        result = await engine.run(lead())
    rec = result.steps["ToyVendor"]
    assert (rec.status, rec.attempts, rec.error_category) == ("failed", 1, category)
    assert srv.count("/v") == 1 and spy.retries == []
    if category == "exhausted":
        assert spy.changes == [("ToyVendor", "closed", "open", "exhausted")]
    else:
        assert spy.changes == []


async def test_retry_on_by_class_name(srv: FaultServer) -> None:
    srv.default("/v", status(500))
    spy = Spy()
    async with engine_for(srv, spy, retry={**POLICY, "retry_on": ["ServerError"]}) as engine:
        result = await engine.run(lead())
    assert result.steps["ToyVendor"].attempts == 3 and srv.count("/v") == 3
    srv.default("/v", slow(3.0))
    async with engine_for(srv, spy, retry={**POLICY, "retry_on": ["ServerError"]}) as engine:
        result = await engine.run(lead())
    assert (result.steps["ToyVendor"].attempts, result.steps["ToyVendor"].error_category) == (1, "timeout")


async def test_retry_on_by_category_leaves_others_alone(srv: FaultServer) -> None:
    srv.default("/v", status(503))
    async with engine_for(srv, Spy(), retry={**POLICY, "retry_on": ["timeout", "throttled"]}) as engine:
        result = await engine.run(lead())
    assert (result.steps["ToyVendor"].attempts, result.steps["ToyVendor"].error_category) == (1, "server_error")


def test_retry_on_rejects_unknown_names_with_the_line() -> None:
    text = "name: r\ninput: [phone]\nsteps:\n  - station: ToyVendor\n    retry: {retry_on: [server_eror]}\n"
    with pytest.raises(RouteError) as err:
        Engine.from_text(text, [ToyVendor])
    assert "server_eror" in str(err.value) and ":5" in str(err.value)


def test_classify_error_and_retry_after() -> None:
    req = httpx.Request("GET", "http://127.0.0.1/x")

    def http(code: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
        resp = httpx.Response(code, headers=headers, request=req)
        return httpx.HTTPStatusError("x", request=req, response=resp)

    cases = {402: "exhausted", 408: "timeout", 429: "throttled", 503: "server_error", 401: "auth",
             404: "client_error"}
    for code, cat in cases.items():
        assert classify_error(http(code)) == cat
    assert classify_error(httpx.ReadError("x")) == "connection"
    assert classify_error(httpx.ReadTimeout("x")) == "timeout"
    assert classify_error(TimeoutError()) == "timeout"
    assert classify_error(ConnectionResetError()) == "connection"
    assert retry_after_of(http(429, {"Retry-After": "12"})) == 12.0
    assert retry_after_of(ThrottledError("x", retry_after=3)) == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None
    policy = RetryPolicy(max_attempts=5, retry_on=("timeout", "httpx.ReadError"))
    assert policy.should_retry(httpx.ReadTimeout("x")) and policy.should_retry(httpx.ReadError("x"))
    assert not policy.should_retry(asyncio.CancelledError())
    assert not policy.should_retry(httpx.ConnectError("x"))  # a different class, category connection
    assert policy.backoff(1) == 0.5 and policy.backoff(3) == 2.0 and policy.backoff(30) == policy.max_delay


# ------------------------------------------------------------------------- waits, test mode


class Flaky(Station):
    """Fails ``FAILS`` times per lead with the given error, then succeeds (no I/O)."""

    name = "Flaky"
    provides = {"f": str}
    timeout = None
    errors: list[BaseException] = []
    calls: dict[str, int] = {}

    async def process(self, ctx: StepContext) -> Outcome:
        n = Flaky.calls[ctx.lead_id] = Flaky.calls.get(ctx.lead_id, 0) + 1
        if n <= len(Flaky.errors):
            raise Flaky.errors[n - 1]
        return Outcome({"f": f"ok after {n}"})


async def _sleeps_of_a_flaky_run(monkeypatch: pytest.MonkeyPatch, retry: dict[str, Any]) -> tuple[list[float], Spy]:
    Flaky.calls = {}
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def spy_sleep(delay: float, *args: Any, **kw: Any) -> Any:
        slept.append(delay)
        return await real_sleep(delay, *args, **kw)

    monkeypatch.setattr(asyncio, "sleep", spy_sleep)
    spy = Spy()
    text = yaml.safe_dump({"name": "r", "steps": [{"station": "Flaky", "retry": retry}]})
    async with Engine.from_text(text, [Flaky], plugins=[spy]) as engine:
        result = await engine.run({"id": "x"})
    monkeypatch.setattr(asyncio, "sleep", real_sleep)
    assert result.steps["Flaky"].attempts == 4 and result.data["f"] == "ok after 4"
    return slept, spy


async def test_test_mode_skips_the_waits_but_keeps_the_logic(monkeypatch: pytest.MonkeyPatch) -> None:
    Flaky.errors = [ServerError("a"), ThrottledError("b", retry_after=40), ServerError("c")]
    retry = {"max_attempts": 4, "base_delay": 30, "multiplier": 2, "max_delay": 50, "jitter": 0}
    slept, spy = await _sleeps_of_a_flaky_run(monkeypatch, retry)
    assert slept == [0, 0, 0]  # three retries, no wait
    assert spy.retries == [(1, "server_error", 30), (2, "throttled", 40), (3, "server_error", 50)]


async def test_real_waits_follow_the_policy_and_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    Flaky.errors = [ServerError("a"), ThrottledError("b", retry_after=0.015), ThrottledError("c", retry_after=0.005)]
    retry = {"max_attempts": 4, "base_delay": 0.01, "multiplier": 2, "max_delay": 0.02, "jitter": 0}
    with stamina.set_testing(False):
        slept, spy = await _sleeps_of_a_flaky_run(monkeypatch, retry)
    # backoff 0.01, then the vendor's waits as asked (within max_delay; a longer one defers the
    # lead: see test_throttle.py); the station's shared pause is over when the retry wakes up
    assert slept == pytest.approx([0.01, 0.015, 0.005])
    assert [d for _, _, d in spy.retries] == pytest.approx([0.01, 0.015, 0.005])


async def test_concurrent_leads_keep_their_own_attempt_counts() -> None:
    """A shared retry object would mix the leads' attempts up (tenacity #93)."""
    counts: dict[str, int] = {}

    class PerLead(Station):
        """Lead ``i`` fails ``i % 4`` times."""

        name = "PerLead"
        provides = {"p": int}

        async def process(self, ctx: StepContext) -> Outcome:
            n = counts[ctx.lead_id] = counts.get(ctx.lead_id, 0) + 1
            await asyncio.sleep(0)
            if n <= int(ctx.lead_id) % 4:
                raise ConnectionResetError("flaky")
            return Outcome({"p": ctx.attempt})

    text = yaml.safe_dump({"name": "r", "steps": [{"station": "PerLead", "retry": {"max_attempts": 5}}]})
    async with Engine.from_text(text, [PerLead]) as engine:
        results = await asyncio.gather(*(engine.run({"id": str(i)}) for i in range(100)))
    for i, r in enumerate(results):
        assert r.steps["PerLead"].attempts == i % 4 + 1 == r.data["p"]


# ------------------------------------------------------------------------- cancel and timeouts


async def test_cancelled_error_is_never_retried() -> None:
    started = asyncio.Event()
    calls: list[int] = []

    class Hangs(Station):
        """Waits forever."""

        name = "Hangs"
        provides = {"h": str}
        timeout = None
        retry = RetryPolicy(max_attempts=5, retry_on=("timeout", "connection", "transient", "error"))

        async def process(self, ctx: StepContext) -> Outcome:
            calls.append(ctx.attempt)
            started.set()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    async with Engine.from_text("name: r\nsteps:\n  - station: Hangs\n", [Hangs]) as engine:
        task = asyncio.create_task(engine.run({"id": "c"}))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(5):
            await asyncio.sleep(0)
    assert calls == [1]


async def test_timeout_cancels_the_attempt_cleanly() -> None:
    cleaned: list[int] = []

    class Sleeper(Station):
        """Sleeps far past its timeout."""

        name = "Sleeper"
        provides = {"s": str}
        timeout = 0.05
        retry = RetryPolicy(max_attempts=2)

        async def process(self, ctx: StepContext) -> Outcome:
            try:
                await asyncio.sleep(30)
            finally:
                cleaned.append(ctx.attempt)
            return Outcome({"s": "late"})

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with Engine.from_text("name: r\nsteps:\n  - station: Sleeper\n", [Sleeper]) as engine:
            result = await engine.run({"id": "t"})
        gc.collect()
    rec = result.steps["Sleeper"]
    assert (rec.status, rec.error_category, rec.attempts) == ("failed", "timeout", 2)
    assert cleaned == [1, 2]  # each attempt was cancelled and ran its cleanup
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    assert not [w for w in caught if "never awaited" in str(w.message)]


async def test_slow_vendor_times_out_without_leftovers(srv: FaultServer) -> None:
    srv.default("/v", slow(5.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with engine_for(srv, Spy(), timeout=0.5, retry={**POLICY, "max_attempts": 2}) as engine:
            results = await asyncio.gather(*(engine.run(lead(i)) for i in range(20)))
        gc.collect()
    assert {(r.steps["ToyVendor"].error_category, r.steps["ToyVendor"].attempts) for r in results} == {("timeout", 2)}
    assert srv.count("/v") == 40
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


# ------------------------------------------------------------------------- resume


class MemoryCheckpoints:
    """A checkpointer in a dict (what the engine saves, as JSON-able state)."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], dict[str, Any]] = {}

    async def load(self, run_id: str, lead_id: str) -> dict[str, Any] | None:
        return self.states.get((run_id, lead_id))

    async def save(self, run_id: str, lead_id: str, state: dict[str, Any]) -> None:
        import json

        self.states[(run_id, lead_id)] = json.loads(json.dumps(state))


async def test_attempts_live_in_the_run_context_and_survive_a_resume(srv: FaultServer) -> None:
    # attempt 1: 503; attempt 2: the process "crashes" while the call hangs; resume: attempt 3
    srv.script("/v", status(503), slow(30.0))
    store = MemoryCheckpoints()
    text = route_text(srv, retry={**POLICY, "max_attempts": 3}, timeout=60)
    async with Engine.from_text(text, [ToyVendor], checkpointer=store, run_id="r1") as engine:
        task = asyncio.create_task(engine.run(lead(7)))
        while srv.count("/v") < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    saved = store.states[("r1", "L7")]["steps"]["ToyVendor"]
    assert saved["attempts"] == 2 and saved["intent"] is True
    spy = Spy()
    async with Engine.from_text(text, [ToyVendor], checkpointer=store, run_id="r1", plugins=[spy]) as engine:
        result = await engine.run(lead(7))
    rec = result.steps["ToyVendor"]
    assert (rec.status, rec.attempts, rec.in_doubt) == ("succeeded", 3, True)
    assert srv.count("/v") == 3  # one more call, not a fresh round of three
