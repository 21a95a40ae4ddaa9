"""``wanvid batch``: a video for every row of a manifest, N rows at a time.

The rows are planned, run and recorded by ``wanvid.jobs.batch``; this module turns the options into
that call and the outcome into the output and exit code. It offers every common option.
"""

import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from wanvid import config
from wanvid.cli.boundary import command
from wanvid.cli.options import CREATE_PARAMS, OUT_PARAMS, UPLOAD_PARAMS, WAIT_PARAMS, _upload_flags
from wanvid.errors import StorageError, UsageError
from wanvid.jobs.session import Ctx, check_wait


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
            help="The results JSONL, one line per row [default: <output-dir>/<manifest name>.results.jsonl].",
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
    from wanvid.gateway.client import Gate
    from wanvid.jobs import batch
    from wanvid.rules import manifest as manifest_file

    check_wait(timeout, poll_interval)
    if not 1 <= concurrency <= 32:
        raise UsageError("--concurrency must be from 1 to 32")
    if not math.isfinite(stagger) or not 0 <= stagger <= 3600:
        raise UsageError("--stagger must be a number of seconds from 0 to 3600")
    out_dir = config.expand(output_dir, "--output-dir").resolve()  # resolved: the journal knows saved videos by path
    rows = manifest_file.read(manifest)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the output directory {out_dir}: {exc.strerror}") from None
    from wanvid.gateway.upload import resolve as upload_settings

    hosting = upload_settings(ctx.profile_name, **_upload_flags(opts))
    defaults = {k: (v.value if isinstance(v, Enum) else v) for k, v in opts.items()}
    items = batch.plan(ctx, rows, defaults, out_dir=out_dir, template=name, force=force, hosting=hosting)
    for warning in dict.fromkeys(w for item in items if item.v for w in item.v.warnings):
        ctx.out.warn(warning)
    invalid = [item for item in items if item.problems]
    for item in invalid:
        ctx.out.note(f"row {item.row}: " + "; ".join(item.problems))
    if invalid and not skip_invalid:
        raise batch.InvalidRows(
            f"{len(invalid)} of {len(items)} row(s) of {manifest} are invalid (listed above); nothing was sent",
            "fix them, or pass --skip-invalid to run the valid rows",
            invalid,
        )
    ctx.client()  # a missing key or an insecure URL stops the batch here, not once per row
    results_path = out_dir / f"{manifest.stem}.results.jsonl"
    if results:  # its directory resolved, not the file: a link there is refused (ResultsFile), never followed
        given = config.expand(results, "--results").absolute()
        results_path = given.parent.resolve() / given.name
    if results_path == manifest.resolve() or results_path in {item.dest for item in items}:
        raise UsageError(f"--results {results_path} is the manifest or a row's video", hint="pass another --results")
    results_file = batch.ResultsFile(results_path)
    labels = [(item.row, item.dest.name if item.dest else item.template) for item in items]
    with ctx.out.batch(labels) as board:
        done = batch.run(
            ctx,
            items,
            board,
            out_dir=out_dir,
            concurrency=concurrency,
            gate=Gate(spacing=stagger),
            wait_opts={"timeout": timeout, "poll_interval": poll_interval},
            force=force,
            metadata=metadata,
            hook=on_complete,
            record=results_file.add,
        )
    results_file.close(done)
    doc = batch.document(manifest, results_path, done)
    shown = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in doc["summary"].items() if n and k != "rows")
    ctx.out.info(f"{len(done)} row(s): {shown}; results in {results_path}")
    paths = "\n".join(r.output for r in done if r.output and r.status in ("saved", "already_saved"))
    if ctx.out.mode == "human":
        table = [(str(r.row), r.status, r.task_id or "", r.output or (r.error or {}).get("message", "")) for r in done]
        ctx.out.table(("ROW", "STATUS", "TASK", "OUTPUT / ERROR"), table, doc)
    else:
        ctx.out.result(paths, doc, quiet_text=paths)
    if doc["exit_code"]:
        raise typer.Exit(doc["exit_code"])
