"""Startup rows: `--help`, tab completion (subcommands, options, task ids from the journal), `status ID`.

All are whole processes, compared with whole processes that do the least such a command could: the
interpreter alone (`python -c pass`) for completion, `import typer` for help, and the imports a Typer tool
built on requests cannot skip for `status`. The reference commands (`import typer`, `import
requests` ...) run alongside, and a line compares their times with a reference machine's, to tell how fast this
machine is at the time against the one the targets were set on.
They run wanvid installed from a wheel, as users have it (``installed_copy``), not the .venv's editable
install, whose import hook would add ~14 ms to every start, the floor's included.
Completion is driven the way the installed shell scripts drive it (completions/): environment variables
naming the shell and the words typed so far. The journal the task-id completion reads is filled first by
real `wanvid create` runs against the sandbox.
"""

from __future__ import annotations

import requests

from .common import AUTH, Ctx, Proc, Row, installed_copy, measure, median, mib, ms, rounds, sandbox, say

WALL_TARGET = 0.120  # --help, create --help
RSS_TARGET = 30 * 1024 * 1024
COMPLETE_TARGET = 0.060
STATUS_TARGET = 0.200
# A reference 2-core machine's figures (Python 3.11, medians), seconds: the floor, then imports.
REFERENCE_FLOOR = 0.0095
DEPS = "import typer, requests, platformdirs"  # the imports `status` cannot do without
REFERENCE = {
    "import typer": 0.060,
    "import requests": 0.108,
    "import rich.progress": 0.059,
    "import typer, rich.progress, requests, platformdirs": 0.164,
}


def run(ctx: Ctx) -> list[Row]:
    n = 7 if ctx.quick else 21
    python, wanvid = installed_copy(ctx.tmp)
    say(f"   wanvid installed from a wheel: {wanvid}")
    with sandbox(ctx.env) as url:
        ids = _populate(ctx, wanvid, url, 10 if ctx.quick else 30)
        env = ctx.env

        def complete(shell: str, words: str, cword: int | None = None) -> tuple[list[str], dict[str, str]]:
            extra = {"_WANVID_COMPLETE": f"complete_{shell}"}
            if shell == "bash":
                extra.update(COMP_WORDS=words, COMP_CWORD=str(cword))
            else:  # zsh and fish pass the command line as typed; a trailing space means "new empty word"
                extra["_TYPER_COMPLETE_ARGS"] = words
                if shell == "fish":
                    extra["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
            return [wanvid], {**env, **extra}

        cases = {
            "floor": ([python, "-c", "pass"], env),
            "help": ([wanvid, "--help"], env),
            "create_help": ([wanvid, "create", "--help"], env),
            "sub": complete("bash", "wanvid sta", 1),
            "opt": complete("bash", "wanvid create --re", 2),
            "ids_bash": complete("bash", "wanvid status ", 2),
            "ids_zsh": complete("zsh", "wanvid status "),
            "ids_fish": complete("fish", "wanvid status "),
            "status": ([wanvid, "status", ids[0], "--base-url", url], env),
            # The reference commands, measured here too, so a run tells how this machine's
            # speed at the time compares with the machine the targets were set on.
            **{f"ref {stmt}": ([python, "-c", stmt], env) for stmt in REFERENCE},
            # What any Typer tool that talks HTTP with requests pays before its own code runs.
            "deps": ([python, "-c", DEPS], env),
        }
        say(f"   {len(cases)} cases x {n} interleaved runs (+2 warm-up)")
        got = rounds(cases, n)

    floor = got["floor"]
    fw, fr = median([p.wall for p in floor]), median([p.rss for p in floor])
    rows: list[Row] = []
    say(f"   python -c pass: {ms(fw)}, {mib(fr)}")
    say(_against_reference(fw, {stmt: median([p.wall for p in got[f"ref {stmt}"]]) for stmt in REFERENCE}))

    def wall_row(
        name: str, key: str, target: float, ok_extra: bool = True, note: str = "", base: tuple[str, float] | None = None
    ) -> None:
        procs = got[key]
        w = median([p.wall for p in procs])
        bad = _bad_exit(procs)
        base_name, base_wall = base or ("python -c pass", fw)
        rows.append(
            Row(
                name,
                ms(w),
                f"{base_name} {ms(base_wall)}",
                f"{w / base_wall:.2f}x",
                f"<= {ms(target)}",
                w <= target and ok_extra and not bad,
                "; ".join(x for x in (bad, note) if x),
            )
        )

    def rss_row(name: str, key: str) -> None:
        r = median([p.rss for p in got[key]])
        rows.append(Row(name, mib(r), f"python -c pass {mib(fr)}", f"{r / fr:.2f}x", "<= 30.0 MiB", r <= RSS_TARGET))

    typer_only = ("import typer", median([p.wall for p in got["ref import typer"]]))
    wall_row("wanvid --help: wall", "help", WALL_TARGET, base=typer_only)
    rss_row("wanvid --help: peak RSS", "help")
    wall_row("wanvid create --help: wall", "create_help", WALL_TARGET, base=typer_only)
    rss_row("wanvid create --help: peak RSS", "create_help")

    offers_status = "status" in got["sub"][0].out.split()
    wall_row(
        "complete subcommand `wanvid sta` (bash)",
        "sub",
        COMPLETE_TARGET,
        offers_status,
        "" if offers_status else "`status` not offered",
    )
    offers_opt = "--resolution" in got["opt"][0].out.split()
    wall_row(
        "complete option `create --re` (bash)",
        "opt",
        COMPLETE_TARGET,
        offers_opt,
        "" if offers_opt else "`--resolution` not offered",
    )
    for shell in ("bash", "zsh", "fish"):
        key = f"ids_{shell}"
        offered = _candidates(shell, got[key][0].out)
        known = len(set(offered) & set(ids))
        say(f"   task-id completion ({shell}): {len(offered)} candidates, {known} of the {len(ids)} created ids")
        # A fast answer that offers no ids is not the feature; the row only passes when ids come back.
        wall_row(
            f"complete task id `status ` ({shell})",
            key,
            COMPLETE_TARGET,
            known > 0,
            f"offers {known} of {len(ids)} journal ids",
        )
    deps = median([p.wall for p in got["deps"]])
    wall_row("wanvid status ID (whole process)", "status", STATUS_TARGET, base=("typer+requests+platformdirs", deps))
    return rows


def _against_reference(floor: float, walls: dict[str, float]) -> str:
    """One line comparing this run's figures for the reference commands with the reference machine's."""
    parts = [f"python -c pass {ms(floor)} ({REFERENCE_FLOOR * 1000:.1f} ms)"]
    parts += [f"{stmt.removeprefix('import ')} {ms(walls[stmt])} ({ms(ref)})" for stmt, ref in REFERENCE.items()]
    speed = median([walls[stmt] / ref for stmt, ref in REFERENCE.items()])
    return (
        "   the reference commands, here (the reference machine's in brackets): " + ", ".join(parts) + "\n"
        f"   this machine took {speed:.2f}x the reference machine's times for those imports (median of the four), "
        f"{floor / REFERENCE_FLOOR:.2f}x for the floor"
    )


def _populate(ctx: Ctx, wanvid: str, url: str, count: int) -> list[str]:
    """Create tasks with the real CLI, so whatever wanvid records about them (its journal) is there."""
    say(f"   creating {count} tasks with `wanvid create examples/cat.png -p 'bench task N'`")
    ids: list[str] = []
    for i in range(count):
        # A distinct prompt each time: wanvid may hand back the task of an identical earlier request.
        argv = [wanvid, "create", "examples/cat.png", "-p", f"bench task {i}", "-q", "--base-url", url]
        p = measure(argv, ctx.env)
        if p.rc != 0:
            raise RuntimeError(f"`wanvid create` failed with exit {p.rc}")
        ids.append(p.out.strip())
    if len(set(ids)) != count:
        raise RuntimeError(f"{count} creates gave {len(set(ids))} distinct task ids")
    # The status row needs a task the sandbox knows; make sure the id we got really is one.
    r = requests.get(f"{url}/aliyun/v1/tasks/{ids[0]}", headers=AUTH, timeout=10)
    r.raise_for_status()
    return ids


def _candidates(shell: str, out: str) -> list[str]:
    """The values a completion answer offers, whatever the shell's format."""
    if shell == "zsh":  # _arguments '*: :(("value":"help"\n"value2"))'  or  _files when there is nothing
        if not out.startswith("_arguments"):
            return []
        body = out[out.find("((") + 2 : out.rfind("))")]
        return [line.split('"')[1] for line in body.splitlines() if line.count('"') >= 2]
    return [line.split("\t")[0] for line in out.splitlines() if line.strip()]  # bash; fish: value<TAB>help


def _bad_exit(procs: list[Proc]) -> str:
    codes = sorted({p.rc for p in procs if p.rc != 0})
    return f"exit {', '.join(map(str, codes))}" if codes else ""
