"""The content route as the real gateway runs it: a proxy of the signed URL that ignores Range and cuts
every transfer (new-api's video_proxy.go caps one at 60 s). wanvid must finish from the task's signed
URL, without the key, keeping the bytes it already has when that URL serves the same content."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from wanvid.errors import Unavailable
from wanvid.gateway.client import Client
from wanvid.gateway.download import Progress
from wanvid.gateway.service import fetch_video
from wanvid.rules.task import Status, Task
from wanvid.sandbox import Sandbox
from wanvid.store.journal import Journal, Part

from ..helpers import FAST, TEST_KEY, wv

BIG = 400_000  # bytes of video: the cuts below fall well inside it
CUT = 100_000
PROTOCOLS = ["native", "unified"]
EACH_FLAVOR = pytest.mark.parametrize("gw", ["house", "docs", "newapi"], indirect=True)
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


@pytest.fixture
def gw(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """A sandbox whose tasks finish almost at once, as the gateway of in-process commands (in the flavor
    a test names with ``EACH_FLAVOR``, else the default); retries back off for milliseconds."""
    monkeypatch.setattr("wanvid.gateway.client.BACKOFF_BASE", 0.005)
    with Sandbox(queue_seconds=0, run_seconds=0.05, flavor=getattr(request, "param", "house")) as sb:
        monkeypatch.setenv("WANVID_BASE_URL", sb.url)
        monkeypatch.setenv("WANVID_API_KEY", TEST_KEY)
        sb.faults.video_size = BIG
        yield sb


def task_id(sb: Sandbox) -> str:
    (task,) = sb.tasks()
    return str(task["id"])


def signed_url(sb: Sandbox, protocol: str, tid: str) -> str:
    """The task's signed URL, read from the gateway's own answer."""
    if protocol == "native":
        return str(requests.get(f"{sb.url}/aliyun/v1/tasks/{tid}", headers=AUTH).json()["output"]["video_url"])
    return str(requests.get(f"{sb.url}/v1/videos/{tid}", headers=AUTH).json()["metadata"]["url"])


def content_route(protocol: str, tid: str) -> str:
    return f"/aliyun/v1/videos/{tid}/content" if protocol == "native" else f"/v1/videos/{tid}/content"


def served(sb: Sandbox, protocol: str, tid: str) -> bytes:
    """What the signed URL serves, fetched as a browser would: no key."""
    r = requests.get(signed_url(sb, protocol, tid))
    assert r.status_code == 200 and r.headers["Content-Type"] == "video/mp4"
    return r.content


def oss(sb: Sandbox) -> list[dict[str, str]]:
    """The headers of every request to the signed URL, checked to carry no key at all."""
    heads = [r.headers for r in sb.requests("/_oss/")]
    assert heads and all("authorization" not in h and TEST_KEY not in str(h) for h in heads)
    return heads


def asking(cat: Path, protocol: str) -> list[str]:
    """A request every flavor takes (a unified create needs a prompt; wanvid fills in size and seconds)."""
    return [str(cat), "-p", "a cat walks", "--protocol", protocol]


def finished(sb: Sandbox, cat: Path, protocol: str) -> str:
    tid = wv("create", *asking(cat, protocol), "-q").stdout.strip()
    assert wv("wait", tid, "-q", *FAST).exit_code == 0
    return tid


# -- a proxy that cuts every transfer ------------------------------------------------------------


@EACH_FLAVOR
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_proxy_that_always_cuts_after_n_bytes_ends_with_the_signed_urls_file(gw, cat, isolated, protocol):
    gw.faults.proxy_cut_bytes = CUT
    r = wv("run", *asking(cat, protocol), "-o", "v.mp4", *FAST)
    assert r.exit_code == 0, r.stderr
    tid = task_id(gw)
    video = served(gw, protocol, tid)
    assert len(video) == BIG and (isolated / "v.mp4").read_bytes() == video
    assert not (isolated / "v.mp4.part").exists()
    assert "content route ignores Range" in r.stderr and "fetching the signed video URL instead" in r.stderr
    # One transfer cut, one resume that came back from byte 0; then the signed URL continued the .part.
    ranges = [q.headers.get("range") for q in gw.requests(content_route(protocol, tid))]
    assert ranges == [None, f"bytes={CUT}-"]
    first = oss(gw)[0]
    assert first.get("range") == f"bytes={CUT}-" and first.get("if-range")


@EACH_FLAVOR
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_proxy_that_always_cuts_after_n_seconds_ends_with_the_signed_urls_file(gw, cat, isolated, protocol):
    tid = finished(gw, cat, protocol)
    gw.faults.slow_download_bps = 2_000_000  # ~0.2 s for the video: the 0.05 s cap cuts every proxied transfer
    gw.faults.proxy_cut_seconds = 0.05
    r = wv("download", tid, "-o", "v.mp4")
    assert r.exit_code == 0, r.stderr
    assert "fetching the signed video URL instead" in r.stderr
    gw.faults.slow_download_bps = None
    assert (isolated / "v.mp4").read_bytes() == served(gw, protocol, tid)
    kept = oss(gw)[0].get("range")
    assert kept and kept.startswith("bytes=") and kept != "bytes=0-"  # the cut transfer's bytes were kept


def test_a_route_that_honours_range_but_keeps_dropping_is_left_after_two_drops(gw, cat, isolated):
    tid = finished(gw, cat, "native")
    gw.faults.cut_download_after, gw.faults.cut_downloads = 50_000, 2  # each cut on the route; /_oss unhurt after
    r = wv("download", tid, "-o", "v.mp4")
    assert r.exit_code == 0, r.stderr
    assert "dropped the connection 2 times, the last after 100,000 bytes" in r.stderr
    assert [q.headers.get("range") for q in gw.requests(content_route("native", tid))] == [None, "bytes=50000-"]
    assert oss(gw)[0].get("range") == "bytes=100000-"
    assert (isolated / "v.mp4").read_bytes() == served(gw, "native", tid)


def test_with_no_retries_a_cut_ends_the_run_and_the_next_one_switches(gw, cat, isolated):
    tid = finished(gw, cat, "unified")
    gw.faults.proxy_cut_bytes = CUT
    first = wv("download", tid, "-o", "v.mp4", env={"WANVID_MAX_RETRIES": "0"})
    assert first.exit_code == 6 and f"resume with: wanvid download {tid}" in first.stderr
    assert (isolated / "v.mp4.part").stat().st_size == CUT
    again = wv("download", tid, "-o", "v.mp4")
    assert again.exit_code == 0 and "ignores Range" in again.stderr
    assert [q.headers.get("range") for q in gw.requests(content_route("unified", tid))] == [None, f"bytes={CUT}-"]
    assert oss(gw)[0].get("range") == f"bytes={CUT}-"
    assert (isolated / "v.mp4").read_bytes() == served(gw, "unified", tid)


# -- keeping the .part, or starting it over -----------------------------------------------------


def cut_part(sb: Sandbox, tid: str, isolated: Path) -> Path:
    """A .part of the first CUT bytes, as a run that the route cut and that had no retries left leaves it."""
    sb.faults.cut_download_after, sb.faults.cut_downloads = CUT, 1
    assert wv("download", tid, "-o", "v.mp4", env={"WANVID_MAX_RETRIES": "0"}).exit_code == 6
    part = isolated / "v.mp4.part"
    assert part.stat().st_size == CUT
    return part


@EACH_FLAVOR
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_part_is_kept_when_the_signed_url_has_the_same_etag(gw, cat, isolated, protocol):
    tid = finished(gw, cat, protocol)
    cut_part(gw, tid, isolated)
    gw.faults.content_errors = 5  # the route now fails before sending anything
    r = wv("download", tid, "-o", "v.mp4")
    assert r.exit_code == 0 and "restarting" not in r.stderr, r.stderr
    (head,) = oss(gw)
    etag = requests.get(signed_url(gw, protocol, tid), headers={"Range": "bytes=0-0"}).headers["ETag"]
    assert head.get("range") == f"bytes={CUT}-" and head.get("if-range") == etag
    assert (isolated / "v.mp4").read_bytes() == served(gw, protocol, tid)


def test_the_part_is_kept_on_equal_size_when_there_is_no_etag(gw, cat, isolated):
    tid = finished(gw, cat, "native")
    part = cut_part(gw, tid, isolated)
    Journal().save_part(part, Part(tid, "elsewhere", None, BIG))  # known: the size, not the validator
    gw.faults.content_errors = 5
    r = wv("download", tid, "-o", "v.mp4")
    assert r.exit_code == 0 and "restarting" not in r.stderr, r.stderr
    (head,) = oss(gw)
    assert head.get("range") == f"bytes={CUT}-" and "if-range" not in head
    assert (isolated / "v.mp4").read_bytes() == served(gw, "native", tid)


def test_the_part_restarts_when_the_signed_url_serves_other_content(gw, cat, isolated):
    tid = finished(gw, cat, "native")
    cut_part(gw, tid, isolated)
    gw.faults.video_variant = 7  # other bytes and another ETag behind the signed URL
    gw.faults.content_errors = 5
    r = wv("download", tid, "-o", "v.mp4")
    assert r.exit_code == 0, r.stderr
    assert "fetching the signed video URL instead" in r.stderr and "restarting v.mp4.part" in r.stderr
    assert [h.get("range") for h in oss(gw)] == [f"bytes={CUT}-"]  # If-Range failed: the whole video came
    video = served(gw, "native", tid)
    assert (isolated / "v.mp4").read_bytes() == video and video[CUT:] != b"\0" * (BIG - CUT)


def test_the_part_restarts_when_the_sizes_differ_and_there_is_no_etag(gw, cat, isolated):
    tid = finished(gw, cat, "native")
    part = cut_part(gw, tid, isolated)
    Journal().save_part(part, Part(tid, "elsewhere", None, BIG + 5))
    gw.faults.content_errors = 5
    r = wv("download", tid, "-o", "v.mp4")
    assert r.exit_code == 0 and "is not the one v.mp4.part holds; restarting it" in r.stderr, r.stderr
    assert [h.get("range") for h in oss(gw)] == [f"bytes={CUT}-", None]
    assert (isolated / "v.mp4").read_bytes() == served(gw, "native", tid)


# -- HTML from the route ------------------------------------------------------------------------


@EACH_FLAVOR
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_html_page_from_the_content_route_falls_back_to_the_signed_url(gw, cat, isolated, protocol):
    gw.faults.content_html = True
    r = wv("run", *asking(cat, protocol), "-o", "v.mp4", *FAST)
    assert r.exit_code == 0, r.stderr
    assert "content route sent text/html; charset=utf-8, not the video" in r.stderr
    tid = task_id(gw)
    assert len(gw.requests(content_route(protocol, tid))) == 1
    oss(gw)
    assert (isolated / "v.mp4").read_bytes() == served(gw, protocol, tid)


def test_an_html_page_answering_a_resume_leaves_the_part_for_the_signed_url(gw, cat, isolated):
    tid = finished(gw, cat, "native")
    cut_part(gw, tid, isolated)
    gw.faults.content_html = True
    r = wv("download", tid, "-o", "v.mp4")
    assert r.exit_code == 0 and "content route sent text/html; charset=utf-8, not the video" in r.stderr, r.stderr
    assert [h.get("range") for h in oss(gw)] == [f"bytes={CUT}-"]
    assert (isolated / "v.mp4").read_bytes() == served(gw, "native", tid)


def test_html_from_both_sources_is_still_exit_7_with_nothing_left(gw, cat, isolated):
    tid = finished(gw, cat, "native")
    gw.faults.video_html = True
    r = wv("download", tid, "-o", "v.mp4")
    assert r.exit_code == 7 and "not an MP4 video (text/html" in r.stderr
    assert list(isolated.glob("v.mp4*")) == []


# -- the signed URL missing or expired ----------------------------------------------------------


def library_task(protocol: str, tid: str, url: str | None) -> Task:
    return Task(tid, protocol, Status.SUCCEEDED, "SUCCEEDED", video_url=url)


@EACH_FLAVOR
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_expired_signed_url_is_replaced_by_a_fresh_one(gw, cat, isolated, protocol):
    tid = finished(gw, cat, protocol)
    good = signed_url(gw, protocol, tid)
    expired = good.replace("Expires=", "Expires=1").replace("Signature=", "Signature=0")
    gw.faults.proxy_cut_bytes = CUT
    notes: list[str] = []
    got = fetch_video(
        Client(gw.url, TEST_KEY, sleep=lambda s: None),
        library_task(protocol, tid, expired),
        isolated / "v.mp4",
        force=False,
        progress=Progress(notice=notes.append),
    )
    assert got.source == good and (isolated / "v.mp4").read_bytes() == served(gw, protocol, tid)
    assert any("signed video URL failed (gateway error 403" in n and "fresh one" in n for n in notes), notes
    paths = [r.path for r in gw.requests("/_oss/")]
    assert "Signature=0" in paths[0] and set(paths[1:]) == {"/" + good.split("/", 3)[3]}
    assert oss(gw)[1].get("range") == f"bytes={CUT}-"  # the fresh URL continued the .part


@EACH_FLAVOR
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_task_without_a_signed_url_is_queried_for_one(gw, cat, isolated, protocol):
    tid = finished(gw, cat, protocol)
    gw.faults.content_html = True
    polls = gw.tasks()[0]["polls"]
    got = fetch_video(Client(gw.url, TEST_KEY), library_task(protocol, tid, None), isolated / "v.mp4", force=False)
    assert gw.tasks()[0]["polls"] == polls + 1  # asked once, for the URL
    assert got.source == signed_url(gw, protocol, tid)
    oss(gw)
    assert (isolated / "v.mp4").read_bytes() == served(gw, protocol, tid)


def test_no_signed_url_anywhere_leaves_the_route_its_whole_retry_budget(gw, cat, isolated):
    tid = finished(gw, cat, "native")
    gw.faults.content_errors = 2  # a passing fault: the route's own retries get past it
    got = fetch_video(
        Client(gw.url, TEST_KEY, max_retries=2, sleep=lambda s: None),
        library_task("native", tid, None),
        isolated / "v.mp4",
        force=False,
        refresh=lambda: None,
    )
    assert got.path.read_bytes() == served(gw, "native", tid)
    assert len(gw.requests(content_route("native", tid))) == 3
    gw.faults.content_errors = 5  # one that outlasts the budget is the route's own exit 6
    with pytest.raises(Unavailable) as caught:
        fetch_video(
            Client(gw.url, TEST_KEY, max_retries=1, sleep=lambda s: None),
            library_task("native", tid, None),
            isolated / "w.mp4",
            force=False,
            refresh=lambda: None,
        )
    assert caught.value.exit_code == 6 and "502" in caught.value.message


# -- the sandbox faults themselves -------------------------------------------------------------


def test_the_proxy_faults_cut_only_the_content_route_and_are_validated(gw, cat):
    tid = finished(gw, cat, "native")
    route = f"{gw.url}{content_route('native', tid)}"
    gw.faults.proxy_cut_bytes = CUT
    for headers in ({}, {"Range": f"bytes={CUT}-"}):  # Range ignored: every transfer restarts and is cut
        with requests.get(route, headers={**AUTH, **headers}, stream=True) as r:
            assert r.status_code == 200 and r.headers["Content-Length"] == str(BIG)
            got = 0
            with pytest.raises(Exception, match="IncompleteRead"):
                while chunk := r.raw.read1(65536):
                    got += len(chunk)
            assert got == CUT
    ranged = requests.get(signed_url(gw, "native", tid), headers={"Range": f"bytes={CUT}-"})
    assert ranged.status_code == 206 and len(ranged.content) == BIG - CUT
    base = gw.url + "/_sandbox/faults"
    for name, bad in (
        ("proxy_cut_bytes", -1),
        ("proxy_cut_bytes", 1.5),
        ("proxy_cut_seconds", -0.1),
        ("proxy_cut_seconds", "1"),
        ("content_html", 1),
    ):
        answer = requests.post(base, json={name: bad})
        assert answer.status_code == 400 and answer.json()["error"]["param"] == name
    ok = requests.post(base, json={"proxy_cut_seconds": 60, "proxy_cut_bytes": None, "content_html": False})
    assert ok.status_code == 200 and ok.json()["proxy_cut_seconds"] == 60
