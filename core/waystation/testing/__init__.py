"""The test harness for station authors (also a pytest plugin: ``waystation.testing.pytest_plugin``).

Run a station or a route with no network and no installed plugin::

    from waystation.testing import run_station, run_route

    async def test_lookup():
        result = await run_station(MyStation, {"phone": "+14155550100"}, settings={"api_key": "k"})
        assert result.outcome.fields["line_type"] == "mobile"
"""

from waystation.testing.harness import StationRun, fast_retries, run_route, run_station

__all__ = ["StationRun", "fast_retries", "run_route", "run_station"]
