"""``check_station_contract``: does a station honour what it declares?

It calls the station's ``process`` directly (no retries, no engine defaults hiding anything) on a
sample lead and checks, each as a named *violation* in a :class:`ContractReport`:

- ``docstring``: the class has its own docstring;
- ``declarations``: name, requires/optional/provides well formed, cost ≥ 0, ``paid`` consistent,
  ``Settings`` a :class:`~waystation.StationSettings`, secret-looking settings declared ``SecretStr``;
- ``outcome``: ``process`` returns an :class:`~waystation.Outcome` with only declared fields of
  the declared types, and an actual cost no higher than the declared one;
- ``mutation``: the lead it is given is not changed (top level is read-only, nested values are
  compared with a deep copy afterwards);
- ``reads``: it reads only fields it ``requires`` or lists as ``optional`` (``ctx.data`` is a
  recording mapping);
- ``cost``: it declares a cost when it calls a (paid) vendor: an HTTP request reaching the fake
  vendor while ``cost == 0`` is a violation unless the class says ``paid = False``;
- ``cancellation``: cancelled mid-call, it stops promptly, lets ``CancelledError`` propagate, and
  leaves no task running and no coroutine un-awaited;
- ``secrets``: no secret setting value appears in a URL, query string, body or non-auth header
  the fake vendor received, in a log record, in the outcome, or in an error message;
- ``process`` / ``lifecycle``: ``open``/``process``/``close`` do not raise on the sample lead.

Point the station at the fake vendor through its settings: a string setting containing
``{vendor_url}`` is formatted with the fake vendor's base URL.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import inspect
import json
import re
import threading
import traceback
import types
import typing
import warnings
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import SecretStr

from waystation.plan import outcome_model
from waystation.station import Outcome, Station, StationSettings, StepContext
from waystation.testing.fake_vendor import FakeVendor, ReplySpec

T = TypeVar("T")

#: Values used for required fields when no sample lead is given.
SAMPLE_VALUES: Mapping[str, Any] = {
    "phone": "+14155550100", "email": "jane.doe@example.com", "first_name": "Jane", "last_name": "Doe",
    "name": "Jane Doe", "full_name": "Jane Doe", "city": "San Francisco", "state": "CA",
    "zipcode": "94105", "zip": "94105", "address": "1 Market St", "street": "1 Market St",
}

_SECRET_NAME = re.compile(r"(api_?key|apikey|secret|secret_key|password|passwd|token|access_key)$", re.I)
_PLAIN = (str, int, float, bool)
_READ_ONLY = "ctx.data is read-only: a station returns new fields in its Outcome, it never changes the lead"


@dataclass(frozen=True)
class Violation:
    """One broken promise: which check, and what happened."""

    check: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.message}"


@dataclass
class ContractReport:
    """The result of :func:`check_station_contract`."""

    station: str
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outcome: Outcome | None = None
    fields_read: list[str] = field(default_factory=list)
    requests: int = 0

    @property
    def ok(self) -> bool:
        """Whether no violation was found."""
        return not self.violations

    def checks_failed(self) -> set[str]:
        """The names of the checks with at least one violation."""
        return {v.check for v in self.violations}

    def add(self, check: str, message: str) -> None:
        """Record a violation."""
        self.violations.append(Violation(check, message))

    def __str__(self) -> str:
        head = f"station contract of {self.station}: " + (
            "ok" if self.ok else f"{len(self.violations)} violation(s)")
        lines = [head, *(f"  - {v}" for v in self.violations), *(f"  note: {n}" for n in self.notes)]
        return "\n".join(lines)

    def raise_for_violations(self) -> None:
        """Raise :class:`ContractViolation` listing every violation, if there is any."""
        if self.violations:
            raise ContractViolation(self)


class ContractViolation(AssertionError):
    """A station broke its contract; ``.report`` lists every violation."""

    def __init__(self, report: ContractReport) -> None:
        self.report = report
        super().__init__(str(report))


class RecordingMapping(Mapping[str, Any]):
    """A read-only view of a lead that records which fields are read (and any write attempt)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)
        self.reads: list[str] = []
        self.iterated = False
        self.writes: list[str] = []

    def __getitem__(self, key: str) -> Any:
        if key not in self.reads:
            self.reads.append(key)
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        self.iterated = True
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"RecordingMapping({self._data!r})"

    def _refuse(self, what: str) -> typing.NoReturn:
        self.writes.append(what)
        raise TypeError(_READ_ONLY)

    def __setitem__(self, key: str, value: Any) -> None:
        self._refuse(f"ctx.data[{key!r}] = ...")

    def __delitem__(self, key: str) -> None:
        self._refuse(f"del ctx.data[{key!r}]")

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Refused: the lead is read-only."""
        self._refuse("ctx.data.update(...)")

    def pop(self, key: str, *default: Any) -> Any:
        """Refused: the lead is read-only."""
        self._refuse(f"ctx.data.pop({key!r})")

    def popitem(self) -> Any:
        """Refused: the lead is read-only."""
        self._refuse("ctx.data.popitem()")

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Refused: the lead is read-only."""
        self._refuse(f"ctx.data.setdefault({key!r}, ...)")

    def clear(self) -> None:
        """Refused: the lead is read-only."""
        self._refuse("ctx.data.clear()")


def fill_vendor_url(value: T, url: str) -> T:
    """``value`` with ``{vendor_url}`` replaced by ``url`` in every string (recursively)."""
    if isinstance(value, str):
        return value.replace("{vendor_url}", url)  # type: ignore[return-value]
    if isinstance(value, Mapping):
        return {k: fill_vendor_url(v, url) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list | tuple):
        return type(value)(fill_vendor_url(v, url) for v in value)
    return value


def sample_lead_for(station: type[Station]) -> dict[str, Any]:
    """A lead with a plausible value for each field ``station`` requires."""
    return {f: SAMPLE_VALUES.get(f, f"sample-{f}") for f in station.requires}


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, also when an event loop is already
    running in this thread (then it runs in a fresh loop in a helper thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_as_coro(factory))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(_as_coro(factory))
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target, name="waystation-contract", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


async def _as_coro(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


# ----------------------------------------------------------------------------- static checks


def _is_type_like(tp: Any) -> bool:
    return isinstance(tp, type) or typing.get_origin(tp) is not None or isinstance(tp, types.UnionType)


def _secret_annotation(tp: Any) -> bool:
    if tp is SecretStr:
        return True
    return any(a is SecretStr for a in typing.get_args(tp))


def check_declarations(station: type[Station], report: ContractReport) -> None:
    """The static part of the contract (no call is made)."""
    own_doc = station.__dict__.get("__doc__")
    if not (isinstance(own_doc, str) and own_doc.strip()):
        report.add("docstring", f"{station.__qualname__} has no docstring of its own: say what it does, "
                                "what it costs and when it stops the route")
    if not isinstance(station.name, str) or not station.name:
        report.add("declarations", "name is empty: set name = \"MyStation\"")
    for attr in ("requires", "optional"):
        value = getattr(station, attr)
        if isinstance(value, str) or not all(isinstance(f, str) for f in value):
            report.add("declarations", f"{attr} must be a tuple of field names, got {value!r}")
    provides = station.provides
    if not isinstance(provides, Mapping):
        report.add("declarations", f"provides must map field name -> type, got {type(provides).__name__}")
    else:
        if not provides:
            report.notes.append("provides is empty: fine for a pure side-effect station, otherwise declare "
                                "every field the station may add")
        for k, tp in provides.items():
            if not isinstance(k, str) or not _is_type_like(tp):
                report.add("declarations", f"provides[{k!r}] = {tp!r} is not a type")
        try:
            outcome_model(station)
        except Exception as exc:
            report.add("declarations", f"provides cannot be validated: {exc}")
    if not isinstance(station.cost, int | float) or station.cost < 0:
        report.add("declarations", f"cost must be a number >= 0, got {station.cost!r}")
    elif station.paid is True and station.cost == 0 and not _prices_from_settings(station):
        report.add("cost", "paid = True but cost is 0: declare the price per call so budgets can reserve it")
    if not (isinstance(station.Settings, type) and issubclass(station.Settings, StationSettings)):
        report.add("declarations", "Settings must subclass waystation.StationSettings")
    else:
        for fname, finfo in station.Settings.model_fields.items():
            names = {fname, *(a for a in (finfo.alias, finfo.validation_alias) if isinstance(a, str))}
            if any(_SECRET_NAME.search(n) for n in names) and not _secret_annotation(finfo.annotation):
                report.add("secrets", f"setting {fname!r} looks like a secret but is not declared SecretStr")
    process = station.__dict__.get("process") or getattr(station, "process", None)
    if process is Station.process:
        report.add("declarations", "process() is not implemented")
    elif not inspect.iscoroutinefunction(process):
        report.add("declarations", "process() must be an async def")


def _type_problems(station: type[Station], fields: Mapping[str, Any]) -> list[str]:
    problems = []
    provides = station.provides
    for k, v in fields.items():
        tp = provides.get(k)
        if tp is None:
            problems.append(f"returned field {k!r}, which it does not declare in provides "
                            f"({', '.join(provides) or 'nothing'})")
            continue
        if v is None:
            continue
        if tp in _PLAIN:
            if tp is float:
                ok = isinstance(v, int | float) and not isinstance(v, bool)
            else:
                ok = isinstance(v, tp) and not (tp is int and isinstance(v, bool))
            if not ok:
                problems.append(f"returned field {k!r} as {type(v).__name__}, declared {tp.__name__}")
            continue
        try:
            outcome_model(station).model_validate({k: v})
        except Exception as exc:
            errors = getattr(exc, "errors", None)
            detail = "; ".join(e["msg"] for e in errors()) if callable(errors) else str(exc)
            problems.append(f"returned field {k!r} not matching its declared type {tp!r}: {detail}")
    return problems


def _diff(before: Any, after: Any, path: str = "") -> list[str]:
    if type(before) is not type(after):
        return [path or "<lead>"]
    if isinstance(before, dict):
        out = []
        for k in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{k}" if path else str(k)
            if k not in before or k not in after:
                out.append(sub)
            else:
                out.extend(_diff(before[k], after[k], sub))
        return out
    if isinstance(before, list | tuple):
        if len(before) != len(after):
            return [path]
        return [d for i, (a, b) in enumerate(zip(before, after, strict=True)) for d in _diff(a, b, f"{path}[{i}]")]
    try:
        return [] if before == after else [path]
    except Exception:  # pragma: no cover - exotic values
        return []


def _prices_from_settings(station: type[Station]) -> bool:
    """Whether the station overrides ``declared_cost`` (its price is a setting)."""
    return getattr(station.declared_cost, "__func__", None) is not Station.declared_cost.__func__  # type: ignore[attr-defined]


def _redact(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


def _describe(exc: BaseException, secrets: Iterable[str]) -> str:
    return _redact(f"{type(exc).__name__}: {exc}", secrets)


# ----------------------------------------------------------------------------- the check


async def check_station_contract_async(
    station: type[Station],
    sample_lead: Mapping[str, Any] | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
    vendor: FakeVendor | None = None,
    fake_responses: Mapping[str, ReplySpec | list[ReplySpec]] | None = None,
    secrets: Iterable[str] = (),
    allow_secret_in: Iterable[str] = (),
    reads_whole_lead: str | None = None,
    cancel_wait: float = 2.0,
    raise_on_violation: bool = True,
) -> ContractReport:
    """The async form of :func:`check_station_contract` (runs in the current event loop)."""
    own_vendor = vendor is None
    fv = FakeVendor() if vendor is None else vendor
    if own_vendor:
        fv.start()
    try:
        if fake_responses:
            fv.declare(fake_responses)
        report = await _check(station, sample_lead, settings, fv, list(secrets), tuple(allow_secret_in),
                              reads_whole_lead, cancel_wait)
    finally:
        if own_vendor:
            fv.stop()
    if raise_on_violation:
        report.raise_for_violations()
    return report


def check_station_contract(
    station: type[Station],
    sample_lead: Mapping[str, Any] | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
    vendor: FakeVendor | None = None,
    fake_responses: Mapping[str, ReplySpec | list[ReplySpec]] | None = None,
    secrets: Iterable[str] = (),
    allow_secret_in: Iterable[str] = (),
    reads_whole_lead: str | None = None,
    cancel_wait: float = 2.0,
    raise_on_violation: bool = True,
) -> ContractReport:
    """Check that ``station`` honours what it declares (see the module docstring for each check).

    - ``sample_lead``: the lead it runs on (default: a plausible value per required field).
    - ``settings``: the step settings; ``{vendor_url}`` in a string is the fake vendor's URL.
    - ``vendor``: the :class:`FakeVendor` to use (e.g. the ``fake_vendor`` fixture); one is
      started for the check when not given. ``fake_responses`` are declared on it
      (``{"/path": reply}``, see :meth:`FakeVendor.declare`).
    - ``secrets``: more secret values to look for (secret settings are looked for anyway).
    - ``allow_secret_in``: ``"query"`` / ``"body"`` when the vendor's API takes its key there.
    - ``reads_whole_lead``: a reason, for a station that legitimately reads every field
      (e.g. one that saves the lead).

    Returns the :class:`ContractReport`; with ``raise_on_violation`` (the default) raises
    :class:`ContractViolation` listing every violation instead. Callable from sync code and from
    inside a running event loop (it then runs in a helper thread with its own loop).
    """
    return run_sync(lambda: check_station_contract_async(
        station, sample_lead, settings=settings, vendor=vendor, fake_responses=fake_responses,
        secrets=secrets, allow_secret_in=allow_secret_in, reads_whole_lead=reads_whole_lead,
        cancel_wait=cancel_wait, raise_on_violation=raise_on_violation))


async def _check(station: type[Station], sample_lead: Mapping[str, Any] | None,
                 settings: Mapping[str, Any] | None, vendor: FakeVendor, extra_secrets: list[str],
                 allow_secret_in: tuple[str, ...], reads_whole_lead: str | None,
                 cancel_wait: float) -> ContractReport:
    report = ContractReport(getattr(station, "name", "") or station.__qualname__)
    check_declarations(station, report)
    if "declarations" in report.checks_failed() and any(
            "process()" in v.message or "Settings" in v.message for v in report.violations):
        return report
    if sample_lead is None:
        sample_lead = sample_lead_for(station)
        report.notes.append(f"no sample lead given; used {sample_lead}")
    try:
        step_settings = station.Settings(**fill_vendor_url(dict(settings or {}), vendor.url))
    except Exception as exc:
        report.add("lifecycle", f"settings do not validate: {exc}")
        return report
    secrets = [*step_settings.secret_values(), *(s for s in extra_secrets if s)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop = asyncio.get_running_loop()
        loop_errors: list[str] = []
        old_handler = loop.get_exception_handler()
        loop.set_exception_handler(lambda _loop, context: loop_errors.append(str(context.get("message"))))
        try:
            await _exercise(station, sample_lead, step_settings, vendor, secrets, allow_secret_in,
                            reads_whole_lead, cancel_wait, report)
        finally:
            gc.collect()
            await asyncio.sleep(0)
            loop.set_exception_handler(old_handler)
    for w in caught:
        text = str(w.message)
        if "never awaited" in text:
            report.add("cancellation", f"a coroutine was never awaited: {text}")
    for text in loop_errors:
        if "destroyed but it is pending" in text or "never retrieved" in text:
            report.add("cancellation", f"asyncio reported: {text}")
    return report


async def _exercise(station: type[Station], sample_lead: Mapping[str, Any], step_settings: StationSettings,
                    vendor: FakeVendor, secrets: list[str], allow_secret_in: tuple[str, ...],
                    reads_whole_lead: str | None, cancel_wait: float, report: ContractReport) -> None:
    try:
        inst = station(step_settings)
        await inst.open()
    except Exception as exc:
        report.add("lifecycle", f"creating or opening the station raised {_describe(exc, secrets)}")
        return
    error_texts: list[str] = []
    try:
        await _normal_call(station, inst, sample_lead, step_settings, vendor, secrets, allow_secret_in,
                           reads_whole_lead, report, error_texts)
        await _cancelled_call(inst, sample_lead, step_settings, vendor, secrets, cancel_wait, report)
    finally:
        try:
            await inst.close()
        except Exception as exc:
            report.add("lifecycle", f"close() raised {_describe(exc, secrets)}")
            error_texts.append(f"{exc}\n{traceback.format_exc()}")
    for secret in secrets:
        if any(secret in t for t in error_texts):
            report.add("secrets", "a secret setting value appears in an error message or traceback")


def _context(lead: RecordingMapping, station_name: str, settings: StationSettings, step: str) -> StepContext:
    ctx = StepContext({}, lead_id="contract-lead", step_id=step, route=f"contract-{station_name}",
                      run_id=None, settings=settings, budget=None)
    ctx.data = lead
    return ctx


async def _normal_call(station: type[Station], inst: Station, sample_lead: Mapping[str, Any],
                       step_settings: StationSettings, vendor: FakeVendor, secrets: list[str],
                       allow_secret_in: tuple[str, ...], reads_whole_lead: str | None,
                       report: ContractReport, error_texts: list[str]) -> None:
    original = copy.deepcopy(dict(sample_lead))
    given = copy.deepcopy(dict(sample_lead))
    declared = float(station.declared_cost(step_settings))
    lead = RecordingMapping(given)
    ctx = _context(lead, station.name, step_settings, station.name or "contract")
    before = vendor.count()
    out: Any = None
    with vendor.capture_logs() as records:
        try:
            out = await asyncio.wait_for(inst.process(ctx), station.timeout or 60.0)
        except TimeoutError:
            report.add("process", f"process() did not return within {station.timeout or 60.0:g}s on the "
                                  "sample lead")
        except Exception as exc:
            error_texts.append(f"{exc}\n{traceback.format_exc()}")
            if lead.writes and isinstance(exc, TypeError):
                pass
            else:
                report.add("process", f"process() raised {_describe(exc, secrets)} on the sample lead")
    log_lines = [f"{r.getMessage()} {r.exc_info[1] if r.exc_info else ''}" for r in records]
    report.requests = vendor.count() - before
    report.fields_read = list(lead.reads)
    # mutation
    if lead.writes:
        report.add("mutation", "tried to change the lead: " + "; ".join(lead.writes))
    changed = _diff(original, lead._data)
    if changed:
        report.add("mutation", "changed the lead it was given (nested values): " + ", ".join(changed))
    # reads
    allowed = set(station.requires) | set(station.optional)
    if lead.iterated:
        if reads_whole_lead is None:
            report.add("reads", "iterates over the whole lead (dict(ctx.data), ctx.data.items(), ...): read "
                                "only the fields it requires or lists as optional")
        else:
            report.notes.append(f"reads the whole lead: {reads_whole_lead}")
    else:
        stray = [f for f in lead.reads if f not in allowed]
        if stray:
            report.add("reads", f"reads {', '.join(repr(f) for f in stray)}, which it neither requires nor "
                                "lists as optional (the planner would not wait for them)")
    # outcome
    if out is not None:
        if not isinstance(out, Outcome):
            report.add("outcome", f"process() returned {type(out).__name__}, not an Outcome")
        else:
            report.outcome = out
            for p in _type_problems(station, out.fields):
                report.add("outcome", p)
            if out.cost > declared + 1e-12:
                report.add("cost", f"incurred ${out.cost:g} but declares cost ${declared:g}: the budget "
                                   "reserves the declared cost, so declare at least what a call may cost")
            text = json.dumps({"fields": out.fields, "reason": out.reason, "misses": out.misses}, default=str)
            if any(s in text for s in secrets):
                report.add("secrets", "a secret setting value appears in the outcome")
    # paid vendor without a cost
    if report.requests and declared == 0 and station.paid is not False:
        report.add("cost", f"made {report.requests} HTTP request(s) to the vendor but declares cost 0: "
                           "declare the price per call, or set paid = False if the vendor is free")
    # secrets
    for secret in secrets:
        for leak in vendor.secret_leaks(secret, allow_in=allow_secret_in, logs=log_lines):
            report.add("secrets", f"secret setting value leaked {leak}")


async def _cancelled_call(inst: Station, sample_lead: Mapping[str, Any], step_settings: StationSettings,
                          vendor: FakeVendor, secrets: list[str], cancel_wait: float,
                          report: ContractReport) -> None:
    lead = RecordingMapping(copy.deepcopy(dict(sample_lead)))
    ctx = _context(lead, type(inst).name, step_settings, "contract-cancel")
    current = asyncio.current_task()
    existing = set(asyncio.all_tasks())
    before = vendor.count()
    with vendor.hold(timeout=cancel_wait + 5.0):
        task = asyncio.ensure_future(inst.process(ctx))
        waited = 0.0
        while not task.done() and vendor.count() == before and waited < 1.0:
            await asyncio.sleep(0.01)
            waited += 0.01
        if task.done():
            report.notes.append("cancellation not exercised: process() finished before it could be cancelled")
            if not task.cancelled() and task.exception() is not None:
                task.exception()  # retrieved; the normal call reports errors
            return
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=cancel_wait)
        if not done:
            report.add("cancellation", f"process() did not stop within {cancel_wait:g}s of being cancelled")
            return
        if not task.cancelled():
            exc = task.exception()
            if exc is None:
                report.add("cancellation", "process() swallowed the cancellation and returned a result: let "
                                           "asyncio.CancelledError propagate")
            else:
                report.add("cancellation", f"process() raised {_describe(exc, secrets)} when cancelled instead "
                                           "of letting asyncio.CancelledError propagate")
        for _ in range(3):
            await asyncio.sleep(0)
        leaked = [t for t in asyncio.all_tasks() if t is not current and t not in existing and not t.done()]
        if leaked:
            names = ", ".join(_task_name(t) for t in leaked)
            report.add("cancellation", f"left {len(leaked)} task(s) running after it was cancelled: {names}")
            for t in leaked:
                t.cancel()
            await asyncio.gather(*leaked, return_exceptions=True)


def _task_name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    qual = getattr(coro, "__qualname__", None) or type(coro).__name__
    return f"{task.get_name()} ({qual})"


__all__ = [
    "ContractReport",
    "ContractViolation",
    "RecordingMapping",
    "Violation",
    "check_declarations",
    "check_station_contract",
    "check_station_contract_async",
    "fill_vendor_url",
    "run_sync",
    "sample_lead_for",
]
