"""Local audio, video (and, on request, images) sent by URL: uploaded over real HTTP to a local S3-compatible
server (moto's standalone server) and sent to the sandbox as presigned GET URLs, which the tests fetch."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from wanvid.gateway import upload
from wanvid.sandbox import Sandbox
from wanvid.store.journal import Journal

from ..helpers import FAST, TEST_KEY, wv

DATA = Path(__file__).parents[1] / "data"
TONE = DATA / "tone-3s.mp3"
CLIP = DATA / "clip-3s.mov"
SECRET = "dummy-secret-access-key-never-print-0123"
ACCESS = "AKIDWANVIDTESTING000"
BUCKET = "media"
CREATE = "/aliyun/v1/videos/generations"


class S3:
    def __init__(self, endpoint: str, client: Any) -> None:
        self.endpoint, self.client = endpoint, client

    def keys(self) -> list[str]:
        return [o["Key"] for o in self.client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[S3]:
    """moto's S3 server on a free loopback port, a bucket in it, dummy credentials, and wanvid pointed at it."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    requests.post(f"{endpoint}/moto-api/reset", timeout=10)  # moto's state is per process, not per server
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("WANVID_BUCKET", f"s3://{BUCKET}/wanvid/")
    monkeypatch.setenv("WANVID_BUCKET_ENDPOINT", endpoint)
    try:
        yield S3(endpoint, client)
    finally:
        upload._clients.clear()  # a client per endpoint is cached per process; the next server has another port
        server.stop()


def bodies(sb: Sandbox) -> list[dict[str, Any]]:
    return [r.json for r in sb.requests(CREATE) if r.method == "POST"]


def media_url(body: dict[str, Any], kind: str) -> str:
    (url,) = [m["url"] for m in body["input"]["media"] if m["type"] == kind]
    return str(url)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def valid(schema: str, doc: dict[str, Any]) -> None:
    from jsonschema import Draft202012Validator

    path = Path(__file__).parents[2] / "docs" / "schema" / schema
    Draft202012Validator(json.loads(path.read_text())).validate(doc)


def no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text


# -- the URL reaches the body and serves the file ------------------------------------------------


def test_local_audio_reaches_the_body_as_a_presigned_url_that_serves_the_same_bytes(s3, gw, cat):
    r = wv("run", str(cat), "--audio", str(TONE), "-p", "the cat sings", "-o", "out.mp4", *FAST)
    assert r.exit_code == 0, r.stderr
    no_secret(r.stdout, r.stderr)
    (body,) = bodies(gw)
    assert media_url(body, "first_frame").startswith("data:image/png;base64,")  # images stay inline
    url = media_url(body, "driving_audio")
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.path.endswith(f"/wanvid/{sha256(TONE)}.mp3")
    query = parse_qs(parts.query)
    # the URL outlives the task: the gateway keeps a task 24 h (API.md), and SigV4 allows at most 7 days
    assert "X-Amz-Signature" in query and 24 * 3600 < int(query["X-Amz-Expires"][0]) <= 7 * 24 * 3600
    assert ACCESS in query["X-Amz-Credential"][0] and SECRET not in url
    got = requests.get(url, timeout=10)  # as the gateway fetches it: no credentials, no key
    assert got.status_code == 200 and got.content == TONE.read_bytes()
    assert s3.keys() == [f"wanvid/{sha256(TONE)}.mp3"]
    assert "uploaded tone-3s.mp3" in r.stderr

    # The sidecar and the journal say which URL was sent for which file (without the signature).
    side_text = Path("out.mp4.json").read_text()
    no_secret(side_text)
    assert "X-Amz-Signature" not in side_text
    recorded = json.loads(side_text)["inputs"]["audio"]
    assert recorded["path"] == str(TONE.resolve()) and recorded["sha256"] == sha256(TONE)
    assert recorded["object"] == f"s3://{BUCKET}/wanvid/{sha256(TONE)}.mp3"
    assert recorded["url"] == url.split("?")[0] and recorded["url_expires"].endswith("Z")
    task_id = json.loads(wv("list", "--json").stdout)
    entry = Journal().get(gw.url, _only_task(task_id))
    assert entry is not None
    journaled = entry.request_data()["audio"]
    assert journaled["url"] == url.split("?")[0] and journaled["object"] == recorded["object"]
    assert "X-Amz-Signature" not in entry.request


def _only_task(listing: Any) -> str:
    rows = listing["tasks"] if isinstance(listing, dict) else listing
    (row,) = rows
    return str(row["id"])


def test_local_first_clip_goes_by_url(s3, gw):
    r = wv("create", "--first-clip", str(CLIP), "-p", "continue")
    assert r.exit_code == 0, r.stderr
    (body,) = bodies(gw)
    url = media_url(body, "first_clip")
    assert urlsplit(url).path.endswith(f"/wanvid/{sha256(CLIP)}.mov")
    assert requests.get(url, timeout=10).content == CLIP.read_bytes()


def test_images_go_by_url_on_request(s3, gw, cat):
    r = wv("create", str(cat), "-p", "walk", "--upload-images")
    assert r.exit_code == 0, r.stderr
    url = media_url(bodies(gw)[0], "first_frame")
    assert url.startswith("http://") and requests.get(url, timeout=10).content == cat.read_bytes()
    assert s3.keys() == [f"wanvid/{sha256(cat)}.png"]


def test_unified_image_and_wan26_audio_go_by_url_when_asked_or_a_bucket_is_set(s3, gw, cat):
    r = wv("create", str(cat), "-p", "walk", "--protocol", "unified", "--upload-images")
    assert r.exit_code == 0, r.stderr
    (body,) = [q.json for q in gw.requests("/v1/videos") if q.method == "POST"]
    url = body["input_reference"]["content"][0]["image_url"]["url"]
    assert requests.get(url, timeout=10).content == cat.read_bytes()
    r = wv("create", str(cat), "-m", "wan2.6-i2v", "--audio", str(TONE), "-p", "sing")
    assert r.exit_code == 0, r.stderr
    (body,) = bodies(gw)
    assert body["input"]["img_url"].startswith("data:image/png")  # images inline unless asked
    assert requests.get(body["input"]["audio_url"], timeout=10).content == TONE.read_bytes()


# -- never pay twice, never upload twice ---------------------------------------------------------


def test_a_rerun_reuses_the_task_and_an_upload_is_never_repeated(s3, gw, cat):
    args = ["create", str(cat), "--audio", str(TONE), "-p", "sing"]
    first = wv(*args)
    assert first.exit_code == 0, first.stderr
    key = f"wanvid/{sha256(TONE)}.mp3"
    # Mark the uploaded object: an upload of it again would replace it, and the mark with it.
    s3.client.copy_object(
        Bucket=BUCKET, Key=key, CopySource={"Bucket": BUCKET, "Key": key}, Metadata={"mark": "1"},
        MetadataDirective="REPLACE", ContentType="audio/mpeg",
    )  # fmt: skip
    upload._clients.clear()  # as a new process would start

    again = wv(*args)  # the same command: the journal's fingerprint is of the file's hash, not of the URL
    assert again.exit_code == 0, again.stderr
    assert again.stdout == first.stdout and "reusing task" in again.stderr
    assert len(bodies(gw)) == 1  # paid once
    assert "upload" not in again.stderr  # a reused task needs no URL: nothing looked up, nothing uploaded

    fresh = wv(*args, "--new")  # a new task for the same file: found in the bucket, not uploaded again
    assert fresh.exit_code == 0, fresh.stderr
    assert "already at" in fresh.stderr and "uploaded" not in fresh.stderr
    assert len(bodies(gw)) == 2
    assert s3.client.head_object(Bucket=BUCKET, Key=key)["Metadata"] == {"mark": "1"}
    assert requests.get(media_url(bodies(gw)[1], "driving_audio"), timeout=10).content == TONE.read_bytes()
    assert s3.keys() == [key]


# -- refused before anything is sent -------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["IMAGE", "--audio", str(TONE)], id="audio"),
        pytest.param(["--first-clip", str(CLIP)], id="first-clip"),
    ],
)
def test_without_a_bucket_local_audio_or_video_for_wan27_is_exit_2_and_nothing_sent(gw, cat, args):
    r = wv("create", *[str(cat) if a == "IMAGE" else a for a in args], "-p", "x")
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    flag = "--audio" if "--audio" in args else "--first-clip"
    assert f"{flag}: " in r.stderr and "URL" in r.stderr and "--bucket s3://" in r.stderr
    assert r.stdout == "" and gw.requests() == []


def test_without_a_bucket_wan26_audio_stays_inline(gw, cat):
    r = wv("create", str(cat), "-m", "wan2.6-i2v", "--audio", str(TONE), "-p", "x")
    assert r.exit_code == 0, r.stderr
    assert bodies(gw)[0]["input"]["audio_url"].startswith("data:audio/mpeg;base64,")


def test_upload_images_without_a_bucket_is_exit_2(gw, cat, monkeypatch):
    monkeypatch.setenv("WANVID_UPLOAD_IMAGES", "1")
    r = wv("create", str(cat), "-p", "x")
    assert r.exit_code == 2 and "IMAGE: " in r.stderr and "bucket" in r.stderr
    assert gw.requests() == []


def test_without_boto3_a_configured_bucket_is_a_clear_exit_2(gw, cat, monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)  # `import boto3` now fails as if it were not installed
    monkeypatch.setenv("WANVID_BUCKET", "s3://media/x")
    r = wv("create", str(cat), "--audio", str(TONE), "-p", "x")
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "pip install 'wanvid[s3]'" in r.stderr
    assert gw.requests() == []


def test_a_bucket_that_does_not_exist_is_exit_2_and_nothing_sent(s3, gw, cat):
    r = wv("create", str(cat), "--audio", str(TONE), "-p", "x", "--bucket", "s3://no-such-bucket/p")
    assert r.exit_code == 2, r.stderr
    assert "NoSuchBucket" in r.stderr and r.stderr.count("\n") == 1
    no_secret(r.stdout, r.stderr)
    assert gw.requests() == []


def test_an_unreachable_endpoint_is_exit_6_and_nothing_sent(s3, gw, cat):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    r = wv("create", str(cat), "--audio", str(TONE), "-p", "x", "--bucket-endpoint", f"http://127.0.0.1:{port}")
    assert r.exit_code == 6, r.stderr
    assert "nothing was sent" in r.stderr and r.stderr.count("\n") == 1
    assert gw.requests() == []


def test_dry_run_shows_what_would_be_uploaded_and_uploads_nothing(s3, gw, cat):
    r = wv("create", str(cat), "--audio", str(TONE), "-p", "x", "--dry-run")
    assert r.exit_code == 0, r.stderr
    assert "would upload (nothing is uploaded on --dry-run)" in r.stdout
    assert f"s3://{BUCKET}/wanvid/{sha256(TONE)}.mp3" in r.stdout
    doc = json.loads(wv("create", str(cat), "--audio", str(TONE), "--dry-run", "--json").stdout)
    valid("dry-run.json", doc)
    (planned,) = doc["uploads"]
    assert planned["input"] == "audio" and planned["bytes"] == TONE.stat().st_size
    assert media_url(doc["body"], "driving_audio").startswith("<presigned GET URL of s3://")
    assert s3.keys() == [] and gw.requests() == []


# -- settings ------------------------------------------------------------------------------------


def test_settings_flag_beats_env_beats_file_and_are_checked(s3, gw, cat, monkeypatch):
    assert wv("config", "set", "bucket", "not-a-bucket").exit_code == 2
    assert wv("config", "set", "bucket_endpoint", "ftp://x").exit_code == 2
    assert wv("config", "set", "bucket", "s3://from-file/p").exit_code == 0
    assert wv("config", "set", "upload_images", "yes").exit_code == 0
    shown = json.loads(wv("config", "show", "--json").stdout)
    valid("config-show.json", shown)
    assert shown["bucket"] == {"value": f"s3://{BUCKET}/wanvid/", "source": "env WANVID_BUCKET"}
    assert shown["upload_images"] == {"value": "true", "source": "file"}
    monkeypatch.delenv("WANVID_BUCKET")
    assert upload.resolve("default").target == upload.Target("from-file", "p/", s3.endpoint, None)
    assert upload.resolve("default", bucket="s3://flag").target.bucket == "flag"  # type: ignore[union-attr]
    r = wv("create", str(cat), "-p", "x", "--bucket", "bad")
    assert r.exit_code == 2 and "s3://BUCKET" in r.stderr and gw.requests() == []


# -- batch ---------------------------------------------------------------------------------------


def _manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    import csv

    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_batch_rows_upload_their_audio_and_without_a_bucket_none_is_sent(s3, gw, cat, tmp_path, monkeypatch):
    rows = [{"image": str(cat), "audio": str(TONE), "prompt": p} for p in ("one", "two")]
    manifest = _manifest(tmp_path / "m.csv", rows)
    r = wv("batch", str(manifest), "-d", "out", "--name", "{row}.mp4", *FAST)
    assert r.exit_code == 0, r.stderr
    urls = [media_url(b, "driving_audio") for b in bodies(gw)]
    assert len(urls) == 2 and all(requests.get(u, timeout=10).content == TONE.read_bytes() for u in urls)
    assert s3.keys() == [f"wanvid/{sha256(TONE)}.mp3"]

    monkeypatch.delenv("WANVID_BUCKET")
    other = _manifest(tmp_path / "n.csv", [{"image": str(cat), "audio": str(TONE), "prompt": "three"}])
    r = wv("batch", str(other), "-d", "out2", *FAST)
    assert r.exit_code == 2 and "--bucket s3://" in r.stderr
    assert len(bodies(gw)) == 2


def test_a_library_submit_refuses_local_audio_for_wan27_and_unuploaded_files(gw, cat, s3):
    """The rule holds for Python callers too, not only for the commands: nothing is sent."""
    from wanvid.errors import UsageError
    from wanvid.gateway.client import Client
    from wanvid.gateway.service import submit
    from wanvid.gateway.upload import prepare, resolve
    from wanvid.rules.request import VideoRequest, validate

    client = Client(gw.url, TEST_KEY)
    v = validate(VideoRequest("wan2.7-i2v", str(cat), prompt="a cat", audio=str(TONE)), "native")
    with pytest.raises(UsageError, match="only as an http"):
        submit(client, v)
    prepare(v, resolve("default", bucket=f"s3://{BUCKET}/in", bucket_endpoint=s3.endpoint), connect=False)
    with pytest.raises(UsageError, match="was not uploaded"):
        submit(client, v)
    assert bodies(gw) == []


def test_a_session_token_is_masked_also_percent_encoded():
    from wanvid import redact
    from wanvid.cli.output import Output

    out = Output(json_mode=False, quiet=False)
    redact.add("FwoG/ab+cd=SESSIONTOKEN")  # as wanvid.gateway.upload registers a session token
    echoed = "https://b.s3.amazonaws.com/k?X-Amz-Security-Token=FwoG%2Fab%2Bcd%3DSESSIONTOKEN&X-Amz-Signature=x"
    assert "SESSIONTOKEN" not in out.redact(echoed)
