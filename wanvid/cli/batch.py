"""``wanvid batch``: a video for every row of a manifest, N rows at a time.

The rows are planned, run and recorded by ``wanvid.jobs.batch``; this module turns the options into
that call and the outcome into the output and exit code. It offers every common option.
"""

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from wanvid.cli.boundary import command
from wanvid.cli.context import Ctx, prompt_inputs
from wanvid.cli.options import CREATE_PARAMS, OUT_PARAMS, UPLOAD_PARAMS, WAIT_PARAMS, _upload_flags


@command(
    "batch",
    [p for p in CREATE_PARAMS if p.name != "image"],
    WAIT_PARAMS,
    [p for p in OUT_PARAMS if p.name != "output"],
    UPLOAD_PARAMS,
)
def batch_(
    ctx: Ctx,
    manifest: Annotated[
        Path,
        typer.Argument(
            metavar="MANIFEST",
            help="A .csv (with a header row) or .jsonl file: one row per video, columns named like the video "
            "options (image, prompt, seed...) plus output, prompt_file and negative_prompt_file.",
            show_default=False,
        ),
    ],
    *,
    output_dir: Annotated[
        str | None,
        typer.Option(
            "--output-dir",
            "-d",
            metavar="DIR",
            help="Where the videos go (created if missing) [default: the config file's output_dir, else .].",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str,
        typer.Option(
            "--name",
            metavar="TEMPLATE",
            help="File name of each video; fields: {row} {stem} {model} {seed} {duration} {resolution} {task_id}.",
        ),
    ] = "{stem}.mp4",
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-j", metavar="N", help="Rows in progress at once (1-32).")
    ] = 4,
    stagger: Annotated[
        float,
        typer.Option(
            "--stagger",
            metavar="SECONDS",
            help="Least time between two task submissions; 0: as fast as the gateway's answers allow (after a 429"
            " every request is paced to the rate the gateway was seen to accept).",
        ),
    ] = 0.0,
    results: Annotated[
        str | None,
        typer.Option(
            "--results",
            metavar="PATH",
            help="The results JSONL, one line per row [default: DIR/shots.results.jsonl for a manifest shots.csv].",
            show_default=False,
        ),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Run the valid rows even if others are invalid (exit 2 at the end).")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the plan and send nothing: each row's output file and whether it would create a task, "
            "reuse the journal's or skip a video already saved; the billed seconds in total.",
        ),
    ] = False,
    new: Annotated[
        bool,
        typer.Option(
            "--new", help="Pay for a new task for every row not saved yet, even if the journal has a live one."
        ),
    ] = False,
    timeout: float = 1800.0,
    poll_interval: float | None = None,
    force: bool = False,
    metadata: bool = True,
    on_complete: str | None = None,
    **opts: Any,
) -> None:
    """Make a video for every row of a manifest, N at a time; rerunning it never pays for a row twice.

    The video options given here are defaults for the rows that do not set them. Every row is checked
    before anything is sent. Rows already saved are skipped, live tasks for the same request are reused,
    and Ctrl-C leaves every submitted task resumable: run the same command again. Exit 0 when every row
    succeeded, else the exit code of the worst failure.
    """
    from wanvid.jobs.batch import check_options, run_batch
    from wanvid.jobs.pipeline import Job

    uploads = _upload_flags(opts)
    _, allow_empty = prompt_inputs(ctx, opts)  # --prompt-file's text is the rows' default prompt
    defaults = {k: (v.value if isinstance(v, Enum) else v) for k, v in opts.items()}
    job = Job(
        new=new,
        force=force,
        metadata=metadata,
        timeout=timeout,
        poll_interval=poll_interval,
        hook=on_complete,
        new_hint=None,  # a rerun of the batch reuses its tasks: that is the point, so no hint to pass --new
    )
    check_options(job, concurrency, stagger)  # before the settings are read, as every option check is
    from wanvid.jobs import defaults as profile_defaults

    profile = ctx.profile_name  # the settings: a profile that does not exist is named before its defaults are read
    profile_defaults.fill(defaults, profile)  # a row's own cell still wins: these are the rows' defaults
    output_dir = output_dir or profile_defaults.directory(profile) or "."
    if dry_run:
        _dry_run(ctx, manifest, defaults, job, output_dir, name, results, skip_invalid, uploads, allow_empty)
        return
    doc = run_batch(
        ctx.session,
        manifest,
        defaults,
        job=job,
        output_dir=output_dir,
        name=name,
        concurrency=concurrency,
        stagger=stagger,
        results=results,
        skip_invalid=skip_invalid,
        uploads=uploads,
        board=ctx.out.batch,
        allow_empty_prompt=allow_empty,
    )
    rows = doc["rows"]
    paths = "\n".join(r["output"] for r in rows if r["output"] and r["status"] in ("saved", "already_saved"))
    if ctx.out.mode == "human":
        table = [(str(r["row"]), r["status"], r["task_id"] or "", _outcome(r)) for r in rows]
        ctx.out.table(("ROW", "STATUS", "TASK", "OUTPUT / ERROR"), table, doc)
    else:
        ctx.out.result(paths, doc, quiet_text=paths)
    if any(r["status"] in ("interrupted", "not_started") for r in rows):
        ctx.out.note(f"note: interrupted; resume with: {_resume_command()} (it reuses every task already paid for)")
    if doc["exit_code"]:
        raise typer.Exit(doc["exit_code"])


def _outcome(row: dict[str, Any]) -> str:
    """The table's last column: the video, or why there is none (an interrupted row's task is in its own column,
    and the resume command follows the table)."""
    if row["output"] and row["status"] in ("saved", "already_saved"):
        return str(row["output"])
    if row["status"] == "interrupted":
        return "stopped; the task keeps running" if row["task_id"] else "stopped before a task was made"
    if row["status"] == "not_started":
        return "not started"
    return str(row["output"] or (row["error"] or {}).get("message", ""))


def _resume_command() -> str:
    """This very batch command, to run again: it skips the saved rows and reuses the tasks already paid for.
    Without --new (it would pay again for the rows interrupted) and never with the key (from the command line,
    as wanvid was started; "the same wanvid batch command" where that is not known)."""
    import shlex
    import sys

    words = sys.argv[1:]
    if "batch" not in words:  # not started as `wanvid ... batch ...` (e.g. from Python)
        return "the same wanvid batch command"
    kept: list[str] = []
    skip = False
    for word in words:
        if skip or word == "--new" or word.startswith("--api-key="):
            skip = False
            continue
        if word == "--api-key":
            skip = True
            continue
        kept.append(word)
    return shlex.join(["wanvid", *kept])


def _dry_run(
    ctx: Ctx,
    manifest: Path,
    defaults: dict[str, Any],
    job: Any,
    output_dir: str,
    name: str,
    results: str | None,
    skip_invalid: bool,
    uploads: dict[str, Any],
    allow_empty: bool,
) -> None:
    from wanvid.jobs.batch import dry_run

    doc = dry_run(
        ctx.session,
        manifest,
        defaults,
        job=job,
        output_dir=output_dir,
        name=name,
        results=results,
        skip_invalid=skip_invalid,
        uploads=uploads,
        allow_empty_prompt=allow_empty,
    )
    plan = doc["summary"]
    ctx.out.info(
        f"{plan['rows']} row(s): {plan['create']} to create, {plan['reuse']} to reuse from the journal, "
        f"{plan['already_saved']} already saved, {plan['invalid']} invalid; {plan['billed_seconds']} s of video "
        "billed in total (nothing was sent)"
    )
    shown = {"create": "create", "reuse": "reuse", "already_saved": "skip (saved)", "invalid": "invalid"}
    table = [
        (
            str(r["row"]),
            shown[r["action"]],
            r["task_id"] or "",
            str(r["seconds"]) if r["action"] == "create" else "",
            r["output"] if r["action"] != "invalid" else "; ".join(r["problems"]),
        )
        for r in doc["rows"]
    ]
    table.append(("", "total", "", str(plan["billed_seconds"]), f"{plan['create']} new task(s)"))
    ctx.out.table(("ROW", "ACTION", "TASK", "BILLED S", "OUTPUT / PROBLEM"), table, doc)
