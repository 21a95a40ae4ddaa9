"""``wanvid journal``: keep the task journal small — drop the rows of tasks that can no longer deliver.

Nothing is ever dropped on its own: a journal of 100,000 tasks is as quick as one of ten (every query has its
index), so the history stays until you prune it. ``prune`` drops the rows of tasks created more than
``--older-than`` days ago (at least the task's 24 h life) whose life is over and whose outcome is on disk or
never was to be (saved videos, failed and canceled tasks). A task that may still be fetched is never dropped,
nor one whose video was paid for and never saved: its row is the only record of it. The record of saved videos
stays, so rerunning an old command or batch still finds its videos on disk instead of paying again. ``vacuum``
gives the freed space back to the disk.
"""

from typing import Annotated

import typer

from wanvid.cli.boundary import command
from wanvid.cli.context import Ctx
from wanvid.cli.options import OUTPUT


@command("prune", common=OUTPUT)
def journal_prune(
    ctx: Ctx,
    older_than: Annotated[
        float,
        typer.Option(
            "--older-than",
            metavar="DAYS",
            min=1.0,
            help="Drop tasks created more than DAYS days ago whose 24 h life is over and whose video is saved "
            "(or that failed or were canceled).",
        ),
    ] = 30.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count the tasks that would be dropped.")] = False,
) -> None:
    """Drop the journal rows of old tasks whose videos are saved, or that failed (paid-for videos never saved stay)."""
    from wanvid.store.journal import Journal

    journal = Journal()
    count = journal.prune(older_than * 86400, dry_run=dry_run)
    verb = "would drop" if dry_run else "dropped"
    ctx.out.result(
        f"{verb} {count} task(s) created more than {older_than:g} day(s) ago",
        {"pruned": count, "dry_run": dry_run, "older_than_days": older_than, "journal": str(journal.path)},
        quiet_text=str(count),
    )


@command("vacuum", common=OUTPUT)
def journal_vacuum(ctx: Ctx) -> None:
    """Rewrite the journal file without its free space (after a prune); print its size before and after."""
    from wanvid.store.journal import Journal

    journal = Journal()
    before, after = journal.vacuum()
    ctx.out.result(
        f"{journal.path}: {before:,} bytes before, {after:,} after",
        {"journal": str(journal.path), "bytes_before": before, "bytes_after": after},
        quiet_text=str(after),
    )
