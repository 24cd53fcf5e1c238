"""Preflight: everything that can be known before the first lead runs, checked then, all at once.

``waystation check ROUTE``, ``waystation run --dry-run`` and the start of every ``run`` and ``enqueue`` call
:func:`preflight`; every worker runs :func:`check_settings` again on its own host before it takes
a run's leads (:mod:`waystation.worker.preflight`). Each problem is one line that says what to do:

- **Input columns** (when the input file is known): a field a step requires that neither the
  input nor an earlier step really provides is an error naming the step, the field, the columns
  the file has and the closest column (``'Phone Number' looks like 'phone': add --map 'Phone
  Number=phone'``). A step that reads a field and gives it back normalised (the identity station
  and ``phone``) does not count as providing it: the value has to come from the input. A field
  that only a paid lookup could provide is a warning (the route will buy it for every lead).
- **Delimiter**: a CSV header that is a single column containing tabs, semicolons or pipes means
  the file is not comma-separated: an error suggesting ``--delimiter``.
- **Settings and secrets**: a station's ``required_settings`` that have no value (an API key)
  are errors naming the environment variable to set; each station's own ``preflight()`` (e.g. a
  DNC data file that does not exist) adds its problems.
- **Conditions**: a condition naming a field that no step provides and the input does not have is
  an error when the input is known, a warning otherwise (with the closest known field).

The standard-input-field assumption (:data:`waystation.lead.STANDARD_INPUT_FIELDS`) is used only
when the input is *not* known; once it is, only its real columns count.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from waystation.errors import Problem
from waystation.lead import STANDARD_INPUT_FIELDS
from waystation.plan import Plan, PlannedStep

_NORM = re.compile(r"[^a-z0-9]+")


def _norm(name: str) -> str:
    return _NORM.sub("", name.lower())


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name`` (case, spaces and punctuation aside), or ``None``."""
    cands = [c for c in candidates if c != name]
    n = _norm(name)
    if not n:
        return None
    for c in cands:
        if _norm(c) == n:
            return c
    contained = [c for c in cands if _norm(c) and (n in _norm(c) or _norm(c) in n)]
    if contained:
        return min(contained, key=lambda c: abs(len(_norm(c)) - len(n)))
    by_norm = {_norm(c): c for c in cands if _norm(c)}
    hit = difflib.get_close_matches(n, list(by_norm), n=1, cutoff=0.75)
    return by_norm[hit[0]] if hit else None


def parse_maps(items: Iterable[str]) -> dict[str, str]:
    """``["Phone Number=phone", ...]`` → ``{"Phone Number": "phone"}`` (raises ``ValueError``)."""
    out: dict[str, str] = {}
    for item in items:
        src, sep, dst = item.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise ValueError(f"--map {item!r}: write it as --map 'Input Column=field'")
        out[src.strip()] = dst.strip()
    return out


def apply_map(columns: Sequence[str], mapping: Mapping[str, str]) -> list[str]:
    """``columns`` with the mapped ones renamed."""
    return [mapping.get(c, c) for c in columns]


def delimiter_problem(columns: Sequence[str] | None, delimiter: str) -> str | None:
    """Why a one-column header looks like another delimiter was meant, or ``None``."""
    if not columns or len(columns) != 1:
        return None
    head = columns[0]
    for ch, name, flag in (("\t", "tab", "'\\t'"), (";", "semicolon", "';'"), ("|", "pipe", "'|'")):
        if ch != delimiter and ch in head:
            return (f"the header is a single column that contains {name}s ({head[:60]!r}): the file looks "
                    f"{name}-separated, not comma-separated: add --delimiter {flag}")
    return None


@dataclass
class PreflightResult:
    """Problems found before any lead runs: ``errors`` refuse the run, ``warnings`` do not."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether nothing refuses the run."""
        return not self.errors


def _env_name(settings_cls: type, name: str) -> str:
    f = getattr(settings_cls, "model_fields", {}).get(name)
    alias = getattr(f, "validation_alias", None) if f is not None else None
    if isinstance(alias, str):
        return alias
    prefix = str(getattr(settings_cls, "model_config", {}).get("env_prefix", "") or "")
    return f"{prefix}{name}".upper()


def _empty(value: object) -> bool:
    if value is None:
        return True
    getter = getattr(value, "get_secret_value", None)
    if callable(getter):
        value = getter()
    return value == "" or value == [] or value == ()


def _where(plan: Plan, ps: PlannedStep, *key: str | int) -> tuple[str | None, int | None, int | None]:
    pos = plan.route.position("steps", ps.index, *key)
    return plan.route.file, (pos[0] if pos else None), (pos[1] if pos else None)


def check_settings(plan: Plan) -> list[Problem]:
    """Required settings without a value, and each runnable station's own ``preflight()``."""
    problems: list[Problem] = []
    for ps in plan.steps:
        if not ps.runnable or ps.station is None or ps.settings is None:
            continue
        cls = ps.station
        for name in cls.required_settings:
            if _empty(getattr(ps.settings, name, None)):
                env = _env_name(type(ps.settings), name)
                paid = " (a paid station: nothing would be bought, every lead would wait at it)" \
                    if ps.paid else ""
                problems.append(Problem(
                    f"step {ps.id!r}: {cls.name} needs {name!r} and it is not set{paid}: set the environment "
                    f"variable {env} (or disable the step with enabled: false)", *_where(plan, ps, "station")))
        try:
            found = cls(ps.settings).preflight()
        except Exception as exc:
            found = [f"its preflight check raised {type(exc).__name__}: {exc}"]
        for msg in found:
            problems.append(Problem(f"step {ps.id!r}: {cls.name}: {msg}", *_where(plan, ps, "settings")))
    return problems


def _normalizer(ps: PlannedStep, f: str) -> bool:
    """Whether ``ps`` reads ``f`` and gives it back (so ``f`` must come from the input)."""
    return f in ps.optional or f in ps.requires


def check_input(plan: Plan, columns: Sequence[str], what: str = "the input") -> PreflightResult:
    """The input's real columns against what the route's steps require (see the module doc)."""
    res = PreflightResult()
    have = set(columns)
    listed = ", ".join(columns) or "none"
    reported: set[str] = set()
    for ps in plan.steps:
        if not ps.runnable:
            continue
        for f in ps.requires:
            if f in have or f in reported:
                continue
            providers = [p for p in plan.steps[: ps.index] if p.runnable and f in p.provides]
            genuine = [p for p in providers if not _normalizer(p, f)]
            hint = closest(f, columns)
            fix = f": {hint!r} looks like {f!r}: add --map '{hint}={f}'" if hint else \
                " (add the column, or --map 'Your Column=" + f + "')"
            if genuine:
                if all(p.paid for p in genuine):
                    reported.add(f)
                    res.warnings.append(Problem(
                        f"{what} has no {f!r} column (columns: {listed}): step {ps.id!r} needs it and only "
                        f"{', '.join(repr(p.id) for p in genuine)} can provide it, at a price, for every lead"
                        + (fix if hint else ""), *_where(plan, ps, "station")))
                continue
            reported.add(f)
            via = f" (step {providers[0].id!r} only normalises it)" if providers else ""
            res.errors.append(Problem(
                f"step {ps.id!r} requires {f!r}, which {what} does not have{via}; its columns: {listed}{fix}",
                *_where(plan, ps, "station")))
    return res


def check_conditions(plan: Plan, columns: Sequence[str] | None) -> PreflightResult:
    """Fields named in conditions that nothing provides: an error when the input is known,
    a warning otherwise (judged against the standard input fields and the route's ``input:``)."""
    res = PreflightResult()
    provided = {f for s in plan.steps for f in s.provides}
    declared = set(plan.route.spec.input or ())
    base = set(columns) if columns is not None else set(STANDARD_INPUT_FIELDS) | declared
    known = provided | base
    for ps in plan.steps:
        if ps.condition is None or not ps.runnable:
            continue
        for f in sorted(ps.condition.fields):
            if f in known:
                continue
            hint = closest(f, known)
            did = f" (did you mean {hint!r}?)" if hint else ""
            where = "the input's columns" if columns is not None else "the standard input fields"
            msg = (f"the condition of step {ps.id!r} ({ps.spec.condition!r}) names field {f!r}, which no step "
                   f"provides and which is not among {where}{did}")
            (res.errors if columns is not None else res.warnings).append(
                Problem(msg, *_where(plan, ps, "condition")))
    return res


def preflight(plan: Plan, columns: Sequence[str] | None = None, *, what: str = "the input",
              delimiter: str = ",") -> PreflightResult:
    """Every check of the module docstring; ``columns``: the input's real columns (after
    ``--map``), or ``None`` when the input is not known (``check`` without an input)."""
    res = PreflightResult()
    if columns is not None:
        bad = delimiter_problem(columns, delimiter)
        if bad is not None:
            res.errors.append(Problem(f"{what}: {bad}", plan.route.file))
        else:
            found = check_input(plan, columns, what)
            res.errors += found.errors
            res.warnings += found.warnings
    conds = check_conditions(plan, columns if columns is not None and not res.errors else None)
    res.errors += conds.errors
    res.warnings += conds.warnings
    res.errors += check_settings(plan)
    return res
