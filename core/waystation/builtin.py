"""The core's own default behaviour, written as a plugin so that a third party can override it.

``price_step`` (firstresult) is ``trylast``: any plugin answering first sets the price.
``decide_stop`` is ``trylast``: it contributes the station's own decision; the most severe of all
answers wins, so plugins can only escalate it. ``before_lead`` (``tryfirst``) scopes the log
masking of personal data to the lead (:func:`waystation.redact.lead_scope`).
"""

from __future__ import annotations

from typing import Any

from waystation.forget import Erasure, ForgetRequest, forget_checkpoints
from waystation.hooks import hookimpl
from waystation.redact import lead_scope
from waystation.station import Outcome, Stop


class DefaultsPlugin:
    """Default pricing and stop decision (registered as ``waystation.defaults``)."""

    @hookimpl(trylast=True)
    def price_step(self, outcome: Outcome) -> float | None:
        """Price a step at the cost its outcome reports."""
        return outcome.cost

    @hookimpl(trylast=True)
    def decide_stop(self, outcome: Outcome) -> Any:
        """The station's own stop decision."""
        if outcome.stop is Stop.CONTINUE:
            return None
        return (outcome.stop, outcome.reason or outcome.stop.value)

    @hookimpl(tryfirst=True)
    def before_lead(self, ctx: Any) -> None:
        """Mask this lead's names, phones and e-mails in every log record of its run."""
        lead_scope(ctx.input)

    @hookimpl
    async def forget_person(self, request: ForgetRequest) -> list[Erasure]:
        """Erase the person's lead states from the checkpoint store (``request.checkpoint``) and,
        when it is a worker fleet's, their results and queued messages (:mod:`waystation.worker.forget`)."""
        erased = await forget_checkpoints(request)
        from waystation.worker.forget import fleet_of, forget_worker_runs

        if fleet_of(request.checkpoint) is not None:
            erased += await forget_worker_runs(request)
        return erased
