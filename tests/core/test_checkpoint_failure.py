"""A checkpoint store that fails to save a paid step's intent (Redis restarting under a worker) is
the lead's error, not the station's: no call is made and no failed step is recorded."""

from __future__ import annotations

import pytest
import toys
from waystation import Engine
from waystation.errors import CheckpointFailed
from waystation.stores.memory import MemoryStore


class FlakyStore(MemoryStore):
    """Fails every save while ``down``."""

    down = False

    async def save(self, run_id, lead_id, state):
        if self.down:
            raise ConnectionError("Connection closed by server.")
        await super().save(run_id, lead_id, state)


async def test_a_failed_intent_save_raises_and_makes_no_call_then_the_lead_resumes() -> None:
    rec = toys.reset()
    store = FlakyStore("memory://")
    paid = toys.make("Paid", {"p": str}, cost=0.01)
    engine = Engine.from_text("name: r\nsteps:\n  - station: Paid\n", [paid], checkpointer=store, run_id="r")
    store.down = True
    with pytest.raises(CheckpointFailed, match="the call was not made"):
        await engine.run({"id": "L1"})
    assert rec.calls == []  # the vendor was never called
    store.down = False
    result = await engine.run({"id": "L1"})
    assert result.status == "succeeded" and result.steps["Paid"].status == "succeeded"
    assert result.steps["Paid"].attempts == 1 and rec.calls == ["Paid"]
