"""``waystation forget``: erase a person (an erasure request under CCPA / GDPR) everywhere
waystation and its plugins keep personal data; see :mod:`waystation.forget`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from waystation.cli import output
from waystation.cli.errors import EXIT_BROKE_OFF, CliError, UsageProblem
from waystation.cli.options import checkpoint_option, format_option
from waystation.stores import DEFAULT_SQLITE_URL


@click.command("forget")
@click.option("--lead-id", "lead_ids", multiple=True, metavar="ID", help="The person's lead id (repeatable).")
@click.option("--phone", "phones", multiple=True, metavar="N", help="A phone number of theirs (repeatable).")
@click.option("--email", "emails", multiple=True, metavar="E", help="An e-mail address of theirs (repeatable).")
@checkpoint_option(default=DEFAULT_SQLITE_URL, help="The checkpoint store to erase lead states from.")
@click.option("--route", "route_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The route whose stations' settings say where their data lives (the SQL save table, the "
                   "DNC store); without it, each station's defaults and environment.")
@click.option("--dnc-internal", is_flag=True,
              help="Also take their phone numbers off the DNC store's internal do-not-call list (they may "
                   "then be called again: only when they asked for it).")
@click.option("--dry-run", is_flag=True, help="Report what would be removed; remove nothing.")
@format_option
@click.pass_context
def forget_command(ctx: click.Context, lead_ids: tuple[str, ...], phones: tuple[str, ...], emails: tuple[str, ...],
                   checkpoint: str, route_file: Path | None, dnc_internal: bool, dry_run: bool, fmt: str | None,
                   as_json: bool) -> None:
    """Erase a person from checkpoints, the SQL save table, caches and queues (and, with
    --dnc-internal, the DNC internal list); print what was removed from where.

    \b
    waystation forget --phone +14155550100 --email ada@example.org --route routes/hybrid-smart.yaml
    """
    from waystation.cli.context import get_host
    from waystation.errors import RouteError
    from waystation.forget import ForgetRequest, forget_person
    from waystation.route import Route

    route = None
    if route_file is not None:
        try:
            route = Route.from_file(route_file)
        except RouteError as exc:
            raise UsageProblem(str(exc.problems[0]), "fix the route, or leave --route out") from None
    try:
        request = ForgetRequest.build(lead_ids, phones, emails, checkpoint=checkpoint, route=route,
                                      dnc_internal=dnc_internal, dry_run=dry_run)
    except ValueError as exc:
        raise UsageProblem(str(exc), "waystation forget (--lead-id ID | --phone N | --email E) ...") from None
    erasures = asyncio.run(forget_person(request, get_host(ctx)))
    rows = [{**e.as_dict(), "count": e.count if e.count >= 0 else "failed"} for e in erasures]
    columns = [output.Column("where", "where", 3, name=True), output.Column("what", "what", 2),
               output.Column("count", "would remove" if dry_run else "removed", 2), output.Column("note", "note")]
    output.emit(rows, columns, output.resolve_format(fmt, as_json), json_rows=[e.as_dict() for e in erasures],
                empty="nothing keeps data of this person")
    failed = [e for e in erasures if e.count < 0]
    if failed:
        raise CliError(f"{len(failed)} place(s) could not erase: "
                       + "; ".join(f"{e.where}: {e.note}" for e in failed),
                       "fix the cause and run the same command again (erasing twice is harmless)",
                       exit_code=EXIT_BROKE_OFF)
