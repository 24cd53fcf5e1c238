"""``waystation forget --dnc-internal``: a person's number off the local store's internal list."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from waystation import PluginHost
from waystation.forget import Erasure, ForgetRequest, forget_person
from waystation.route import Route
from waystation.testing import run_station
from waystation_dnc import plugin
from waystation_dnc.stations import DNCScrubStation
from waystation_dnc.store import DNCStore


async def test_forget_takes_the_number_off_the_internal_list_only(tmp_path: Path, store_path: Path,
                                                                  write: Callable[[str, str], Path]) -> None:
    internal = write("internal.txt", "(312) 555-0177\n3125550178\n")
    litigators = write("litigators.txt", "3125550177\n")
    settings = {"store": str(store_path), "internal_files": [str(internal)], "litigator_files": [str(litigators)],
                "unloaded_area_code": False}
    before = await run_station(DNCScrubStation, {"phone": "3125550177"}, settings=settings, plugins=[plugin])
    assert before.fields["dnc_lists"] == ["internal", "litigator"]
    route_file = tmp_path / "r.yaml"
    route_file.write_text("name: r\nsteps:\n  - station: DNCScrubStation\n    settings: " + json.dumps(settings) + "\n")
    route = Route.from_file(route_file)
    host = PluginHost.discover()

    # not asked: the DNC list is left alone
    out = await forget_person(ForgetRequest.build(phones=["+1 312 555 0177"], route=route), host)
    assert not [e for e in out if e.what == "internal-list numbers"]

    out = await forget_person(ForgetRequest.build(phones=["+1 312 555 0177"], route=route, dnc_internal=True), host)
    dnc = [e for e in out if e.what == "internal-list numbers"]
    assert dnc == [Erasure(f"DNC store {store_path}", "internal-list numbers", 1,
                           f"still listed in {internal}: remove it there too, or the next import adds it back")]
    with DNCStore(store_path) as store:
        assert store.lookup(3125550177) == ["litigator"]  # a litigator stays a litigator
        assert store.lookup(3125550178) == ["internal"]
