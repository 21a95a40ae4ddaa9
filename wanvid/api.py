"""``wanvid.Wanvid``: the Python face of wanvid, with the same guarantees as the command line.

It is a thin layer over the job pipeline (``wanvid.jobs``), the same one ``wanvid run``, ``download`` and
``batch`` use: every task is journaled before anything else, an identical request reuses a live task
instead of paying again, a download resumes where it stopped and is verified as an MP4 before it is
put in place. Settings come from the same precedence as the CLI: arguments > ``WANVID_*`` environment >
the config file's profile > defaults. Errors are the typed errors of ``wanvid.errors`` (each carries
the CLI's ``exit_code``); nothing is printed: progress goes to the ``reporter`` (default: the standard
``logging`` module, logger ``wanvid``). See docs/python.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wanvid.errors import FieldError
from wanvid.jobs.pipeline import Delivery, Job, Video, download_all, make_video, task_status, wait_for_task
from wanvid.jobs.session import Session
from wanvid.report import Reporter

if TYPE_CHECKING:
    from wanvid.rules.request import Validated
    from wanvid.rules.task import Task


@dataclass(frozen=True)
class RowResult:
    """How one row of a batch ended (docs/schema/batch-row.json)."""

    row: int
    status: str  # saved, already_saved, failed, error, invalid, interrupted, not_started
    task_id: str | None
    output: Path | None
    error: dict[str, Any] | None
    reused: bool


@dataclass(frozen=True)
class BatchResult:
    """A batch's outcome: every row, the counts, the results file and the exit code the CLI would give."""

    rows: list[RowResult]
    summary: dict[str, int]
    exit_code: int
    results: Path
    document: dict[str, Any] = field(repr=False)  # the CLI's --json document (docs/schema/batch.json)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Wanvid:
    """A client of the ope.ai gateway's Wan image-to-video models.

    >>> client = Wanvid(base_url="http://127.0.0.1:8000", api_key="sk-...")  # doctest: +SKIP
    >>> video = client.run("cat.png", prompt="the cat walks toward the camera")  # doctest: +SKIP
    >>> video.path  # doctest: +SKIP
    PosixPath('/home/me/cat.mp4')
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        profile: str | None = None,
        protocol: str | None = None,
        reporter: Reporter | None = None,
        allow_insecure: bool = False,
    ) -> None:
        self.session = Session.resolve(
            api_key=api_key,
            base_url=base_url,
            profile=profile,
            protocol=protocol.lower() if protocol else None,
            report=reporter,
            allow_insecure=allow_insecure,
        )

    @property
    def base_url(self) -> str:
        return self.session.base

    @property
    def profile(self) -> str:
        return self.session.profile_name

    @property
    def protocol(self) -> str:
        return self.session.protocol

    def request(
        self,
        image: str | Path | None = None,
        *,
        model: str | None = None,
        allow_empty_prompt: bool = False,
        **options: Any,
    ) -> Validated:
        """Check a request against the model's rules (files inspected, nothing sent); a FieldError names the
        option at fault. ``options``: prompt, negative_prompt, resolution, duration, seed, prompt_extend,
        watermark, shot_type, last_frame, audio, first_clip, size, generate_audio. A blank prompt is refused
        unless ``allow_empty_prompt`` (leave ``prompt`` out to send none); ``model`` is matched in any case,
        and a typo of a known model is refused. ``model``, ``resolution`` and ``duration`` not given come from
        the profile's defaults (``wanvid config set model ...``), as on the command line. A prompt in a
        file: ``prompt=Path(f).read_text()``."""
        from wanvid.jobs import defaults
        from wanvid.rules.request import VideoRequest, validate

        values: dict[str, Any] = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}
        # The words the CLI takes in any case, as the models' rules spell them.
        for name, spell in (("resolution", str.upper), ("shot_type", str.lower)):
            if isinstance(values.get(name), str):
                values[name] = spell(values[name])
        values["model"] = model
        filled = defaults.fill(values, self.session.profile_name)  # the profile's model, resolution, duration
        try:
            req = VideoRequest(image=str(image) if image is not None else None, **values)
        except TypeError as exc:
            raise FieldError("options", f"unknown option: {exc}") from None
        try:
            v = validate(req, self.session.protocol, allow_empty_prompt=allow_empty_prompt)
        except FieldError as exc:
            raise (defaults.from_file(exc, self.session.profile_name) if exc.field in filled else exc) from None
        for warning in v.warnings:
            self.session.report.warn(warning)
        for note in v.notes:
            self.session.report.info(note)
        return v

    def create(self, image: str | Path | None = None, *, new: bool = False, **options: Any) -> Task:
        """Submit a task, or reuse the live task of an identical request (unless ``new``); journaled first."""
        from wanvid.gateway.upload import place
        from wanvid.jobs.steps import submit_or_reuse

        v = self.request(image, **options)
        place(v, self.session.profile_name, out=self.session.report)  # local files that go by URL: the bucket
        task, _, _ = submit_or_reuse(self.session, self.session.client(), v, new, new_hint="new=True")
        return task

    def status(self, task_id: str | None = None) -> Task:
        """One status query (default: the journal's most recent task of this profile and gateway). A task that
        failed is returned as such; one the gateway does not have raises NotFound (exit 5)."""
        from wanvid.gateway.service import check_outcome
        from wanvid.rules.task import Status

        task, entry = task_status(self.session, task_id)
        if task.status is Status.NOT_FOUND or (task.status is Status.UNKNOWN and entry is None):
            check_outcome(task, alive=entry is not None)
        return task

    def wait(self, task_id: str | None = None, *, timeout: float = 1800.0, poll_interval: float | None = None) -> Task:
        """Poll until the task ends; TaskFailed (exit 3) if it failed, WaitTimeout (124) at ``timeout``."""
        return wait_for_task(self.session, task_id, timeout, poll_interval)

    def download(
        self,
        task_id: str | None = None,
        output: str | Path | None = None,
        *,
        force: bool = False,
        metadata: bool = True,
        wait: bool = True,
        timeout: float = 1800.0,
    ) -> Video:
        """Save a task's MP4 (default: where ``run`` meant it to go, else ``<task_id>.mp4``), resuming a
        partial download; waits for an unfinished task unless ``wait`` is False."""
        job = Job(
            task_id=task_id,
            output=str(output) if output is not None else None,
            force=force,
            metadata=metadata,
            wait=wait,
            timeout=timeout,
        )
        return make_video(self.session, job)

    def download_all(
        self,
        output_dir: str | Path | None = None,
        *,
        force: bool = False,
        metadata: bool = True,
        timeout: float = 1800.0,
        poll_interval: float | None = None,
    ) -> list[Delivery]:
        """``wanvid download --all``: every task of this profile and gateway from the last 48 h whose video is
        not on disk, unfinished ones waited for, each saved where it was meant to go (``output_dir``: there
        instead). Safe to call again: a video already saved is skipped, asking nothing. One ``Delivery`` per
        task (``status``: saved, already_saved, failed, gone, error; ``error``: the typed error); nothing raised
        for a task that failed, except a stop (Interrupted)."""
        job = Job(
            output=str(output_dir) if output_dir is not None else None,
            force=force,
            metadata=metadata,
            timeout=timeout,
            poll_interval=poll_interval,
        )
        done, _ = download_all(self.session, job)
        return done

    def run(
        self,
        image: str | Path | None = None,
        *,
        output: str | Path | None = None,
        new: bool = False,
        force: bool = False,
        metadata: bool = True,
        timeout: float = 1800.0,
        poll_interval: float | None = None,
        **options: Any,
    ) -> Video:
        """Create (or reuse), wait and download: the video for this request, saved and verified. Called again
        with the same request, it returns the video already saved without asking the gateway."""
        v = self.request(image, **options)
        job = Job(
            request=v,
            output=str(output) if output is not None else None,
            uploads={},
            new_hint="new=True",
            new=new,
            force=force,
            metadata=metadata,
            timeout=timeout,
            poll_interval=poll_interval,
        )
        return make_video(self.session, job)

    def batch(
        self,
        manifest: str | Path,
        *,
        output_dir: str | Path = ".",
        name: str = "{stem}.mp4",
        concurrency: int = 4,
        stagger: float = 0.0,
        results: str | Path | None = None,
        skip_invalid: bool = False,
        force: bool = False,
        metadata: bool = True,
        timeout: float = 1800.0,
        poll_interval: float | None = None,
        allow_empty_prompt: bool = False,
        **defaults: Any,
    ) -> BatchResult:
        """A video for every row of a CSV or JSONL manifest, ``concurrency`` at a time; rerunning it never pays
        for a row twice. ``defaults``: request options for the rows that do not set them."""
        from wanvid.jobs import defaults as profile_defaults
        from wanvid.jobs.batch import run_batch

        job = Job(force=force, metadata=metadata, timeout=timeout, poll_interval=poll_interval, new_hint=None)
        rows_default = dict(defaults)
        profile_defaults.fill(rows_default, self.session.profile_name)  # a row's own cell still wins
        doc = run_batch(
            self.session,
            Path(manifest),
            rows_default,
            job=job,
            output_dir=output_dir,
            name=name,
            concurrency=concurrency,
            stagger=stagger,
            results=results,
            skip_invalid=skip_invalid,
            allow_empty_prompt=allow_empty_prompt,
        )
        rows = [
            RowResult(
                r["row"],
                r["status"],
                r["task_id"],
                Path(r["output"]) if r["output"] else None,
                r["error"],
                r["reused"],
            )
            for r in doc["rows"]
        ]
        return BatchResult(rows, doc["summary"], doc["exit_code"], Path(doc["results"]), doc)
