"""wanvid: still image → video with Alibaba's Wan image-to-video models through the ope.ai gateway.

The Python API (docs/python.md)::

    import wanvid

    client = wanvid.Wanvid()                      # key, gateway and profile as the CLI finds them
    video = client.run("cat.png", prompt="the cat walks toward the camera")
    print(video.path, video.task_id)

``Wanvid`` (create, status, wait, download, run, batch), its results (``Task``, ``Video``,
``BatchResult``), the reporter interface (``Reporter``, ``LogReporter``) and the typed errors, each with
the exit code the CLI gives it. The heavy parts load on first use, so ``import wanvid`` stays cheap
(the CLI imports this package on every start, completion included).

Layers, top to bottom (README "Developing wanvid"; a test keeps the imports this way)::

    cli, api      the command line; this Python face
    jobs          the job pipeline: submit-or-reuse → journal → wait → download → verify → sidecar → hook
    gateway       HTTP to the gateway: protocols, client, streamed bodies, downloads, uploads
    store         the journal of tasks, records and sidecars
    rules         models, request validation, media inspection, MP4 checks, task statuses, manifests
    config        settings and the config/data directories
    errors, redact, report   the typed errors, the key filter, the reporter interface
    sandbox       the gateway emulator, beside the stack (it uses rules only)
"""

from typing import TYPE_CHECKING, Any

from wanvid.errors import (
    ApiError,
    AuthError,
    BadAnswer,
    CorruptDownload,
    Expired,
    FieldError,
    HookFailed,
    Interrupted,
    InvalidRequest,
    NotFound,
    StorageError,
    TaskFailed,
    Unavailable,
    UsageError,
    WaitTimeout,
    WanvidError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from wanvid.api import BatchResult, RowResult, Wanvid
    from wanvid.jobs.pipeline import Video
    from wanvid.jobs.signals import stop_signals
    from wanvid.report import LogReporter, Reporter
    from wanvid.rules.task import Status, Task

_LAZY = {
    "Wanvid": "wanvid.api",
    "BatchResult": "wanvid.api",
    "RowResult": "wanvid.api",
    "Video": "wanvid.jobs.pipeline",
    "stop_signals": "wanvid.jobs.signals",
    "Reporter": "wanvid.report",
    "LogReporter": "wanvid.report",
    "Task": "wanvid.rules.task",
    "Status": "wanvid.rules.task",
}

__all__ = [
    "ApiError",
    "AuthError",
    "BadAnswer",
    "BatchResult",
    "CorruptDownload",
    "Expired",
    "FieldError",
    "HookFailed",
    "Interrupted",
    "InvalidRequest",
    "LogReporter",
    "NotFound",
    "Reporter",
    "RowResult",
    "Status",
    "StorageError",
    "Task",
    "TaskFailed",
    "Unavailable",
    "UsageError",
    "Video",
    "WaitTimeout",
    "Wanvid",
    "WanvidError",
    "__version__",
    "stop_signals",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'wanvid' has no attribute {name!r}")
