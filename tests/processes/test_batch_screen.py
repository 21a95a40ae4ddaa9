"""The batch's live table on a pseudo-terminal, read back as the screen a person sees.

The raw bytes hold every redraw; ``screen`` replays them (carriage return, newline, cursor up, erase line)
into the lines left on the screen at the end, which is what the person reads."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..helpers import CAT, FAST_BATCH, on_a_terminal, process_env

_ESCAPE = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


def screen(raw: str) -> list[str]:
    """The lines a terminal shows after ``raw``: enough of one for rich's live display (which moves up
    over its last drawing, erases it and draws again); colours and other escapes are dropped."""
    lines, row, col, i = [""], 0, 0, 0
    while i < len(raw):
        escape = _ESCAPE.match(raw, i)
        if escape:
            arg, command = escape.groups()
            if command == "A":
                row = max(0, row - (int(arg) if arg.isdigit() else 1))
            elif command == "K":
                lines[row] = "" if arg == "2" else lines[row][:col]
            i = escape.end()
            continue
        ch, i = raw[i], i + 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif ch >= " ":
            line = lines[row].ljust(col)
            lines[row], col = line[:col] + ch + line[col + 1 :], col + 1
    return [line.rstrip() for line in lines]


def test_screen_replays_a_redraw():
    assert screen("a\r\nbb\r\x1b[2K\x1b[1A\x1b[2Kc\r\nd\r\n") == ["c", "d", ""]


def test_rerun_notes_go_above_the_live_table_never_into_it(sandbox, tmp_path: Path):
    # Many rows at once: each reuse note is printed while the table is redrawn. The notes came from the rows'
    # threads while rich redrew from its own, and the table's copies piled up, a note glued to the totals.
    rows = 12
    for i in range(rows):
        shutil.copy(CAT, tmp_path / f"shot{i:02d}.png")
    manifest = tmp_path / "m.csv"
    manifest.write_text("image,prompt\n" + "".join(f"shot{i:02d}.png,take {i}\n" for i in range(rows)))
    args = ["batch", str(manifest), "-d", str(tmp_path / "out"), "-j", str(rows), *FAST_BATCH]
    env = {k: v for k, v in process_env(sandbox).items() if k.startswith("WANVID_")}
    on_a_terminal(args, env)
    for video in (tmp_path / "out").glob("*.mp4"):  # the batch finished; its videos are then removed
        video.unlink()

    out, raw = on_a_terminal(args, env)  # every row reuses its finished task and saves its video again

    shown = screen(raw)
    assert out.count(".mp4") == rows
    notes = [line for line in shown if "reusing task" in line]
    assert len(notes) == rows, shown
    assert all(re.match(r"row \d+: reusing task ", line) for line in notes), notes  # each on its own line
    totals = [line for line in shown if " done · " in line]
    assert totals == [f"{rows}/{rows} done · 0 active · 0 waiting · 0 failed · {totals[0].split()[-1]}"], shown
    assert sum(line.split()[:2] == ["ROW", "FILE"] for line in shown) == 1, shown  # one table: no stale copy
    table = shown.index(next(line for line in shown if line.startswith(" ROW")))
    assert all(shown.index(note) < table for note in notes)  # the notes above it
    assert len([line for line in shown[table:] if "SAVED" in line]) == rows
