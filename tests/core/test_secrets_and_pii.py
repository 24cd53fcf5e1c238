"""Secrets masked in URLs, in every encoded form and in log records; secrets from files; personal
data masked in logs by default (``--log-pii`` keeps it); metric labels never carry lead data."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus

import pytest
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from waystation import Engine, Outcome, Station, StationSettings, StepContext
from waystation.batch import BatchConfig, BatchRunner
from waystation.metrics import Metrics
from waystation.plugins import PluginHost
from waystation.redact import redact, redact_url, set_log_pii

KEY = "sk+live/0123456789abcdef=="  # a key with the characters URL-encoding and base64 change


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("redis://bob:hunter2@127.0.0.1:6379/0", "redis://***:***@127.0.0.1:6379/0"),
    ("redis://127.0.0.1:6379/0?password=hunter2&ttl=60", "redis://127.0.0.1:6379/0?password=***&ttl=60"),
    ("postgresql://bob@db.example/leads", "postgresql://***@db.example/leads"),
    ("https://v.example/x?api_key=abc&q=1&Token=z&signature=s",
     "https://v.example/x?api_key=***&q=1&Token=***&signature=***"),
    ("sqlite:///.waystation/checkpoints.db", "sqlite:///.waystation/checkpoints.db"),
    ("redis://127.0.0.1:6379/0?ttl=60&prefix=ws", "redis://127.0.0.1:6379/0?ttl=60&prefix=ws"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [secret, quote(secret, safe=""), quote_plus(secret), base64.b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode().rstrip("=")]


def test_redact_masks_every_encoded_form() -> None:
    text = " | ".join(forms(KEY))
    assert redact(text, [KEY]) == " | ".join(["***"] * 5)


class VendorSettings(StationSettings):
    """A station's settings with a key read from ACME_KEY or the file ACME_KEY_FILE names."""

    model_config = SettingsConfigDict(env_prefix="WS_ACME_", extra="forbid", frozen=True)
    api_key: SecretStr | None = Field(default=None, validation_alias="ACME_KEY")


def test_log_records_mask_every_encoded_form_and_secret_query_params(caplog: pytest.LogCaptureFixture,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_KEY", KEY)
    VendorSettings()
    with caplog.at_level(logging.DEBUG):
        for form in forms(KEY):
            logging.getLogger("httpx").info('HTTP Request: GET %s "HTTP/1.1 200 OK"',
                                            f"https://v.test/x?k={form}")
            logging.getLogger("lib").debug(f"Authorization: Basic {form}")
        logging.getLogger("redis").warning("connect to redis://u:pw-1@h:1/0?password=pw-2 failed")
    for form in forms(KEY):
        assert form not in caplog.text
    assert "pw-1" not in caplog.text and "pw-2" not in caplog.text
    assert "redis://***:***@h:1/0?password=***" in caplog.text


def test_a_secret_comes_from_the_file_its_FILE_variable_names(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "key").write_text(KEY + "\n")
    monkeypatch.setenv("ACME_KEY_FILE", str(tmp_path / "key"))
    settings = VendorSettings()
    assert settings.api_key is not None and settings.api_key.get_secret_value() == KEY
    assert KEY not in repr(settings)
    monkeypatch.setenv("ACME_KEY", "from-the-variable")  # the variable itself wins
    assert VendorSettings().api_key.get_secret_value() == "from-the-variable"  # type: ignore[union-attr]
    monkeypatch.delenv("ACME_KEY")
    monkeypatch.setenv("ACME_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"ACME_KEY_FILE: cannot read .*missing: No such file or directory"):
        VendorSettings()


def test_the_resume_command_and_run_meta_never_show_a_password(tmp_path: Path) -> None:
    cfg = BatchConfig(route=tmp_path / "r.yaml", input=tmp_path / "in.csv",
                      checkpoint="redis://bob:pw-1@127.0.0.1:6379/0?password=pw-2&ttl=60")
    command = BatchRunner(cfg, PluginHost()).command("run-1")
    assert "pw-1" not in command and "pw-2" not in command and "bob" not in command
    assert "'redis://***:***@127.0.0.1:6379/0?password=***&ttl=60'" in command


# -- personal data ------------------------------------------------------------------------------

LEAD = {"id": "L1", "first_name": "Adaline", "last_name": "Quorrington", "phone": "+14155550100",
        "email": "adaline@example.org", "city": "Springfield"}


class Chatty(Station):
    """Logs what it works on, as station code does."""

    name = "Chatty"
    provides: ClassVar[dict[str, Any]] = {"x": str}

    async def process(self, ctx: StepContext) -> Outcome:
        d = ctx.data
        ctx.log.info("looking up %s %s at %s / %s", d["first_name"], d["last_name"], d["phone"], d["email"])
        ctx.log.warning(f"no match for {d['first_name']} {d['last_name']} (415) 555-0100 in {d['city']}")
        return Outcome({"x": "ok"})


@pytest.fixture
def log_pii_default() -> Iterator[None]:
    set_log_pii(False)
    yield
    set_log_pii(False)


ROUTE = "name: chatty\nsteps: [{station: Chatty}]\n"


async def test_logs_mask_phones_emails_and_the_leads_names(caplog: pytest.LogCaptureFixture,
                                                           log_pii_default: None) -> None:
    with caplog.at_level(logging.INFO):
        async with Engine.from_text(ROUTE, [Chatty]) as engine:
            await engine.run(LEAD)
    text = caplog.text
    for value in ("Adaline", "Quorrington", "+14155550100", "adaline@example.org", "555-0100"):
        assert value not in text
    assert "looking up [pii] [pii] at [pii] / [pii]" in text
    assert "no match for [pii] [pii] [phone] in Springfield" in text


async def test_log_pii_keeps_them(caplog: pytest.LogCaptureFixture, log_pii_default: None) -> None:
    set_log_pii(True)
    with caplog.at_level(logging.INFO):
        async with Engine.from_text(ROUTE, [Chatty]) as engine:
            await engine.run(LEAD)
    assert "looking up Adaline Quorrington at +14155550100 / adaline@example.org" in caplog.text


async def test_metric_labels_never_carry_lead_data() -> None:
    metrics = Metrics()
    async with Engine.from_text(ROUTE, [Chatty], plugins=[metrics]) as engine:
        await engine.run(LEAD)
        await engine.run({**LEAD, "id": "L2", "first_name": "Bartholomew"})
    labels = {v for fam in metrics.registry.collect() for sample in fam.samples
              for k, v in sample.labels.items() if k != "le"}  # "le": histogram bucket bounds
    assert labels
    lead_values = {str(v) for v in LEAD.values()} | {"Bartholomew", "L2"}
    assert not labels & lead_values
    assert labels <= {"chatty", "Chatty", "succeeded"}
