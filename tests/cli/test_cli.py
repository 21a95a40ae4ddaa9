"""Every command in-process (CliRunner) against a real sandbox: stdout, stderr, exit codes, files, requests."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

from wanvid.sandbox import Sandbox

from ..helpers import FAST, TEST_KEY, wv

SAMPLE = (Path(__file__).parents[2] / "wanvid" / "assets" / "sample.mp4").read_bytes()


def created_bodies(sb: Sandbox, path: str = "/aliyun/v1/videos/generations") -> list:
    return [r.json for r in sb.requests(path) if r.method == "POST"]


# -- create -------------------------------------------------------------------------------------


def test_create_prints_only_the_id_and_sends_the_documented_body(gw, cat):
    r = wv("create", str(cat), "-p", "the cat walks", "--duration", "5", "--resolution", "720p", "--seed", "1")
    assert r.exit_code == 0
    (body,) = created_bodies(gw)
    task_id = r.stdout.strip()
    assert r.stdout == task_id + "\n" and task_id
    assert body["model"] == "wan2.7-i2v" and body["input"]["prompt"] == "the cat walks"
    assert body["input"]["media"][0]["type"] == "first_frame"
    assert body["input"]["media"][0]["url"].startswith("data:image/png;base64,")
    assert body["parameters"] == {"duration": 5, "resolution": "720P", "seed": 1}
    assert f"wanvid wait {task_id}" in r.stderr


@pytest.mark.parametrize(
    ("args", "path", "check"),
    [
        (
            ["-m", "wan2.6-i2v", "--shot-type", "multi", "--audio", "https://e.com/a.mp3"],
            "/aliyun/v1/videos/generations",
            lambda b: (
                set(b["input"]) == {"prompt", "img_url", "audio_url"} and b["parameters"] == {"shot_type": "multi"}
            ),
        ),
        (
            ["-m", "wan2.7-i2v", "--last-frame", "https://e.com/z.png", "--audio", "https://e.com/a.wav"],
            "/aliyun/v1/videos/generations",
            lambda b: [m["type"] for m in b["input"]["media"]] == ["first_frame", "last_frame", "driving_audio"],
        ),
        (
            ["--protocol", "unified", "-m", "wan2.7-i2v", "--size", "1280x720", "--duration", "5"],
            "/v1/videos",
            lambda b: (
                set(b) == {"model", "prompt", "size", "seconds", "input_reference"}
                and (b["model"], b["prompt"], b["size"], b["seconds"]) == ("wan2.7-i2v", "go", "1280x720", "5")
                and b["input_reference"]["content"][0]["role"] == "first_frame"
                and b["input_reference"]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
            ),
        ),
        (
            ["--protocol", "unified", "-m", "wan2.6-i2v", "--generate-audio"],
            "/v1/videos",
            lambda b: b["generate_audio"] is True and b["model"] == "wan2.6-i2v",
        ),
    ],
)
def test_each_model_and_protocol_sends_its_shape(gw, cat, args, path, check):
    r = wv("create", str(cat), "-p", "go", *args)
    assert r.exit_code == 0, r.stderr
    (body,) = created_bodies(gw, path)
    assert check(body)


def test_first_clip_continuation_needs_no_image(gw, isolated):
    # A local clip goes by URL through a bucket (tests/gateway/test_upload.py); a URL is sent as given.
    r = wv("create", "--first-clip", "https://e.com/clip.mp4", "-p", "continue")
    assert r.exit_code == 0, r.stderr
    (body,) = created_bodies(gw)
    assert body["input"]["media"] == [{"type": "first_clip", "url": "https://e.com/clip.mp4"}]


def test_dry_run_sends_nothing_shortens_data_and_hides_the_key(gw, cat):
    r = wv("create", str(cat), "-p", "x", "--dry-run")
    assert r.exit_code == 0
    assert gw.requests() == []
    assert r.stdout.startswith(f"POST {gw.url}/aliyun/v1/videos/generations\n")
    assert "Authorization: Bearer ****" in r.stdout and "chars]" in r.stdout
    doc = json.loads(wv("create", str(cat), "--dry-run", "--json").stdout)
    assert doc["method"] == "POST" and doc["body"]["input"]["media"][0]["url"].startswith("data:image/png")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--duration", "16"], "--duration: duration 16 s is not allowed for wan2.7-i2v"),
        (["-m", "wan2.6-i2v", "--duration", "7"], "use 5, 10 or 15"),
        (["--seed", "-5"], "--seed"),
        (["--shot-type", "multi"], "--shot-type: shot type is only for wan2.6-i2v"),
        (["--protocol", "unified", "--last-frame", "x.png"], "--last-frame: the unified protocol cannot carry"),
        (["--size", "1280x720"], "--size: the native protocol cannot carry this; use --protocol unified"),
        (["-p", "x" * 5001], "--prompt: prompt is 5001 characters"),
        (["--audio", "missing.wav"], "missing.wav"),
        (["--first-clip", "https://e.com/c.mp4"], "media combination"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_sent(gw, cat, args, needle):
    r = wv("create", str(cat), *args)
    assert r.exit_code == 2
    assert needle in r.stderr and r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    assert r.stdout == "" and gw.requests() == []


def test_image_checked_by_content(gw, isolated):
    fake = isolated / "photo.png"
    fake.write_text("<html>not an image</html>")
    r = wv("create", str(fake))
    assert r.exit_code == 2 and "IMAGE:" in r.stderr and gw.requests() == []
    tiny = isolated / "tiny.png"
    Image.new("RGB", (100, 100)).save(tiny)
    r = wv("create", str(tiny))
    assert r.exit_code == 2 and "100x100" in r.stderr


def test_unknown_model_warns_and_the_server_judges(gw, cat):
    r = wv("create", str(cat), "-m", "wan3.0-i2v")
    assert "warning: model 'wan3.0-i2v' is not one wanvid knows" in r.stderr
    assert len(created_bodies(gw)) == 1  # sent, not blocked locally
    assert r.exit_code == 2 and "ModelNotFound" in r.stderr


def test_missing_key_names_all_three_ways_and_sends_nothing(sandbox, cat, monkeypatch):
    monkeypatch.setenv("WANVID_BASE_URL", sandbox.url)
    r = wv("create", str(cat))
    assert r.exit_code == 4
    for way in ("--api-key", "WANVID_API_KEY", "wanvid config set-key"):
        assert way in r.stderr
    assert sandbox.requests() == []


def test_rejected_key_exits_4(cat):
    with Sandbox(api_key="only-this-key") as sb:
        r = wv("create", str(cat), "--base-url", sb.url, "--api-key", TEST_KEY)
    assert r.exit_code == 4 and "InvalidApiKey" in r.stderr


# -- status / wait / download -------------------------------------------------------------------


def _created(gw: Sandbox, cat: Path, *extra: str) -> str:
    return wv("create", str(cat), *extra).stdout.strip()


def test_status_in_each_output_mode(slow_gw, cat):
    task_id = _created(slow_gw, cat)
    human = wv("status", task_id)
    assert human.exit_code == 0 and f"task       {task_id}" in human.stdout and "PENDING" in human.stdout
    assert wv("status", task_id, "-q").stdout == "PENDING\n"
    doc = json.loads(wv("status", task_id, "--json").stdout)
    assert doc["id"] == task_id and doc["protocol"] == "native" and doc["raw"]["output"]["task_id"] == task_id


def test_status_of_unknown_task_exits_5_on_both_protocols(gw):
    assert wv("status", "nope").exit_code == 5
    r = wv("status", "nope", "--protocol", "unified")  # the default (docs) flavor: ope.ai's 404 ResourceNotFound
    assert r.exit_code == 5 and "ResourceNotFound" in r.stderr


def test_wait_prints_url_and_plain_progress_lines(gw, cat):
    task_id = _created(gw, cat)
    r = wv("wait", task_id, *FAST)
    assert r.exit_code == 0
    assert r.stdout.startswith("http://localhost:") and r.stdout.count("\n") == 1
    lines = [line for line in r.stderr.splitlines() if line.startswith("task=")]
    assert r.stderr.splitlines()[0].startswith("no finished task like this one in the journal yet; expecting")
    states = [line.split()[1].removeprefix("status=") for line in lines]
    assert all(line.startswith(f"task={task_id} status=") for line in lines)
    assert states[-1] == "SUCCEEDED" and set(states) <= {"PENDING", "RUNNING", "SUCCEEDED"}
    assert len(states) == len(set(states))  # one line per status change, not per poll
    assert "\x1b[" not in r.stderr  # no ANSI without a terminal


def test_unified_wait_shows_progress(gw, cat):
    task_id = _created(gw, cat, "--protocol", "unified", "-p", "a cat")
    r = wv("wait", task_id, "--protocol", "unified", *FAST)
    assert r.exit_code == 0 and "RUNNING" in r.stderr


def test_failed_task_exits_3_with_code_and_message(gw, cat):
    gw.faults.fail_code, gw.faults.fail_message = "DataInspectionFailed", "input image flagged"
    task_id = _created(gw, cat)
    r = wv("wait", task_id, *FAST)
    assert r.exit_code == 3 and "DataInspectionFailed: input image flagged" in r.stderr and r.stdout == ""
    doc = json.loads(wv("wait", task_id, "--json", *FAST).stdout)
    assert doc["error"]["exit_code"] == 3 and doc["error"]["task_id"] == task_id
    assert doc["task"]["status"] == "FAILED" and doc["task"]["error"]["code"] == "DataInspectionFailed"


def test_wait_timeout_exits_124_with_resume_command(slow_gw, cat):
    task_id = _created(slow_gw, cat, "--protocol", "unified", "-p", "a cat")
    r = wv("wait", task_id, "--timeout", "0.1", "--protocol", "unified", *FAST)
    assert r.exit_code == 124
    assert f"resume with: wanvid wait {task_id} --protocol unified" in r.stderr


def test_download_writes_the_video_and_never_overwrites(gw, cat, isolated):
    task_id = _created(gw, cat)
    assert wv("download", task_id).exit_code == 2  # not finished yet
    wv("wait", task_id, *FAST)
    r = wv("download", task_id)
    assert r.exit_code == 0 and r.stdout == f"{isolated / (task_id + '.mp4')}\n"
    assert Path(r.stdout.strip()).read_bytes() == SAMPLE
    (isolated / (task_id + ".mp4")).write_bytes(b"not the video")
    again = wv("download", task_id)  # a file wanvid did not save there (tests/cli/test_repeatable.py: one it did)
    assert again.exit_code == 2 and "--force" in again.stderr
    out = isolated / "sub"
    out.mkdir()
    assert wv("download", task_id, "-o", str(out), "-q").stdout == f"{out / (task_id + '.mp4')}\n"
    assert wv("download", task_id, "--force").exit_code == 0


def test_a_dropped_download_resumes_with_range_in_process(gw, cat, isolated):
    task_id = _created(gw, cat)
    wv("wait", task_id, *FAST)
    gw.faults.cut_download_after, gw.faults.cut_downloads = 75_000, 1
    r = wv("download", task_id, "-o", "v.mp4")
    assert r.exit_code == 0 and "resuming" in r.stderr
    assert (isolated / "v.mp4").read_bytes() == SAMPLE
    ranges = [q.headers.get("range") for q in gw.requests("/aliyun/v1/videos/") if q.method == "GET"]
    assert ranges == [None, "bytes=75000-"]  # every byte that arrived was kept, only the rest fetched


def test_download_that_keeps_dropping_exits_6_and_keeps_the_part(gw, cat, isolated, monkeypatch):
    task_id = _created(gw, cat)
    wv("wait", task_id, *FAST)
    monkeypatch.setenv("WANVID_MAX_RETRIES", "1")
    gw.faults.cut_download_after, gw.faults.cut_downloads = 1000, 10
    r = wv("download", task_id, "-o", "v.mp4")
    assert r.exit_code == 6 and "dropped" in r.stderr
    assert f"resume with: wanvid download {task_id} -o {isolated / 'v.mp4'}" in r.stderr
    # two drops on the content route, then two on the signed URL it switched to: every byte that came is kept
    assert "fetching the signed video URL instead" in r.stderr
    assert not (isolated / "v.mp4").exists() and (isolated / "v.mp4.part").read_bytes() == SAMPLE[:4000]


def test_a_task_the_gateway_keeps_calling_unknown_exits_5(gw, cat, monkeypatch):
    """UNKNOWN for a young journaled task is polled through for a bounded time (poller.UNKNOWN_GRACE), then exit 5;
    for an id the journal does not know it is exit 5 at once."""
    gw.faults.unknown_queries = 10_000  # every status query of the task answers UNKNOWN, with no reason
    task_id = _created(gw, cat)
    r = wv("download", task_id)
    assert r.exit_code == 2 and "UNKNOWN" in r.stderr and f"wanvid wait {task_id}" in r.stderr
    monkeypatch.setattr("wanvid.jobs.poller.UNKNOWN_GRACE", 0.3)
    r = wv("wait", task_id, *FAST)
    assert r.exit_code == 5 and f"kept answering UNKNOWN for task {task_id}" in r.stderr
    assert "most likely its upstream check failing for now" in r.stderr  # the visible note while polling
    assert "run the same command with --new" in r.stderr
    # the journal now knows it is gone: the same create pays for a new task instead of reusing the lost one
    assert wv("create", str(cat), "-q").stdout.strip() != task_id
    r = wv("wait", "someone-elses-task", *FAST)
    assert r.exit_code == 5 and "unknown to the gateway" in r.stderr


def test_unknown_with_a_not_found_code_is_gone_at_once(gw, cat):
    task_id = _created(gw, cat)
    gw.faults.expire = True  # native UNKNOWN with code ResourceNotFound: the gateway names its reason
    r = wv("wait", task_id, *FAST)
    assert r.exit_code == 5 and "ResourceNotFound" not in r.stdout and "Polling on" not in r.stderr
    assert wv("status", task_id).exit_code == 5


def test_throttle_and_server_errors_are_survived_or_exit_6(gw, cat, monkeypatch):
    task_id = _created(gw, cat)
    gw.faults.throttle, gw.faults.retry_after = 2, 0.05
    r = wv("status", task_id)
    assert r.exit_code == 0 and r.stderr.count("retrying GET") == 2
    monkeypatch.setenv("WANVID_MAX_RETRIES", "1")
    gw.faults.server_errors = 5
    r = wv("status", task_id)
    assert r.exit_code == 6 and "500" in r.stderr


# -- run ----------------------------------------------------------------------------------------


def test_run_end_to_end(gw, cat, isolated):
    r = wv("run", str(cat), "-p", "the cat walks toward the camera", *FAST)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == f"{isolated / 'cat.mp4'}\n"
    assert (isolated / "cat.mp4").read_bytes() == SAMPLE
    assert "created task" in r.stderr and "saved" in r.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((isolated / "cat.mp4").stat().st_mode) == 0o666 & ~umask


def test_run_json_is_one_document_and_refuses_to_overwrite_before_paying(gw, cat, isolated):
    doc = json.loads(wv("run", str(cat), "--json", *FAST).stdout)
    assert doc["path"] == str(isolated / "cat.mp4") and doc["task"]["status"] == "SUCCEEDED"
    assert doc["bytes"] == len(SAMPLE)
    before = len(gw.requests())
    r = wv("run", str(cat), *FAST, "-p", "another prompt")
    assert r.exit_code == 2 and "already exists" in r.stderr
    assert len(gw.requests()) == before  # nothing paid for


def test_run_with_failure_exits_3(gw, cat, isolated):
    gw.faults.fail_code, gw.faults.fail_message = "InternalError.Algo", "generation failed"
    r = wv("run", str(cat), *FAST)
    assert r.exit_code == 3 and "InternalError.Algo" in r.stderr
    assert not (isolated / "cat.mp4").exists()


def test_json_and_quiet_together_is_usage_error(gw, cat):
    assert wv("create", str(cat), "--json", "-q").exit_code == 2


# -- settings -----------------------------------------------------------------------------------


def _auth_seen(sb: Sandbox) -> str:
    return sb.requests()[-1].headers["authorization"]


def test_key_precedence_flag_env_file(sandbox, cat, monkeypatch):
    monkeypatch.setenv("WANVID_BASE_URL", sandbox.url)
    assert wv("config", "set-key", "--stdin", input="from-file-key-123456\n").exit_code == 0
    wv("create", str(cat), "--new")
    assert _auth_seen(sandbox) == "Bearer from-file-key-123456"
    monkeypatch.setenv("OPEAI_API_KEY", "from-opeai-env")
    wv("create", str(cat), "--new")
    assert _auth_seen(sandbox) == "Bearer from-opeai-env"
    monkeypatch.setenv("WANVID_API_KEY", "from-wanvid-env")
    wv("create", str(cat), "--new")
    assert _auth_seen(sandbox) == "Bearer from-wanvid-env"
    wv("create", str(cat), "--new", "--api-key", "from-flag")
    assert _auth_seen(sandbox) == "Bearer from-flag"


def test_config_file_is_private_and_show_masks_and_attributes(isolated, monkeypatch):
    r = wv("config", "set-key", "--stdin", "--profile", "work", input=TEST_KEY + "\n")
    path = Path(r.stdout.strip())
    assert path == isolated / "config" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    wv("config", "set", "base_url", "http://127.0.0.1:9", "--profile", "work")
    monkeypatch.setenv("WANVID_PROFILE", "work")
    monkeypatch.setenv("WANVID_PROTOCOL", "unified")
    doc = json.loads(wv("config", "show", "--json").stdout)
    assert doc["api_key"] == {"value": "****rint", "source": "file"}
    assert doc["base_url"]["source"] == "file" and doc["protocol"]["source"] == "env WANVID_PROTOCOL"
    assert doc["profile"] == {"value": "work", "source": "env WANVID_PROFILE"}
    human = wv("config", "show", "--base-url", "https://x.example").stdout
    assert "https://x.example" in human and "(flag)" in human
    assert wv("config", "path").stdout.strip() == str(path)


def test_config_refuses_key_on_command_line_and_bad_values(isolated):
    assert wv("config", "set", "api_key", "secret").exit_code == 2
    assert wv("config", "set", "protocol", "grpc").exit_code == 2
    assert wv("config", "set-key").exit_code == 2  # no terminal and no --stdin
    bad = isolated / "config" / "config.toml"
    bad.parent.mkdir()
    bad.write_text("this is [not toml")
    r = wv("config", "show")
    assert r.exit_code == 2 and "not valid TOML" in r.stderr


def test_version_and_help():
    assert wv("--version").stdout.startswith("wanvid ")
    r = wv("run", "--help")
    for flag in ("--prompt", "--timeout", "--force", "--api-key", "--json", "--protocol"):
        assert flag in r.stdout


# -- what the review found --------------------------------------------------------------------


def test_a_malformed_key_is_refused_without_being_shown(gw, cat, monkeypatch):
    monkeypatch.setenv("WANVID_API_KEY", TEST_KEY + "\r\n")  # a CRLF .env file: trailing noise is dropped
    assert wv("create", str(cat)).exit_code == 0
    assert gw.requests()[-1].headers["authorization"] == f"Bearer {TEST_KEY}"
    monkeypatch.setenv("WANVID_API_KEY", TEST_KEY[:10] + "\x07" + TEST_KEY[10:])
    r = wv("create", str(cat))
    assert r.exit_code == 4 and "env WANVID_API_KEY" in r.stderr and TEST_KEY[:10] not in r.stderr


def test_bad_wait_options_cost_nothing(gw, cat):
    for args in (["--poll-interval", "0"], ["--timeout", "-1"]):
        r = wv("run", str(cat), *args)
        assert r.exit_code == 2 and gw.requests() == []


def test_run_names_the_paid_task_when_a_later_step_fails(gw, cat, isolated, monkeypatch):
    monkeypatch.setenv("WANVID_MAX_RETRIES", "0")
    gw.faults.cut_download_after, gw.faults.cut_downloads = 1000, 10
    r = wv("run", str(cat), "-q", *FAST)
    assert len(created_bodies(gw)) == 1
    task_id = gw.requests("/aliyun/v1/tasks/")[0].path.split("/")[-1]
    assert r.exit_code == 6 and r.stdout == ""
    assert f"task {task_id} is safe; resume with: wanvid download {task_id} -o {isolated / 'cat.mp4'}" in r.stderr
    doc = json.loads(wv("run", str(cat), "--json", "-o", "b.mp4", *FAST).stdout)
    assert doc["error"]["exit_code"] == 6 and doc["error"]["task_id"]


def test_timeout_in_run_offers_wait_then_download(slow_gw, cat, isolated):
    r = wv("run", str(cat), "--timeout", "0", *FAST)
    assert r.exit_code == 124
    assert "resume with: wanvid wait " in r.stderr and "&& wanvid download " in r.stderr
    assert f"-o {isolated / 'cat.mp4'}" in r.stderr


def test_resume_hint_names_the_protocol_when_config_could_change_it(gw, cat):
    wv("config", "set", "protocol", "unified")
    r = wv("create", str(cat), "--protocol", "native")
    assert f"wanvid wait {r.stdout.strip()} --protocol native" in r.stderr


def test_data_uri_images_get_the_same_checks(gw, isolated):
    import base64

    small = isolated / "small.png"
    Image.new("RGB", (100, 100)).save(small)
    uri = "data:image/png;base64," + base64.b64encode(small.read_bytes()).decode()
    r = wv("create", uri)
    assert r.exit_code == 2 and "(data: URI) is 100x100 px" in r.stderr and gw.requests() == []
    assert wv("create", "data:image/png;base64,@@@").exit_code == 2
    assert "ftp: URLs are not supported" in wv("create", "ftp://e.com/a.png").stderr
    good = isolated / "good.png"
    Image.new("RGB", (640, 480)).save(good)
    uri = "data:image/png;base64," + base64.b64encode(good.read_bytes()).decode()
    assert wv("create", uri).exit_code == 0
    assert created_bodies(gw)[0]["input"]["media"][0]["url"] == uri  # sent exactly as given


def test_output_dir_with_slash_must_exist(gw, cat, isolated):
    r = wv("run", str(cat), "-o", "newdir/", *FAST)
    assert r.exit_code == 2 and "does not exist" in r.stderr and gw.requests() == []


def test_task_ids_cannot_steer_the_url(gw):
    r = wv("status", "../../etc")
    assert r.exit_code == 2 and "../../etc" in r.stderr and gw.requests() == []  # refused, never sent anywhere


def test_json_errors_are_one_document(sandbox, cat, monkeypatch):
    monkeypatch.setenv("WANVID_BASE_URL", sandbox.url)
    r = wv("create", str(cat), "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 4 and doc["error"]["exit_code"] == 4 and "set-key" in doc["error"]["hint"]
    r = wv("create", str(cat), "--json", "--duration", "99")
    assert json.loads(r.stdout)["error"]["exit_code"] == 2


def test_a_huge_poll_hint_is_bounded():
    from wanvid.jobs.poller import MAX_HINT, wait_for
    from wanvid.rules.task import Status, Task

    sleeps: list[float] = []
    now = [0.0]

    def fetch() -> Task:
        task = Task("t", "native", Status.RUNNING if now[0] < 100 else Status.SUCCEEDED, "x")
        task.retry_after = 3600
        return task

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    wait_for(fetch, timeout=None, clock=lambda: now[0], sleep=sleep)
    assert sleeps == [MAX_HINT, MAX_HINT]


def test_parser_errors_are_one_line_with_the_help_to_read(gw, cat):
    for args, words in [
        (("run", "--bogus"), "No such option: --bogus"),
        (("create", str(cat), "--resolution", "999p"), "Invalid value for '--resolution'"),
        (("batch",), "Missing argument 'MANIFEST'"),
        (("list", "-n", "many"), "Invalid value for '--limit' / '-n': 'many' is not a valid int"),
    ]:
        r = wv(*args)
        assert r.exit_code == 2 and r.stdout == ""
        assert r.stderr.startswith(f"error: {words}") and r.stderr.count("\n") == 1
        assert r.stderr.rstrip().endswith(f"see: wanvid {args[0]} --help")
    r = wv()
    assert r.exit_code == 2 and r.stderr.startswith("Usage: wanvid") and "Commands" in r.stderr
    assert gw.requests() == []


# -- commands that need only part of the settings ------------------------------------------------


def test_config_set_repairs_a_config_whose_other_settings_are_broken(isolated):
    """config set/unset/set-key name only the profile: a broken base_url or key in the file is what they fix."""
    path = isolated / "config" / "config.toml"
    path.parent.mkdir()
    path.write_text('[profiles.default]\nbase_url = "ftp://broken"\napi_key = "sk bad key"\n')
    assert wv("config", "set", "base_url", "https://ok.example").exit_code == 0
    assert wv("config", "set-key", "--stdin", input="sk-good\n").exit_code == 0
    assert "ftp://broken" not in path.read_text() and "sk-good" in path.read_text()
    assert wv("config", "unset", "base_url").exit_code == 0


def test_list_reads_only_the_profile_and_the_gateway(gw, cat, monkeypatch):
    task_id = wv("create", str(cat), "-q").stdout.strip()
    monkeypatch.setenv("WANVID_PROTOCOL", "v2")  # a setting list has no use for, and no option to override
    monkeypatch.delenv("WANVID_API_KEY")
    r = wv("list", "-q")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split() == [task_id]


def test_run_reads_the_upload_settings_only_when_it_has_something_to_send(gw, cat, tmp_path, monkeypatch):
    assert wv("run", str(cat), "-p", "saved once", "-o", "u.mp4", *FAST).exit_code == 0
    monkeypatch.setenv("WANVID_BUCKET", "not a bucket")  # malformed, and not needed: the video is saved already
    r = wv("run", str(cat), "-p", "saved once", "-o", "u.mp4", *FAST)
    assert r.exit_code == 0 and "already saved" in r.stderr


def test_option_values_are_checked_before_the_settings(gw, tmp_path, monkeypatch):
    (tmp_path / "m.csv").write_text("image\ncat.png\n")
    monkeypatch.setenv("WANVID_PROTOCOL", "v2")
    r = wv("batch", "m.csv", "--concurrency", "0")
    assert r.exit_code == 2 and "--concurrency must be from 1 to 32" in r.stderr
    r = wv("wait", "--all", "--timeout", "-1")
    assert r.exit_code == 2 and "--timeout" in r.stderr
