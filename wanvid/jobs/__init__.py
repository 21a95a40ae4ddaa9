"""The job layer: the use cases that make videos, with the never-pay-twice guarantees.

- ``pipeline``: ``make_video`` — the one place where submit-or-reuse → journal → wait → download → verify
  → sidecar → hook are put together, for ``run``, ``download``, batch rows and ``wanvid.Wanvid``; plus
  ``task_status``, ``wait_for_task``, ``wait_unfinished``
- ``steps``: each step as a function of a ``Session`` and explicit arguments
- ``session``: ``Session``: resolved settings, the journal, a client factory and a reporter
- ``batch``: a manifest planned, run N rows at a time through ``make_video``, and recorded
- ``defaults``: a profile's video defaults (model, resolution, duration, output_dir), for the CLI and
  ``wanvid.Wanvid`` alike: checked, resolved
- ``poller``: the poll schedule and deadline; ``signals``: SIGINT/SIGTERM/SIGHUP without losing a task

Takes a ``wanvid.report.Reporter`` for everything a person should see; never prints, never imports rich.
"""
