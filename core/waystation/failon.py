"""``--fail-on``: when too many leads did not pass, the run's exit status says so.

A rule is ``STATUS[+STATUS...] OP NUMBER[%]``, several separated by commas:
``failed>5%`` (more than 5 % of the leads failed), ``held>0``, ``failed+held>=10``,
``rejected>1%``. Statuses are the report's lead statuses (``succeeded``, ``stopped``, ``held``,
``failed``, ``rejected``, ``unfinished``); ``OP`` is ``>`` or ``>=``; a percentage is of every
lead counted in the report. ``none`` turns the check off. The default of ``waystation run`` is
``held>0``: a run that left leads held (a gate could not run, the batch budget ran out) did not
do everything it was asked and does not exit 0 silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from waystation.report import LEAD_STATUSES

#: Exit status of a run whose ``--fail-on`` rule was met.
EXIT_FAIL_ON = 4
DEFAULT_FAIL_ON = "held>0"

_RULE = re.compile(r"^\s*([a-z_]+(?:\s*\+\s*[a-z_]+)*)\s*(>=|>)\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")


@dataclass(frozen=True)
class FailRule:
    """One parsed rule."""

    statuses: tuple[str, ...]
    op: str
    value: float
    percent: bool
    text: str

    def met(self, leads: Mapping[str, int]) -> tuple[bool, str]:
        """Whether the rule is met by these lead counts, and a sentence saying why."""
        count = sum(int(leads.get(s, 0)) for s in self.statuses)
        total = sum(int(v) for k, v in leads.items() if k != "total")
        measured = (100.0 * count / total if total else 0.0) if self.percent else float(count)
        hit = measured > self.value if self.op == ">" else measured >= self.value
        shown = f"{measured:.1f}%" if self.percent else f"{count}"
        return hit, f"{'+'.join(self.statuses)} = {shown} of {total} leads ({self.text})"


def parse_fail_on(text: str | None) -> list[FailRule]:
    """Parse ``--fail-on``; raises ``ValueError`` with what is wrong."""
    if text is None or text.strip().lower() in ("", "none", "off"):
        return []
    rules = []
    for part in text.split(","):
        m = _RULE.match(part.lower())
        if not m:
            raise ValueError(f"--fail-on {part.strip()!r}: write rules like 'failed>5%', 'held>0' or "
                             "'failed+held>=10', separated by commas")
        statuses = tuple(s.strip() for s in m.group(1).split("+"))
        for s in statuses:
            if s not in LEAD_STATUSES:
                raise ValueError(f"--fail-on {part.strip()!r}: unknown status {s!r}; statuses are "
                                 f"{', '.join(LEAD_STATUSES)}")
        rules.append(FailRule(statuses, m.group(2), float(m.group(3)), bool(m.group(4)), part.strip()))
    return rules


def check_fail_on(rules: list[FailRule], leads: Mapping[str, int]) -> list[str]:
    """The rules met, each as a sentence (empty: the run passes)."""
    out = []
    for rule in rules:
        hit, why = rule.met(leads)
        if hit:
            out.append(why)
    return out
