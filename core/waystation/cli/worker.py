"""``waystation enqueue``, ``waystation worker`` and ``waystation queue``: leads on a Redis Stream
consumed by any number of workers on any machines (see :mod:`waystation.worker`).

Kept light at import time: Redis and the engine are imported when a command runs.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import click

REDIS_HELP = "Redis URL of the queue (also WAYSTATION_REDIS_URL)."


def _queue_options(f: Any) -> Any:
    f = click.option("--stream", default="waystation:leads", show_default=True,
                     help="The Redis Stream the leads are queued on.")(f)
    f = click.option("--redis", "redis_url", envvar="WAYSTATION_REDIS_URL", required=True, help=REDIS_HELP)(f)
    return f


def _config(stream: str, **kw: Any) -> Any:
    from waystation.worker import QueueConfig

    return QueueConfig(stream=stream, **kw)


@click.command("enqueue")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_queue_options
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default=None,
              help="Input format (default: by extension).")
def enqueue_command(input_path: Path, redis_url: str, stream: str, fmt: str | None) -> None:
    """Put every lead of INPUT (CSV or JSONL) on the queue; malformed rows are reported, not queued."""
    from waystation.batch import detect_format, open_reader

    reader = open_reader(input_path, detect_format(input_path, fmt))
    rejected = 0

    def leads() -> Any:
        nonlocal rejected
        for record in reader:
            if record.lead is None or record.error:
                rejected += 1
                click.echo(f"{input_path}:{record.line}: not queued: {record.error}", err=True)
                continue
            yield record.lead

    async def main() -> int:
        import redis.asyncio as redis

        from waystation.worker import enqueue

        client = redis.Redis.from_url(redis_url)
        try:
            return await enqueue(client, _config(stream), leads())
        finally:
            await client.aclose()
            reader.close()

    count = asyncio.run(main())
    note = f"; {rejected} malformed row(s) not queued" if rejected else ""
    click.echo(f"queued {count} lead(s) on {stream}{note}")


@click.command("worker")
@click.argument("route", type=click.Path(exists=True, dir_okay=False))
@_queue_options
@click.option("--group", default="waystation", show_default=True, help="Consumer group of the workers.")
@click.option("--consumer", default=None, help="This worker's name (default: host-pid).")
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(1), help="Leads in flight.")
@click.option("--checkpoint", default=None,
              help="Checkpoint store URL (default: the queue's Redis, so every worker resumes any lead).")
@click.option("--run-id", default=None, help="Checkpoint run id (default: the stream name).")
@click.option("--max-deliveries", default=5, show_default=True, type=click.IntRange(1),
              help="A lead delivered more often than this goes to <stream>:dead.")
@click.option("--claim-idle", default=60.0, show_default=True, type=float,
              help="Seconds after which a lead pending on a silent worker is reclaimed.")
@click.option("--idle-exit", default=None, type=float,
              help="Exit once the queue has been empty this many seconds (default: run until stopped).")
@click.pass_context
def worker_command(ctx: click.Context, route: str, redis_url: str, stream: str, group: str, consumer: str | None,
                   concurrency: int, checkpoint: str | None, run_id: str | None, max_deliveries: int,
                   claim_idle: float, idle_exit: float | None) -> None:
    """Consume leads from the queue and run them through ROUTE, until SIGINT/SIGTERM.

    At least once: a lead is acknowledged only after its result is on <stream>:results; leads of a
    crashed worker are reclaimed after --claim-idle and resume from their checkpoints, so no
    completed paid lookup is bought twice. Circuit breakers and rate limits marked
    `shared: redis` in the route are shared by every worker through the same Redis.
    """
    from waystation.cli.main import get_host

    host = get_host(ctx)
    cfg = _config(stream, group=group, max_deliveries=max_deliveries, claim_idle=claim_idle)
    store_url = checkpoint or f"{redis_url}{'&' if '?' in redis_url else '?'}prefix=waystation:ck"

    async def main() -> dict[str, Any]:
        import redis.asyncio as redis

        from waystation.engine import Engine
        from waystation.route import Route
        from waystation.stores import open_store
        from waystation.worker import Worker

        client = redis.Redis.from_url(redis_url)
        store = open_store(store_url)
        engine = Engine.from_route(Route.from_file(route), host=host, checkpointer=store,
                                   run_id=run_id or stream, redis_url=redis_url)
        worker = Worker(engine, client, cfg, consumer=consumer, concurrency=concurrency)
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals > 1:
                raise SystemExit(130)
            click.echo("stopping: finishing the leads in flight (again to exit at once)", err=True)
            worker.stop()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            stats = await worker.run(idle_exit=idle_exit)
        finally:
            await engine.close()
            await store.close()
            await client.aclose()
        return {"consumer": worker.consumer, "done": stats.done, "reclaimed": stats.reclaimed,
                "dead": stats.dead, "statuses": stats.statuses}

    click.echo(json.dumps(asyncio.run(main())))


@click.command("queue")
@_queue_options
@click.option("--group", default="waystation", show_default=True)
def queue_command(redis_url: str, stream: str, group: str) -> None:
    """Show the queue: queued, pending (taken, not finished), results and dead-lettered leads."""

    async def main() -> dict[str, int]:
        import redis.asyncio as redis

        from waystation.worker import queue_depth

        client = redis.Redis.from_url(redis_url)
        try:
            return await queue_depth(client, _config(stream, group=group))
        finally:
            await client.aclose()

    click.echo(json.dumps(asyncio.run(main())))
