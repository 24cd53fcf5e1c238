"""A refused key, a block page or an exhausted quota opens the breaker at once (no threshold)."""

from __future__ import annotations

import pytest
from toys import make
from waystation import AuthError, BlockedError, BreakerPolicy, Engine, QuotaExhaustedError


@pytest.mark.parametrize(("error", "cause"), [(AuthError("401 bad key"), "auth"),
                                               (BlockedError("captcha"), "blocked"),
                                               (QuotaExhaustedError("monthly quota"), "exhausted")])
async def test_opens_at_first_such_failure(error: Exception, cause: str) -> None:
    vendor = make("Vendor", {"v": str}, raises=error, breaker=BreakerPolicy(failure_threshold=5))
    backup = make("Backup", {"v": str}, value={"v": "from backup"})
    text = "name: r\nsteps:\n  - station: Vendor\n  - station: Backup\n    fallback: true\n"
    async with Engine.from_text(text, [vendor, backup]) as engine:
        first = await engine.run({"id": 1})
        second = await engine.run({"id": 2})
        state = await engine.breaker("Vendor").state()  # type: ignore[union-attr]
    assert first.steps["Vendor"].status == "failed"
    assert second.steps["Vendor"].reason == "breaker_open"
    assert second.data["v"] == "from backup"
    assert (state.state.value, state.cause) == ("open", cause)
