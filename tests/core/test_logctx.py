"""Fields bound while a step runs reach every record logged meanwhile, per task."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from waystation import logctx
from waystation.cli.logs import JsonFormatter


async def test_bound_fields_reach_records_of_their_own_task_only() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logctx.ContextFilter())
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("waystation.test.logctx")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    async def step(lead: str, attempt: int) -> None:
        token = logctx.bind(station="S", lead_id=lead, attempt=attempt)
        try:
            await asyncio.sleep(0.01)
            log.info("working on %s", lead)
            log.info("own category", extra={"category": "timeout", "attempt": 9})
        finally:
            logctx.reset(token)

    try:
        await asyncio.gather(step("L1", 1), step("L2", 2))
        log.info("outside")
    finally:
        log.removeHandler(handler)
    recs = [json.loads(line) for line in stream.getvalue().splitlines()]
    work = {r["message"]: r for r in recs if r["message"].startswith("working")}
    assert work["working on L1"]["lead_id"] == "L1" and work["working on L1"]["attempt"] == 1
    assert work["working on L2"]["lead_id"] == "L2" and work["working on L2"]["attempt"] == 2
    own = [r for r in recs if r["message"] == "own category"]
    assert {r["attempt"] for r in own} == {9} and {r["category"] for r in own} == {"timeout"}
    outside = next(r for r in recs if r["message"] == "outside")
    assert "lead_id" not in outside and logctx.current() == {}
