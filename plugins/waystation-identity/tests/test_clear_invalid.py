"""An unusable input phone or e-mail is removed from the lead, so later steps don't pay for it."""

from __future__ import annotations

from waystation import Outcome, Station, StepContext
from waystation.testing import run_route
from waystation_identity.stations import IdentityResolutionStation


class Lookup(Station):
    """A paid phone lookup that must not run on a number that is not one."""

    name = "Lookup"
    requires = ("phone",)
    provides = {"line_type": str}
    cost = 0.01
    calls = 0

    async def process(self, ctx: StepContext) -> Outcome:
        Lookup.calls += 1
        return Outcome({"line_type": "mobile"}, cost=0.01)


ROUTE = "name: r\nsteps:\n  - station: IdentityResolutionStation\n  - station: Lookup\n"


async def test_invalid_phone_is_cleared_and_not_looked_up() -> None:
    Lookup.calls = 0
    [bad, good] = await run_route(ROUTE, [{"id": "1", "name": "Ada Lovelace", "phone": "12"},
                                          {"id": "2", "name": "Ada Lovelace", "phone": "(415) 555-2671"}],
                                  [IdentityResolutionStation, Lookup])
    assert "phone" not in bad.data and bad.data["phone_valid"] is False
    assert bad.steps["IdentityResolutionStation"].cleared == ["phone"]
    assert bad.steps["Lookup"].reason == "missing_requirements"
    assert good.data["phone"] == "+14155552671" and good.data["line_type"] == "mobile"
    assert Lookup.calls == 1


async def test_clearing_can_be_switched_off() -> None:
    off = "IdentityResolutionStation\n    settings: {clear_invalid: false}\n"
    route = ROUTE.replace("IdentityResolutionStation\n", off, 1)
    [bad] = await run_route(route, [{"id": "1", "name": "Ada Lovelace", "phone": "12"}],
                            [IdentityResolutionStation, Lookup])
    assert bad.data["phone"] == "12"
