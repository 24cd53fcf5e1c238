"""Waystation's Dramatiq middleware without a broker server (Dramatiq's StubBroker): a lead handed
back at shutdown or deferred by its vendor goes back on the queue without using up a retry; a lead
that raised is retried with backoff, counting it."""

from __future__ import annotations

import threading
import time

import dramatiq
from dramatiq.brokers.stub import StubBroker
from waystation.worker.broker import Deferred, Drained, DurableRetries


def _setup() -> tuple[StubBroker, DurableRetries, dramatiq.Message]:
    retries = DurableRetries(threading.Event(), max_retries=3, min_backoff=1000, max_backoff=60000)
    broker = StubBroker(middleware=[retries])
    broker.emit_after("process_boot")

    @dramatiq.actor(broker=broker, queue_name="q", actor_name="lead")
    def lead(run_id: str, lead_id: str, data: dict) -> None:  # pragma: no cover - never run here
        pass

    return broker, retries, lead.message("run", "L1", {"id": "L1"})


def test_a_drained_lead_is_requeued_at_once_without_using_a_retry() -> None:
    broker, retries, message = _setup()
    retries.after_process_message(broker, message, exception=Drained("stopping"))
    queued = broker.queues["q"].get_nowait()
    requeued = dramatiq.Message.decode(queued)
    assert requeued.args == ("run", "L1", {"id": "L1"}) and "retries" not in requeued.options
    assert broker.queues["q.DQ"].qsize() == 0


def test_a_deferred_lead_waits_its_vendors_time_without_using_a_retry() -> None:
    broker, retries, message = _setup()
    retries.after_process_message(broker, message, exception=Deferred(time.time() + 120))
    delayed = dramatiq.Message.decode(broker.queues["q.DQ"].get_nowait())
    assert "retries" not in delayed.options
    assert 110_000 <= delayed.options["eta"] - int(time.time() * 1000) <= 121_000


def test_a_lead_that_raised_is_retried_with_backoff_and_counted() -> None:
    broker, retries, message = _setup()
    try:
        raise RuntimeError("a bug")
    except RuntimeError as exc:
        retries.after_process_message(broker, message, exception=exc)
    delayed = dramatiq.Message.decode(broker.queues["q.DQ"].get_nowait())
    assert delayed.options["retries"] == 1 and "a bug" in delayed.options["traceback"]
