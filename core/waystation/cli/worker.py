"""``waystation enqueue``, ``worker``, ``queue`` and ``export``: worker runs on Dramatiq (see
:mod:`waystation.worker` and docs/workers.md). Needs ``pip install 'waystation[workers]'``.

Kept light at import time: Dramatiq, Redis and the engine are imported when a command runs.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

REDIS_HELP = "Redis URL of the fleet: run state, checkpoints, fleet budget, shared limits"


def _need_extra() -> None:
    from waystation.cli.errors import missing_extra

    try:
        import dramatiq  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        raise missing_extra(exc.name or "dramatiq") from None


def _fleet_options(f: Any) -> Any:
    f = click.option("--queue", "queue_name", default="waystation", show_default=True,
                     help="The Dramatiq queue the leads go on.")(f)
    f = click.option("--prefix", default="waystation", show_default=True, envvar="WAYSTATION_WORKER_PREFIX",
                     help="Prefix of every Redis key of the fleet.")(f)
    f = click.option("--broker", "broker_url", default=None, envvar="WAYSTATION_BROKER_URL",
                     help="Broker URL when it is not the Redis above: amqp://... for RabbitMQ.")(f)
    from waystation.cli.options import redis_url_option

    return redis_url_option(required=True, help=REDIS_HELP, why="the worker fleet's queue and state live there")(f)


def _config(redis_url: str, broker_url: str | None, prefix: str, queue_name: str, **kw: Any) -> Any:
    _need_extra()
    from waystation.worker.config import WorkerConfig

    return WorkerConfig(redis_url=redis_url, broker_url=broker_url, prefix=prefix, queue=queue_name,
                        **{k: v for k, v in kw.items() if v is not None})


@click.command("enqueue")
@click.argument("route", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_fleet_options
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default=None,
              help="Input format (default: by extension).")
@click.option("--budget-total", type=click.FloatRange(min=0), default=None,
              help="USD for the whole run, shared by every worker (reserved in Redis before each paid call).")
@click.option("--run-id", default=None, help="Id of the new run (default: time + random).")
@click.option("--ttl", type=click.IntRange(min=0), default=None,
              help="Seconds the run's results, checkpoints and dead letters are kept (default 7 days).")
@click.option("--json", "as_json", is_flag=True, help="Print what was queued as JSON.")
@click.pass_context
def enqueue_command(ctx: click.Context, route: Path, input_path: Path, redis_url: str, broker_url: str | None,
                    prefix: str, queue_name: str, fmt: str | None, budget_total: float | None, run_id: str | None,
                    ttl: int | None, as_json: bool) -> None:
    """Make a new run of ROUTE over INPUT (CSV or JSONL) and queue its leads for the workers.

    Every enqueue is a run of its own (its own checkpoints, results and budget). The route is
    compiled against the input first; malformed rows are reported and not queued.
    """
    from waystation.cli.context import get_host
    from waystation.errors import RouteError

    cfg = _config(redis_url, broker_url, prefix, queue_name, ttl=ttl)
    from waystation.cli.errors import route_error, service
    from waystation.worker.runs import enqueue_file

    try:
        with service("Redis", redis_url):
            done = enqueue_file(cfg, route, input_path, host=get_host(ctx), input_format=fmt,
                                budget_total=budget_total, run_id=run_id)
    except RouteError as exc:
        raise route_error(exc) from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    for line in done.rejected:
        click.echo(line, err=True)
    if as_json:
        click.echo(json.dumps({"run_id": done.run_id, "queued": done.leads, "rows": done.rows,
                               "rejected": len(done.rejected), "duplicates": done.duplicates}))
        return
    note = f"; {len(done.rejected)} malformed row(s) not queued" if done.rejected else ""
    dup = f"; {done.duplicates} repeated lead id(s) queued once" if done.duplicates else ""
    click.echo(f"run {done.run_id}: queued {done.leads} lead(s) on {queue_name}{note}{dup}")
    click.echo(f"  follow it:  waystation queue {done.run_id}")
    click.echo(f"  results:    waystation export {done.run_id} -o out.csv")


@click.command("worker")
@_fleet_options
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(1),
              help="Leads in flight in this process (Dramatiq worker threads; the leads share one event loop).")
@click.option("--budget-total", type=click.FloatRange(min=0), default=None,
              help="USD cap per run for the whole fleet (the stricter of this and the run's own applies).")
@click.option("--heartbeat-timeout", default=15.0, show_default=True, type=click.FloatRange(min=0.5),
              help="Seconds without a heartbeat after which a worker counts as dead and its leads are requeued.")
@click.option("--max-retries", default=3, show_default=True, type=click.IntRange(0),
              help="Retries (with exponential backoff) of a lead that raised, before it is dead-lettered.")
@click.option("--retry-backoff", default=1.0, show_default=True, type=click.FloatRange(min=0.01),
              help="Seconds before the first retry (doubling, up to 60 s).")
@click.option("--max-crashes", default=3, show_default=True, type=click.IntRange(1),
              help="Dead-letter a lead once its worker died this many times while running it.")
@click.option("--grace", default=30.0, show_default=True, type=click.FloatRange(min=0),
              help="On SIGTERM/SIGINT: seconds the leads in flight may finish before they go back on the queue.")
@click.option("--ttl", type=click.IntRange(min=0), default=None,
              help="Seconds results, checkpoints and dead letters are kept (default 7 days).")
@click.option("--held-retries", default=5, show_default=True, type=click.IntRange(0),
              help="Retries of a held lead (a gate could not run: vendor down, breaker open, no key) before "
                   "it is parked for `waystation queue retry-held RUN`.")
@click.option("--held-backoff", default=30.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds before a held lead's first retry (doubling, up to 15 min).")
@click.option("--refuse-delay", default=10.0, show_default=True, type=click.FloatRange(min=0.05),
              help="When this worker refuses a run (its preflight failed here), seconds before a lead of the run "
                   "it fetched is offered again (to any worker).")
@click.option("--lease", default=60.0, show_default=True, type=click.FloatRange(min=0.5),
              help="Seconds a fleet-budget reservation lives unless its worker renews it: a dead worker's "
                   "reservations expire (as spent, in doubt) after it.")
@click.option("--share-state/--no-share-state", default=True, show_default=True,
              help="Share rate limits and breakers through Redis unless a route step says `shared: process`.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve Dramatiq's Prometheus metrics on this port (127.0.0.1 unless --metrics-addr).")
@click.option("--metrics-addr", default="127.0.0.1", show_default=True)
@click.option("--worker-id", default=None, help="This worker's id (default: host-pid).")
@click.option("--idle-exit", default=None, type=float,
              help="Exit once there was nothing to do for this many seconds (default: run until stopped).")
@click.option("--history", "history_url", default=None, envvar="WAYSTATION_HISTORY",
              help="Run history store shared by the workers, e.g. postgresql+psycopg://host/db (default: "
                   "the local .waystation/checkpoints.db). Each worker writes its own segment of every run.")
@click.option("--health", is_flag=True,
              help="Do not work: exit 0 if a worker of this host (or --worker-id) has a fresh heartbeat, else 1.")
@click.pass_context
def worker_command(ctx: click.Context, redis_url: str, broker_url: str | None, prefix: str, queue_name: str,
                   concurrency: int, budget_total: float | None, heartbeat_timeout: float, max_retries: int,
                   retry_backoff: float, max_crashes: int, grace: float, ttl: int | None, held_retries: int,
                   held_backoff: float, refuse_delay: float, lease: float, share_state: bool, metrics_port: int | None,
                   metrics_addr: str, worker_id: str | None, idle_exit: float | None, history_url: str | None,
                   health: bool) -> None:
    """Run leads from the queue until SIGINT/SIGTERM (any number of workers, on any machines).

    \b
    Each lead runs through the route stored with its run. At least once: a lead whose worker
    dies is requeued by heartbeat (never while its worker lives, however slow), resumes from its
    checkpoints (no completed paid step is bought again) and its result is recorded once. A lead
    that raises is retried with backoff, then dead-lettered (`waystation queue replay-dead RUN`).
    A held lead (a gate could not run, the budget ran out) is retried with backoff, then parked
    (`waystation queue retry-held RUN`). Before a run's first lead, the worker checks the run's
    route on this host (plugins, keys, data files) and refuses the run, saying why, if it fails.
    Every run's figures go to the run history (--history) every 10 s and when the worker stops.
    """
    cfg = _config(redis_url, broker_url, prefix, queue_name, concurrency=concurrency, budget_total=budget_total,
                  heartbeat_timeout=heartbeat_timeout, max_retries=max_retries, min_backoff=retry_backoff,
                  max_crashes=max_crashes, grace=grace, ttl=ttl, share_state=share_state,
                  held_retries=held_retries, held_backoff=held_backoff, refuse_delay=refuse_delay, lease=lease,
                  metrics_port=metrics_port, metrics_addr=metrics_addr, worker_id=worker_id)
    if health:
        ctx.exit(_health(cfg, worker_id))
        return
    import logging

    from waystation.cli.context import get_host
    from waystation.worker.app import run_worker
    from waystation.worker.runtime import Runtime

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            stream=sys.stderr)
        logging.getLogger("dramatiq").setLevel(logging.WARNING)
    from waystation.history import default_history_url
    from waystation.history.collector import HistoryListener

    history = HistoryListener(history_url or default_history_url(None) or "sqlite://", cfg.worker_id)
    runtime = Runtime(cfg, host=get_host(ctx), listeners=[history])
    click.echo(f"worker {cfg.worker_id}: {concurrency} lead(s) at a time from queue {queue_name}", err=True)

    def on_stop(name: str) -> None:
        click.echo(f"{name}: finishing the leads in flight (up to {grace:g} s; again to exit at once)", err=True)

    stats = run_worker(cfg, runtime, idle_exit=idle_exit, on_stop=on_stop)
    click.echo(json.dumps(stats))


def _health(cfg: Any, worker_id: str | None) -> int:
    import socket

    from waystation.worker.app import state_client
    from waystation.worker.broker import live_workers

    try:
        workers = live_workers(state_client(cfg), cfg.prefix)
    except Exception as exc:
        click.echo(f"unhealthy: Redis unreachable: {type(exc).__name__}", err=True)
        return 1
    host = socket.gethostname()
    mine = [w for wid, w in workers.items() if (wid == worker_id if worker_id else w.get("host") == host)]
    if not mine:
        click.echo("unhealthy: no fresh heartbeat", err=True)
        return 1
    click.echo(json.dumps(mine))
    return 0


class _QueueGroup(click.Group):
    """``waystation queue RUN`` is ``waystation queue status RUN``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["status", *args]
        return super().parse_args(ctx, args)


@click.group("queue", cls=_QueueGroup)
def queue_command() -> None:
    """A worker run: `waystation queue RUN` (status), `queue wait RUN`, `queue retry-held RUN`,
    `queue replay-dead RUN`, `queue list`."""


@queue_command.command("status")
@click.argument("run_id", metavar="RUN")
@_fleet_options
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def queue_status(run_id: str, redis_url: str, broker_url: str | None, prefix: str, queue_name: str,
                 as_json: bool) -> None:
    """Queued, in progress, done (succeeded/stopped/failed), held, dead-lettered, spend; whether RUN is finished."""
    cfg = _config(redis_url, broker_url, prefix, queue_name)
    from waystation.cli.errors import service
    from waystation.worker.runs import status

    with service("Redis", redis_url):
        st = asyncio.run(status(cfg, run_id))
    if st is None:
        raise click.ClickException(f"no worker run {run_id!r} (expired after its TTL, or another --prefix)")
    if as_json:
        click.echo(json.dumps(st))
        return
    for line in _status_lines(run_id, st):
        click.echo(line)


def _status_lines(run_id: str, st: dict[str, Any]) -> list[str]:
    """``waystation queue RUN`` as lines of text."""
    b = st["budget"]
    limit = "no limit" if b["limit"] is None else f"of ${b['limit']:,.4f}"
    lines = [f"run {run_id} ({st['route']}): {st['leads']} lead(s)",
             f"  queued {st['queued']}  in progress {st['in_progress']}  done {st['done']} "
             f"(succeeded {st['succeeded']}, stopped {st['stopped']}, failed {st['failed']})  "
             f"held {st['held']}  dead-lettered {st['dead_lettered']}",
             f"  spent ${b['spent']:,.4f} {limit} (reserved ${b['reserved']:,.4f}); "
             f"{st['workers_alive']} worker(s) alive"]
    for worker, why in sorted(st.get("refused", {}).items()):
        lines.append(f"  worker {worker} ({why.get('host')}) refuses this run, its preflight failed there: "
                     + "; ".join(why.get("problems") or []))
    if st["held"]:
        lines.append(f"  {st['held']} lead(s) held (a gate could not run, or the budget ran out): not done; "
                     f"once fixed: waystation queue retry-held {run_id} [--budget-total USD]")
    if st["finished"]:
        tail = f"; {st['dead_lettered']} dead letter(s): waystation queue replay-dead {run_id}" \
            if st["dead_lettered"] else ""
        lines.append(f"  finished{tail}")
    else:
        lines.append("  not finished")
    return lines


@queue_command.command("wait")
@click.argument("run_id", metavar="RUN")
@_fleet_options
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="Give up after this many seconds (exit 1; default: wait until the run is finished).")
@click.option("--interval", type=click.FloatRange(min=0.05), default=2.0, show_default=True,
              help="Seconds between looks at the run.")
@click.option("--fail-on", "fail_on", default=None, metavar="RULES",
              help="Exit 4 when too many leads did not pass, as for `run`: e.g. 'failed>5%', 'held>0' "
                   "(comma-separated; 'none' turns it off). Default: held>0.")
@click.option("--json", "as_json", is_flag=True, help="Print the final status as JSON.")
@click.pass_context
def queue_wait(ctx: click.Context, run_id: str, redis_url: str, broker_url: str | None, prefix: str,
               queue_name: str, timeout: float | None, interval: float, fail_on: str | None, as_json: bool) -> None:
    """Wait until RUN is finished, then say how it ended and exit like `waystation run` would.

    \b
    Exit status: 0 finished and no --fail-on rule met; 4 a --fail-on rule was met (default
    held>0: leads a gate or the budget held are not done); 1 dead-lettered leads, or not
    finished within --timeout; 2 no such run. A worker that refuses the run (its preflight
    failed on its host) is reported as soon as it is seen.
    """
    import time

    from waystation.failon import DEFAULT_FAIL_ON, EXIT_FAIL_ON, check_fail_on, parse_fail_on

    try:
        rules = parse_fail_on(DEFAULT_FAIL_ON if fail_on is None else fail_on)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    cfg = _config(redis_url, broker_url, prefix, queue_name)
    from waystation.cli.errors import service
    from waystation.worker.runs import status
    from waystation.worker.state import lead_counts

    deadline = None if timeout is None else time.monotonic() + timeout
    told: set[str] = set()
    while True:
        with service("Redis", redis_url):
            st = asyncio.run(status(cfg, run_id))
        if st is None:
            raise click.ClickException(f"no worker run {run_id!r} (expired after its TTL, or another --prefix)")
        for worker, why in sorted(st.get("refused", {}).items()):
            line = f"worker {worker} refuses run {run_id}: " + "; ".join(why.get("problems") or [])
            if line not in told:
                told.add(line)
                click.echo(line, err=True)
        if st["finished"] or (deadline is not None and time.monotonic() >= deadline):
            break
        time.sleep(interval)
    if as_json:
        click.echo(json.dumps(st))
    else:
        for line in _status_lines(run_id, st):
            click.echo(line)
    if not st["finished"]:
        click.echo(f"error: run {run_id} not finished after {timeout:g} s", err=True)
        ctx.exit(1)
    if st["dead_lettered"]:
        click.echo(f"error: {st['dead_lettered']} lead(s) dead-lettered: waystation queue replay-dead {run_id}",
                   err=True)
        ctx.exit(1)
    met = check_fail_on(rules, lead_counts(st))
    if met:
        for why in met:
            click.echo(f"error: --fail-on: {why}", err=True)
        ctx.exit(EXIT_FAIL_ON)


@queue_command.command("retry-held")
@click.argument("run_id", metavar="RUN")
@_fleet_options
@click.option("--budget-total", type=click.FloatRange(min=0), default=None,
              help="Set the run's budget (USD) first: leads the budget held can then continue.")
def queue_retry_held(run_id: str, redis_url: str, broker_url: str | None, prefix: str, queue_name: str,
                     budget_total: float | None) -> None:
    """Queue RUN's held leads again (a gate could not run, or the budget ran out), with fresh retries.

    They resume from their checkpoints: the step that held them runs again; completed steps, paid
    ones included, are not repeated.
    """
    cfg = _config(redis_url, broker_url, prefix, queue_name)
    from waystation.cli.errors import service
    from waystation.worker.app import retry_held

    try:
        with service("Redis", redis_url):
            n = retry_held(cfg, run_id, budget_total=budget_total)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    budget = f" (run budget now ${budget_total:,.4f})" if budget_total is not None else ""
    click.echo(f"queued {n} held lead(s) of run {run_id} again{budget}")


@queue_command.command("replay-dead")
@click.argument("run_id", metavar="RUN")
@_fleet_options
def queue_replay_dead(run_id: str, redis_url: str, broker_url: str | None, prefix: str, queue_name: str) -> None:
    """Put RUN's dead-lettered leads back on the queue (they resume from their checkpoints)."""
    cfg = _config(redis_url, broker_url, prefix, queue_name)
    from waystation.cli.errors import service
    from waystation.worker.app import replay_dead

    try:
        with service("Redis", redis_url):
            n = replay_dead(cfg, run_id)
    except NotImplementedError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"replayed {n} dead-lettered lead(s) of run {run_id}")


@queue_command.command("list")
@_fleet_options
def queue_list(redis_url: str, broker_url: str | None, prefix: str, queue_name: str) -> None:
    """The worker runs kept in Redis, oldest first."""
    cfg = _config(redis_url, broker_url, prefix, queue_name)

    async def go() -> list[str]:
        import redis.asyncio as aioredis

        from waystation.worker.state import list_runs

        client = aioredis.Redis.from_url(cfg.redis_url)
        try:
            return await list_runs(client, cfg.prefix)
        finally:
            await client.aclose()

    from waystation.cli.errors import service

    with service("Redis", redis_url):
        ids = asyncio.run(go())
    for rid in ids:
        click.echo(rid)


@click.command("export")
@click.argument("run_id", metavar="RUN")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file (CSV or JSONL by extension).")
@click.option("--output-format", type=click.Choice(["csv", "jsonl"]), default=None)
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Failed, held, rejected and unfinished rows (default <output stem>.rejects.jsonl).")
@click.option("--fail-on", "fail_on", default=None, metavar="RULES",
              help="Exit 4 when too many leads did not pass, as for `run` (default held>0; 'none' turns it off).")
@_fleet_options
def export_command(run_id: str, output: Path, output_format: str | None, rejects: Path | None, fail_on: str | None,
                   redis_url: str, broker_url: str | None, prefix: str, queue_name: str) -> None:
    """Write a worker run's results like `waystation run` does: one row per input row, in order.

    Exits 1 when the run is not finished (the unfinished rows are written with _status unfinished),
    or when a dial verdict rests on evidence that has expired since (docs/compliance.md); exits 4
    when a --fail-on rule is met (default held>0: held rows are written with _status held).
    """
    from waystation.failon import DEFAULT_FAIL_ON, EXIT_FAIL_ON, check_fail_on, parse_fail_on

    try:
        rules = parse_fail_on(DEFAULT_FAIL_ON if fail_on is None else fail_on)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    cfg = _config(redis_url, broker_url, prefix, queue_name)
    from waystation.cli.errors import service
    from waystation.worker.runs import export

    try:
        with service("Redis", redis_url):
            counts = asyncio.run(export(cfg, run_id, output, output_format=output_format, rejects_path=rejects))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(counts))
    stale = (counts.get("dial") or {}).get("stale")
    if stale:  # docs/compliance.md: exports fail closed on stale evidence
        click.echo(f"error: {stale} exported dial verdict(s) rest on expired evidence (written as 'unknown' where "
                   "they said 'yes'): refresh the data and run again", err=True)
    if counts.get("unfinished") or counts.get("dead_lettered") or stale:
        sys.exit(1)
    leads = {k: int(v) for k, v in counts.items() if isinstance(v, int) and k not in ("rows", "dead_lettered")}
    met = check_fail_on(rules, leads)
    if met:
        for why in met:
            click.echo(f"error: --fail-on: {why}", err=True)
        sys.exit(EXIT_FAIL_ON)
