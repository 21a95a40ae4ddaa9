"""Where a prompt comes from, as a user meets it: --prompt-file (and stdin), the `-p -` and `-p @FILE` traps,
empty prompts, and a manifest's prompt_file column. What was sent is read from the sandbox's recorded
requests; a refusal must leave the sandbox without a single create."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from wanvid.sandbox import Sandbox

from ..helpers import FAST_BATCH, creates, run, wv

NATIVE = "/aliyun/v1/videos/generations"


def sent_inputs(sb: Sandbox) -> list[dict]:
    """The ``input`` object of every native create the sandbox received."""
    return [r.json["input"] for r in sb.requests(NATIVE) if r.method == "POST"]


# -- --prompt-file ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "sent"),
    [
        (b"the cat walks\n", "the cat walks"),
        (b"first line\nsecond line\n\n", "first line\nsecond line\n"),  # one newline dropped, the rest kept
        (b"windows line\r\n", "windows line"),
        (b"\xef\xbb\xbfsaved by notepad\n", "saved by notepad"),
        ("caf\u00e9 \u732b \U0001f408".encode(), "caf\u00e9 \u732b \U0001f408"),
    ],
)
def test_prompt_file_sends_what_the_file_holds(gw, cat, tmp_path, content, sent):
    (tmp_path / "prompt.txt").write_bytes(content)
    r = wv("create", str(cat), "--prompt-file", "prompt.txt")
    assert r.exit_code == 0, r.stderr
    assert [i["prompt"] for i in sent_inputs(gw)] == [sent]


def test_negative_prompt_file_sends_the_negative_prompt(gw, cat, tmp_path):
    (tmp_path / "neg.txt").write_text("blur\nlow quality\n")
    r = wv("create", str(cat), "-p", "go", "--negative-prompt-file", str(tmp_path / "neg.txt"))
    assert r.exit_code == 0, r.stderr
    (sent,) = sent_inputs(gw)
    assert (sent["prompt"], sent["negative_prompt"]) == ("go", "blur\nlow quality")


@pytest.mark.parametrize(
    ("args", "flags"),
    [
        (["-p", "go", "--prompt-file", "p.txt"], ("--prompt", "--prompt-file")),
        (
            ["--negative-prompt", "x", "--negative-prompt-file", "p.txt"],
            ("--negative-prompt", "--negative-prompt-file"),
        ),
    ],
)
def test_text_and_file_exclude_each_other(gw, cat, tmp_path, args, flags):
    (tmp_path / "p.txt").write_text("go")
    r = wv("create", str(cat), *args)
    assert r.exit_code == 2
    assert r.stderr.startswith(f"error: {flags[0]} and {flags[1]} exclude each other")
    assert creates(gw) == 0


def test_a_file_that_is_not_utf8_is_refused_naming_the_flag_and_the_byte(gw, cat, tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9 au lait".encode("latin-1"))
    r = wv("create", str(cat), "--prompt-file", "latin1.txt")
    assert r.exit_code == 2
    line = r.stderr.splitlines()[0]
    assert line.startswith("error: --prompt-file: ") and "not UTF-8" in line and "0xe9" in line
    assert creates(gw) == 0


@pytest.mark.parametrize(("make", "said"), [(None, "does not exist"), ("dir", "is a directory")])
def test_a_missing_or_directory_path_is_refused_naming_it(gw, cat, tmp_path, make, said):
    if make == "dir":
        (tmp_path / "prompts").mkdir()
    r = wv("create", str(cat), "--prompt-file", "prompts")
    assert r.exit_code == 2
    assert r.stderr.startswith("error: --prompt-file: prompts ") and said in r.stderr
    assert creates(gw) == 0


def test_an_unreadable_file_is_refused(gw, cat, tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("go")
    path.chmod(0)
    try:
        if path.open("rb"):  # root reads anything: nothing to test then
            pytest.skip("this user can read a file of mode 000")
    except PermissionError:
        pass
    r = wv("create", str(cat), "--prompt-file", str(path))
    assert r.exit_code == 2 and "--prompt-file: cannot read" in r.stderr
    assert creates(gw) == 0


def test_a_file_longer_than_the_models_limit_fails_the_length_check_naming_the_flag(gw, cat, tmp_path):
    (tmp_path / "long.txt").write_text("x" * 1501 + "\n")
    r = wv("create", str(cat), "-m", "wan2.6-i2v", "--prompt-file", "long.txt")
    assert r.exit_code == 2
    assert r.stderr.startswith("error: --prompt-file: prompt is 1501 characters; wan2.6-i2v takes at most 1500")
    assert creates(gw) == 0


def test_prompt_file_dash_reads_stdin_in_process(gw, cat):
    r = wv("create", str(cat), "--prompt-file", "-", input="from a pipe\nsecond line\n")
    assert r.exit_code == 0, r.stderr
    assert [i["prompt"] for i in sent_inputs(gw)] == ["from a pipe\nsecond line"]


def test_prompt_file_dash_reads_stdin_of_a_real_process(sandbox, cat):
    proc = run("create", str(cat), "--prompt-file", "-", "-q", sb=sandbox, input="a real pipe\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() and [i["prompt"] for i in sent_inputs(sandbox)] == ["a real pipe"]


def test_both_prompts_cannot_read_stdin(gw, cat):
    r = wv("create", str(cat), "--prompt-file", "-", "--negative-prompt-file", "-", input="x\n")
    assert r.exit_code == 2 and "would both read stdin" in r.stderr
    assert creates(gw) == 0


# -- -p - and -p @FILE ---------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["-p", "--negative-prompt"])
def test_a_dash_prompt_is_refused_with_the_stdin_hint(gw, cat, flag):
    r = wv("create", str(cat), flag, "-", input="what the user meant\n")
    assert r.exit_code == 2
    assert "read stdin with --" in r.stderr and ("-file -") in r.stderr
    assert creates(gw) == 0


@pytest.mark.parametrize(
    ("flag", "file_flag"), [("-p", "--prompt-file"), ("--negative-prompt", "--negative-prompt-file")]
)
def test_an_at_file_prompt_is_refused_with_the_file_hint(gw, cat, tmp_path, flag, file_flag):
    (tmp_path / "prompt.txt").write_text("the cat walks\n")
    r = wv("create", str(cat), *(["-p", "go"] if flag != "-p" else []), flag, "@prompt.txt")
    assert r.exit_code == 2
    assert f"{file_flag} prompt.txt" in r.stderr
    assert creates(gw) == 0


def test_an_at_prompt_naming_no_file_is_sent_with_a_warning(gw, cat):
    r = wv("create", str(cat), "-p", "@channel look at this cat")
    assert r.exit_code == 0, r.stderr
    assert [i["prompt"] for i in sent_inputs(gw)] == ["@channel look at this cat"]
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "sent as text" in warnings[0]


# -- empty prompts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["-p", ""], ["-p", " \t "], ["--negative-prompt", ""], ["--prompt-file", "empty"]])
def test_an_empty_prompt_given_explicitly_is_refused(gw, cat, tmp_path, args):
    (tmp_path / "empty").write_text("\n")
    r = wv("create", str(cat), *args)
    assert r.exit_code == 2
    assert r.stderr.startswith("error: --") and ("is empty" in r.stderr or "is only whitespace" in r.stderr)
    assert "--allow-empty-prompt" in r.stderr
    assert creates(gw) == 0


def test_an_empty_prompt_file_is_named_by_its_flag(gw, cat, tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    r = wv("create", str(cat), "--prompt-file", "empty.txt")
    assert r.exit_code == 2 and r.stderr.startswith("error: --prompt-file: the prompt is empty")


def test_allow_empty_prompt_sends_it(gw, cat):
    r = wv("create", str(cat), "-p", "", "--allow-empty-prompt")
    assert r.exit_code == 0, r.stderr
    assert [i["prompt"] for i in sent_inputs(gw)] == [""]


def test_an_omitted_prompt_is_sent_without_one_and_noted_on_stderr(gw, cat):
    r = wv("create", str(cat))
    assert r.exit_code == 0, r.stderr
    (sent,) = sent_inputs(gw)
    assert "prompt" not in sent
    assert [line for line in r.stderr.splitlines() if "no prompt given" in line]
    r = wv("create", str(cat), "--seed", "7", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["id"]  # stdout is the document alone


def test_an_empty_prompt_is_refused_on_unified_even_when_allowed(gw, cat):
    # new-api (relay/common, ope.ai's Create Video page): 400 "prompt is required" for a unified create
    r = wv("create", str(cat), "--protocol", "unified", "-p", "", "--allow-empty-prompt")
    assert r.exit_code == 2 and "requires a prompt" in r.stderr
    assert gw.requests("/v1/videos") == []


# -- batch ---------------------------------------------------------------------------------------------


def manifest(folder: Path, header: str, *rows: str) -> Path:
    folder.mkdir(exist_ok=True)
    Image.new("RGB", (832, 480), "teal").save(folder / "shot.png")
    path = folder / "rows.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_manifest_prompt_file_is_read_relative_to_the_manifest(gw, tmp_path):
    folder = tmp_path / "job"
    rows = manifest(folder, "image,prompt_file,negative_prompt_file,output", "shot.png,p.txt,n.txt,a.mp4")
    (folder / "p.txt").write_text("row prompt\nkept line\n")
    (folder / "n.txt").write_text("blur\n")
    r = wv("batch", str(rows), "-d", str(tmp_path / "out"), *FAST_BATCH)
    assert r.exit_code == 0, r.stderr
    (sent,) = sent_inputs(gw)
    assert (sent["prompt"], sent["negative_prompt"]) == ("row prompt\nkept line", "blur")


def test_manifest_rows_with_a_bad_prompt_file_are_listed_and_nothing_is_sent(gw, tmp_path):
    folder = tmp_path / "job"
    rows = manifest(
        folder,
        "image,prompt,prompt_file,output",
        "shot.png,typed,p.txt,a.mp4",  # both: which one is meant?
        "shot.png,,missing.txt,b.mp4",
        "shot.png,,empty.txt,c.mp4",
        "shot.png,,p.txt,d.mp4",  # fine, but a batch sends nothing while any row is invalid
    )
    (folder / "p.txt").write_text("go\n")
    (folder / "empty.txt").write_text("")
    r = wv("batch", str(rows), "-d", str(tmp_path / "out"), *FAST_BATCH)
    assert r.exit_code == 2
    lines = r.stderr.splitlines()
    assert any(line.startswith("row 1: ") and "prompt and prompt_file" in line for line in lines)
    assert any(line.startswith("row 2: prompt_file: ") and "does not exist" in line for line in lines)
    assert any(line.startswith("row 3: prompt_file: ") and "empty" in line for line in lines)
    assert not any(line.startswith("row 4:") for line in lines)
    assert creates(gw) == 0


def test_manifest_prompt_cells_of_dash_or_at_file_are_refused_like_the_flags(gw, tmp_path):
    folder = tmp_path / "job"
    rows = manifest(
        folder,
        "image,prompt,negative_prompt,output",
        "shot.png,-,,a.mp4",
        "shot.png,@p.txt,,b.mp4",  # p.txt is beside the manifest
        "shot.png,go,@p.txt,c.mp4",
        "shot.png,@cat walks,,d.mp4",  # names no file: text
    )
    (folder / "p.txt").write_text("go\n")
    r = wv("batch", str(rows), "-d", str(tmp_path / "out"), "--dry-run")
    assert r.exit_code == 2
    lines = r.stderr.splitlines()
    assert "row 1: prompt: '-' would be sent as the text; give a file in the prompt_file column" in lines
    assert any(line.startswith("row 2: prompt: '@p.txt' would send the file's name") for line in lines)
    assert any(line.startswith("row 3: negative_prompt: '@p.txt'") and "negative_prompt_file" in line for line in lines)
    assert not any(line.startswith("row 4:") for line in lines)
    assert creates(gw) == 0


def test_batch_prompt_file_is_the_rows_default_prompt(gw, tmp_path):
    rows = manifest(tmp_path / "job", "image,prompt,output", "shot.png,,a.mp4", "shot.png,own,b.mp4")
    (tmp_path / "default.txt").write_text("the default\n")
    r = wv("batch", str(rows), "--prompt-file", "default.txt", "-d", str(tmp_path / "out"), *FAST_BATCH)
    assert r.exit_code == 0, r.stderr
    assert sorted(i["prompt"] for i in sent_inputs(gw)) == ["own", "the default"]
