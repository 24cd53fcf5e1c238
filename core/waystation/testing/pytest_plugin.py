"""The pytest plugin of waystation (registered through the ``pytest11`` entry point).

Fixtures:

- ``waystation_fast_retries`` (autouse): retry waits are switched off in tests; attempts and
  their logic stay as configured.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from waystation.testing.harness import fast_retries


@pytest.fixture(autouse=True)
def waystation_fast_retries() -> Iterator[None]:
    """Retry waits off for every test (the attempts still happen)."""
    with fast_retries():
        yield
