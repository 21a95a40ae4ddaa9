"""``wanvid batch``: a video for every row of a manifest, N rows at a time.

The rows are planned, run and recorded by ``wanvid.jobs.batch``; this module turns the options into
that call and the outcome into the output and exit code. It offers every common option.
"""

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from wanvid.cli.boundary import command
from wanvid.cli.context import Ctx
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
            "options (image, prompt, seed...) plus output.",
            show_default=False,
        ),
    ],
    *,
    output_dir: Annotated[
        str, typer.Option("--output-dir", "-d", metavar="DIR", help="Where the videos go (created if missing).")
    ] = ".",
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
        float, typer.Option("--stagger", metavar="SECONDS", help="Least time between two task submissions.")
    ] = 0.5,
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
    defaults = {k: (v.value if isinstance(v, Enum) else v) for k, v in opts.items()}
    job = Job(
        force=force,
        metadata=metadata,
        timeout=timeout,
        poll_interval=poll_interval,
        hook=on_complete,
        new_hint=None,  # a batch has no --new: rerunning it reuses, and that is the point
    )
    check_options(job, concurrency, stagger)  # before the settings are read, as every option check is
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
    )
    rows = doc["rows"]
    paths = "\n".join(r["output"] for r in rows if r["output"] and r["status"] in ("saved", "already_saved"))
    if ctx.out.mode == "human":
        table = [
            (str(r["row"]), r["status"], r["task_id"] or "", r["output"] or (r["error"] or {}).get("message", ""))
            for r in rows
        ]
        ctx.out.table(("ROW", "STATUS", "TASK", "OUTPUT / ERROR"), table, doc)
    else:
        ctx.out.result(paths, doc, quiet_text=paths)
    if doc["exit_code"]:
        raise typer.Exit(doc["exit_code"])
