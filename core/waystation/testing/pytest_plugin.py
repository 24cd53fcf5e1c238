"""The pytest plugin of waystation (registered through the ``pytest11`` entry point).

Fixtures:

- ``waystation_fast_retries`` (autouse): retry waits are switched off in tests; attempts and
  their logic stay as configured.
- ``waystation_isolated_ledger`` (autouse): each test gets its own suppression ledger location
  (``WAYSTATION_SUPPRESS_LEDGER`` in a temporary directory; a test may set its own), so a test
  that runs ``waystation forget`` or ``suppress add`` never writes to the developer's ledger, and
  no test is screened by another's.
- ``fake_vendor``: a started :class:`~waystation.testing.FakeVendor` on 127.0.0.1 that captures
  every log record during the test (for ``assert_no_secret``); stopped afterwards.
- ``cassette``: a factory ``cassette(path, real_url=..., secrets=[...])`` returning the base URL
  to point a station at: it replays ``path`` through ``fake_vendor``, or, with
  ``WAYSTATION_RECORD=1`` and a ``real_url``, records the real vendor into ``path`` (scrubbed).
  A request the cassette has no answer for fails the test.

``fake_vendor`` and ``cassette`` need pytest-httpserver (the ``test`` extra); they import it only
when used, so this plugin never breaks a pytest run that does not use them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from waystation.testing.harness import fast_retries

if TYPE_CHECKING:
    from waystation.testing.cassette import Cassette
    from waystation.testing.fake_vendor import FakeVendor


@pytest.fixture(autouse=True)
def waystation_fast_retries() -> Iterator[None]:
    """Retry waits off for every test (the attempts still happen)."""
    with fast_retries():
        yield


@pytest.fixture(autouse=True)
def waystation_isolated_ledger(tmp_path_factory: pytest.TempPathFactory,
                               monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A suppression ledger location of the test's own (see the module docstring)."""
    monkeypatch.setenv("WAYSTATION_SUPPRESS_LEDGER",
                       str(tmp_path_factory.mktemp("ledger", numbered=True) / "suppress.sqlite"))
    monkeypatch.delenv("WAYSTATION_SUPPRESS_SECRET", raising=False)
    yield


@pytest.fixture
def fake_vendor() -> Iterator[FakeVendor]:
    """A fake vendor HTTP server on 127.0.0.1, capturing log records for the test's duration."""
    from waystation.testing.fake_vendor import FakeVendor

    vendor = FakeVendor()
    vendor.start()
    try:
        with vendor.capture_logs():
            yield vendor
    finally:
        vendor.stop()


@pytest.fixture
def cassette(fake_vendor: FakeVendor) -> Iterator[Callable[..., str]]:
    """A factory: ``base_url = cassette("tests/cassettes/x.json", real_url=..., secrets=[key])``."""
    from waystation.testing.cassette import Cassette

    made: list[Cassette] = []

    def use(path: str | Path, *, real_url: str | None = None, secrets: Iterable[str] = (),
            **kwargs: Any) -> str:
        c = Cassette(path, real_url=real_url, secrets=secrets, **kwargs)
        made.append(c)
        return c.attach(fake_vendor)

    yield use
    for c in made:
        c.save()
    misses = [m for c in made for m in c.misses]
    if misses:
        pytest.fail("cassette had no answer for: " + "; ".join(misses), pytrace=False)
