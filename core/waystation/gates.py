"""Gates fail closed: what happens to a lead when a gate step does not pass.

A *gate* is a step whose verdict later steps rely on (a Do-Not-Call scrub, a phone-line gate). A
station declares itself one with the class attribute ``gate = True``; a route step may say
``gate: true`` or ``gate: false`` to override. Every later step of the route waits for a gate
(it depends on it), so nothing after a gate runs before its verdict is known.

A gate *passes* when it succeeded, or when it was skipped by an explicit choice of the route: its
``condition`` was false, it is ``enabled: false``, or, as a fallback, it was not needed. In every
other case the lead is **held** at the gate and no later step runs:

=============================  ==============  ===================================================
the gate did not run because   lead status     on ``run --resume RUN_ID``
=============================  ==============  ===================================================
breaker open                   ``held``        retried (a fault)
the call failed (after its     ``held``        retried, for faults: ``transient``, ``timeout``,
retries)                                       ``server_error``, ``throttled``, ``connection``,
                                               ``auth`` (e.g. no API key), ``blocked``,
                                               ``exhausted``, ``bad_request`` (a configuration
                                               error), ``error`` (an unexpected exception)
the call failed permanently    ``failed``      not retried (``permanent``, ``invalid_output``)
its required inputs missing    ``failed``      not retried (fix the input; see preflight)
the lead budget had no room    ``failed``      not retried (raise the route's ``budget``)
the batch budget had no room   ``held``        retried; raise ``--budget-total`` on resume
a ``decide_stop`` hook raised  ``held``        retried (the verdict is unknown)
=============================  ==============  ===================================================

A ``held`` lead is not done: its checkpoint says so, it is written to the output and the rejects
file with ``_status=held`` and a ``_reason`` naming the step and the cause, and ``run --resume``
runs it again from the gate (completed steps, paid ones included, are not repeated).

The same holding applies to *any* paid step the **batch** budget can no longer cover: the lead
stops there and is ``held``, so that raising ``--budget-total`` on resume continues it (a step the
*lead's* own budget cannot cover is skipped with reason ``budget`` and the lead goes on, as the
route's budget says).
"""

from __future__ import annotations

from typing import NamedTuple

from waystation.station import Stop

#: Error categories after which a failed gate holds the lead for a retry on resume.
PERMANENT_CATEGORIES = frozenset({"permanent", "invalid_output"})


class Decision(NamedTuple):
    """What the route does after a step: ``stop`` and its ``reason``; ``held`` when the lead is
    held (not done, retried on resume) rather than failed for good."""

    stop: Stop
    reason: str | None = None
    held: bool = False
    cause: str | None = None

    @property
    def rank(self) -> tuple[int, int]:
        """Severity: CONTINUE < SKIP_REMAINING < held < FAIL."""
        return (self.stop.severity, 0 if self.held else 1)


GO = Decision(Stop.CONTINUE)


def is_fault(category: str | None) -> bool:
    """Whether a failure of this category may go away by itself (the lead is held, not failed)."""
    return (category or "error") not in PERMANENT_CATEGORIES


def hold(step: str, why: str, detail: str | None = None, *, fault: bool = True) -> Decision:
    """The decision of a gate ``step`` that did not pass because of ``why`` (a short cause such as
    ``breaker_open``, ``missing_requirements``, ``server_error``)."""
    text = f"gate {step} did not pass: {why}" + (f" ({detail})" if detail else "")
    if fault:
        text += "; the lead is held and retried by run --resume"
    return Decision(Stop.FAIL, text, held=fault, cause=f"gate {step}: {why}")


def budget_hold(step: str) -> Decision:
    """The decision when the batch budget cannot cover ``step``."""
    return Decision(Stop.FAIL, f"batch budget exhausted before {step}; the lead is held: raise "
                               "--budget-total and run --resume to continue it", held=True,
                    cause="batch budget")
