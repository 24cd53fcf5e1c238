"""Secret setting values never reach a log record, whichever library logs them."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr
from waystation import StationSettings


class VendorSettings(StationSettings):
    """A station's settings with a key."""

    api_key: SecretStr | None = None


def test_a_secret_setting_is_masked_in_every_log_record(caplog: pytest.LogCaptureFixture) -> None:
    VendorSettings(api_key="sk-live-0123456789")
    with caplog.at_level(logging.INFO):
        logging.getLogger("httpx").info('HTTP Request: GET %s "%s"', "https://v.test/x?key=sk-live-0123456789",
                                        "HTTP/1.1 200 OK")
        logging.getLogger("some.driver").warning("connect failed with key sk-live-0123456789")
    assert "sk-live-0123456789" not in caplog.text
    assert "key=***" in caplog.text and "with key ***" in caplog.text


def test_short_values_are_not_masked(caplog: pytest.LogCaptureFixture) -> None:
    VendorSettings(api_key="abc")
    with caplog.at_level(logging.INFO):
        logging.getLogger("x").info("abc def")
    assert "abc def" in caplog.text
