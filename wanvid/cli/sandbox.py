"""``wanvid sandbox``: the built-in gateway emulator (``wanvid.sandbox``) in the foreground.

It is no client of a gateway, so it offers none of the gateway options (--base-url, --profile,
--protocol, --debug, --allow-insecure). Its --api-key is its own: the one key the sandbox accepts
(any key when not given), which also keeps it out of everything printed, as a client's key is.
"""

import math
from typing import Annotated, Any

import typer

from wanvid.cli.boundary import command
from wanvid.cli.context import Ctx
from wanvid.cli.options import OUTPUT, _param
from wanvid.errors import UsageError

# Fills Ctx.api_key, which the body reads as the key to accept.
ACCEPTED_KEY = _param(
    "api_key",
    Annotated[
        str | None,
        typer.Option(
            "--api-key",
            metavar="KEY",
            help="Accept only this API key [default: any key].",
            show_default=False,
        ),
    ],
)


@command("sandbox", common=(ACCEPTED_KEY, *OUTPUT))
def sandbox(
    ctx: Ctx,
    host: Annotated[str, typer.Option("--host", metavar="HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="Port; 0 picks a free one.")] = 8765,
    queue_seconds: Annotated[
        float, typer.Option("--queue-seconds", metavar="SECONDS", help="How long tasks stay PENDING.")
    ] = 2.0,
    run_seconds: Annotated[
        float, typer.Option("--run-seconds", metavar="SECONDS", help="How long tasks stay RUNNING.")
    ] = 6.0,
    fail: Annotated[
        str | None,
        typer.Option("--fail", metavar="CODE:MESSAGE", help="Fault: new tasks end FAILED with this code and message."),
    ] = None,
    throttle: Annotated[
        int, typer.Option("--throttle", metavar="N", help="Fault: answer the next N API calls 429.")
    ] = 0,
    server_errors: Annotated[
        int, typer.Option("--server-errors", metavar="N", help="Fault: answer the next N API calls 500.")
    ] = 0,
    cut_download_after: Annotated[
        int | None,
        typer.Option(
            "--cut-download-after", metavar="BYTES", help="Fault: drop the first download after this many bytes."
        ),
    ] = None,
    slow_download: Annotated[
        int | None, typer.Option("--slow-download", metavar="BYTES_PER_S", help="Fault: serve downloads at this rate.")
    ] = None,
    expire: Annotated[bool, typer.Option("--expire", help="Fault: every task reports as expired.")] = False,
    ttl_seconds: Annotated[
        float, typer.Option("--ttl-seconds", metavar="SECONDS", help="How long tasks and their signed URLs live.")
    ] = 86400.0,
    flavor: Annotated[
        str,
        typer.Option(
            "--flavor",
            metavar="[docs|newapi|house]",
            help="Answer style: docs (default, ope.ai's pages), newapi (new-api's code: lowercase statuses, flat "
            "errors, empty 429s, a content route without Range) or house (the sandbox's first style).",
        ),
    ] = "docs",
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            metavar="NAME=VALUE",
            help="Any fault of POST /_sandbox/faults, VALUE as JSON (repeatable), e.g. --fault content_errors=3.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the built-in gateway emulator in the foreground and print its base URL.

    It speaks both protocols with the real gateway's shapes and rules, accepts any key (or only
    --api-key when given), and serves a real MP4. Faults can also be switched at runtime:
    POST /_sandbox/faults with a JSON object, e.g. {"throttle": 3, "retry_after": 1}; the flavor
    with POST /_sandbox/flavor {"flavor": "newapi"}. DashScope SDK users point base_http_api_url
    at URL/api/v1, URL being the base URL it prints.
    """
    from wanvid.sandbox import FLAVORS, Sandbox

    if flavor not in FLAVORS:
        raise UsageError(f"--flavor must be one of {', '.join(FLAVORS)}, not {flavor!r}")
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, not {port}", hint="0 picks a free port")
    for flag, seconds in (("--queue-seconds", queue_seconds), ("--run-seconds", run_seconds)):
        if not math.isfinite(seconds) or seconds < 0:
            raise UsageError(f"{flag} must be a number of seconds, 0 or more")
    if not math.isfinite(ttl_seconds) or ttl_seconds <= 0:
        raise UsageError("--ttl-seconds must be a number of seconds, more than 0")
    counts = {"--throttle": throttle, "--server-errors": server_errors, "--cut-download-after": cut_download_after}
    for flag, count in counts.items():
        if count is not None and count < 0:
            raise UsageError(f"{flag} must be 0 or more")
    if slow_download is not None and slow_download <= 0:
        raise UsageError("--slow-download must be a number of bytes a second, more than 0")

    code, _, message = (fail or "").partition(":")
    try:
        sb = Sandbox(
            host,
            port,
            api_key=ctx.api_key,
            queue_seconds=queue_seconds,
            run_seconds=run_seconds,
            ttl_seconds=ttl_seconds,
            flavor=flavor,
        )
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror}", hint="pick another --port (0 = any free port)"
        ) from None
    f = sb.faults
    f.fail_code, f.fail_message = code or None, message or None
    f.throttle, f.server_errors = throttle, server_errors
    f.cut_download_after, f.slow_download_bps, f.expire = cut_download_after, slow_download, expire
    problem = sb._merge_faults(dict(_fault_setting(item) for item in fault or []))
    if problem:
        sb.stop()
        raise UsageError(f"--fault {problem[0]}: {problem[1]}", hint="see GET /_sandbox/faults for the names")
    ctx.out.result(sb.url, {"base_url": sb.url})
    key = "<the key you gave it>" if ctx.api_key else "anything"
    ctx.out.info(f"sandbox gateway listening; use it with: --base-url {sb.url} --api-key {key}   (Ctrl-C stops it)")
    try:
        sb.serve_forever()
    except KeyboardInterrupt:
        ctx.out.info("sandbox stopped")


def _fault_setting(item: str) -> tuple[str, Any]:
    import json

    name, eq, value = item.partition("=")
    if not eq:
        raise UsageError(f"--fault {item!r} is not NAME=VALUE", hint="e.g. --fault content_errors=3")
    try:
        return name.strip(), json.loads(value)
    except ValueError:
        return name.strip(), value  # a bare word: a string fault such as malformed=html
