"""A path no route takes gets what new-api answers it (router/web-router.go NoRoute, for every method): under
/api, /v1, /v1beta and /assets, 404 with controller/relay.go RelayNotFound's envelope; anywhere else, the web
console's index page, HTTP 200 text/html."""

from __future__ import annotations

import json

import pytest
import requests

from wanvid.sandbox import Sandbox


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize(
    "path", ["/v1/aliyun/v1/videos/generations", "/v1/v1/videos", "/api/nope", "/v1beta/x", "/assets/x.js", "/v1"]
)
def test_api_prefixes_answer_invalid_url(sandbox: Sandbox, method: str, path: str) -> None:
    resp = requests.request(method, sandbox.url + path, json={"model": "wan2.7-i2v"}, timeout=10)
    assert resp.status_code == 404
    assert resp.headers["Content-Type"].startswith("application/json")
    expected = {"message": f"Invalid URL ({method} {path})", "type": "invalid_request_error", "param": "", "code": ""}
    assert json.loads(resp.content) == {"error": expected}


@pytest.mark.parametrize("flavor", ["docs", "newapi", "house"])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("path", ["/", "/x/aliyun/v1/videos/generations", "/aliyun/v2/tasks/1", "/v2/videos"])
def test_other_paths_answer_the_console_page(method: str, path: str, flavor: str) -> None:
    with Sandbox(flavor=flavor) as sb:
        resp = requests.request(method, sb.url + path, json={}, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert resp.text.lstrip().lower().startswith("<!doctype html>")


def test_a_wrong_method_on_a_known_route_is_no_route(sandbox: Sandbox) -> None:
    """gin without HandleMethodNotAllowed sends a wrong method to NoRoute too."""
    resp = requests.get(sandbox.url + "/aliyun/v1/videos/generations", timeout=10)
    assert resp.status_code == 200 and "html" in resp.headers["Content-Type"]
    resp = requests.delete(sandbox.url + "/v1/videos", timeout=10)
    assert resp.status_code == 404
    assert resp.json()["error"]["message"] == "Invalid URL (DELETE /v1/videos)"


def test_known_routes_still_answer(sandbox: Sandbox) -> None:
    resp = requests.get(
        sandbox.url + "/aliyun/v1/tasks/no-such-task", headers={"Authorization": "Bearer k"}, timeout=10
    )
    assert resp.status_code == 200
    assert resp.json()["output"]["task_status"] == "UNKNOWN"
