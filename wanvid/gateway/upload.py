"""Local files the gateway must fetch by URL: uploaded to the user's S3-compatible bucket, sent presigned.

Why: wan2.7's ``media[].url`` is documented only as a public http(s) or OSS URL. Inline images (data: URIs)
work in practice and stay inline; inline audio and video are likely refused (../shared/GATEWAY-VARIANTS.md),
so a local ``--audio`` or ``--first-clip`` for a body with a media list (wan2.7-i2v, and models wanvid does
not know, which get the same body) goes by URL or not at all. wan2.6's ``audio_url`` stays inline unless a
bucket is configured. Images go by URL only on request (``--upload-images``).

Settings, flag > env > config file like the others (``wanvid config set NAME VALUE``):

- bucket: ``--bucket s3://BUCKET/PREFIX``, ``WANVID_BUCKET``, ``bucket``.
- endpoint: ``--bucket-endpoint URL``, ``WANVID_BUCKET_ENDPOINT``, ``bucket_endpoint``: Aliyun OSS's S3 API,
  R2, MinIO... Unset: AWS S3 (or what boto3's own configuration says).
- region: ``--bucket-region NAME``, ``WANVID_BUCKET_REGION``, ``bucket_region``. Unset: boto3's chain
  (``AWS_DEFAULT_REGION``, ~/.aws/config).
- images too: ``--upload-images``, ``WANVID_UPLOAD_IMAGES=1``, ``upload_images = true``.

Credentials come only from boto3's normal chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, ~/.aws, an instance role). wanvid never stores, prints or logs them; the secret key and a
session token are masked out of anything wanvid prints. boto3 is the optional extra ``wanvid[s3]``, imported
only when a file is to be uploaded.

The steps: ``resolve`` (the settings) → ``prepare``, after validation and before anything is sent: which
local files go by URL (each becomes a ``Hosted`` medium), exit 2 when one must and no bucket is named, boto3
and credentials checked; no network → ``publish``, just before the create POST and only when a task is
created (a reused task needs nothing): HEAD the object, upload it if it is not there, presign a GET, check
that the URL answers. ``--dry-run`` stops after ``prepare``: it shows what would be uploaded, uploads nothing.

Never paying twice: the object key is ``PREFIX + sha256 + extension``, so the same content is found by a HEAD
and not uploaded again, and the journal's fingerprint is of the file's hash (``Hosted.record`` keeps path,
hash and size as for an inline file), never of the presigned URL, which differs at every signing. A rerun of
the same command therefore reuses the task, and uploads and presigns nothing.

Expiry: ``URL_LIFE`` = 25 h. The gateway (new-api) gives up on a task unfinished after 24 h, and the
provider fetches the media when the task starts, which can be any time in that day while it is queued; an
hour of margin covers clock skew and the gap between signing and the create. S3's SigV4 maximum is 7 days;
a longer life would only widen the window in which a leaked URL works. A URL signed with temporary
credentials (STS, SSO, an instance role) stops working when they expire, whatever it says: wanvid warns.

Recorded (journal entry and ``<video>.json`` sidecar, under the input's name): ``path``, ``sha256``,
``bytes``, ``object`` (``s3://bucket/key``), ``url`` (the URL sent, without its query string) and
``url_expires``. The signature is left out on purpose: the full presigned URL lets whoever holds it
download the file until it expires, it names the access key id, and with temporary credentials it carries
the session token; a sidecar travels with the video. The object and its address say which file was sent.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from wanvid import config, redact
from wanvid.errors import FieldError, Unavailable, UsageError
from wanvid.rules.request import Media

if TYPE_CHECKING:
    from wanvid.report import Reporter
    from wanvid.rules.media import LocalMedia
    from wanvid.rules.request import Validated

URL_LIFE = 25 * 3600  # seconds a presigned URL works: the task's 24 h plus an hour (see above)
S3_MAX_LIFE = 7 * 24 * 3600  # SigV4's limit
assert URL_LIFE <= S3_MAX_LIFE

KEYS = config.UPLOAD_KEYS  # option and config-file names
ENV = {
    "bucket": "WANVID_BUCKET",
    "bucket_endpoint": "WANVID_BUCKET_ENDPOINT",
    "bucket_region": "WANVID_BUCKET_REGION",
    "upload_images": "WANVID_UPLOAD_IMAGES",
}
INSTALL = "pip install 'wanvid[s3]'"
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/bmp": ".bmp",
    "image/webp": ".webp",
    "audio/mpeg": ".mp3",
    "audio/wav": ".wav",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
}
CHUNK = 1 << 20


class Target(NamedTuple):
    """Where uploads go."""

    bucket: str
    prefix: str  # "" or ending in "/"
    endpoint: str | None
    region: str | None

    def object(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


class Hosting(NamedTuple):
    """The resolved upload settings: a bucket (or None) and whether local images go by URL too."""

    target: Target | None
    images: bool


@dataclass
class Hosted(Media):
    """A local file sent as a URL: checked like any local file, uploaded and presigned by ``publish``.

    ``local`` is None so the body carries ``ref`` as a URL (the presigned one once published, a description
    of it before, which is what ``--dry-run`` shows); the checked file is ``file``.
    """

    file: LocalMedia | None = None
    target: Target | None = None
    key: str = ""
    url: str | None = None  # the presigned GET URL, once published
    expires_at: float | None = None
    uploaded: bool | None = None  # True: this run uploaded it; False: it was in the bucket already

    @property
    def object(self) -> str:
        assert self.target is not None
        return self.target.object(self.key)

    def record(self) -> dict[str, Any]:
        """As an inline file is recorded (the fingerprint keeps only the hash), plus where it was sent from."""
        assert self.file is not None
        doc: dict[str, Any] = {
            "path": str(self.file.path.resolve()),
            "sha256": self.file.sha256,
            "bytes": self.file.size_bytes,
            "object": self.object,
        }
        if self.url:
            doc["url"] = self.url.split("?", 1)[0]  # never the signature (see the module's docstring)
            from wanvid.store.records import iso

            doc["url_expires"] = iso(self.expires_at or 0)
        return doc


# ---------------------------------------------------------------------------------------------
# Settings.


def resolve(
    profile: str,
    *,
    bucket: str | None = None,
    bucket_endpoint: str | None = None,
    bucket_region: str | None = None,
    upload_images: bool | None = None,
) -> Hosting:
    """The upload settings from flags, env and the profile's config table; a UsageError if one is malformed."""
    table = config.profile_table(config.load_file(), profile)
    picked = {
        name: config.pick(flag, (ENV[name],), table.get(name), None)
        for name, flag in (("bucket", bucket), ("bucket_endpoint", bucket_endpoint), ("bucket_region", bucket_region))
    }
    if upload_images is not None:
        images = upload_images
    elif os.environ.get(ENV["upload_images"]):
        images = _truth(os.environ[ENV["upload_images"]], f"env {ENV['upload_images']}")
    else:
        images = _truth(table.get("upload_images", False), "the config file")
    b = picked["bucket"]
    if b.value is None:
        return Hosting(None, images)
    name, prefix = _bucket(b.value, b.source)
    endpoint = picked["bucket_endpoint"]
    if endpoint.value is not None:
        check_setting("bucket_endpoint", endpoint.value, endpoint.source)
    region = picked["bucket_region"].value
    return Hosting(Target(name, prefix, endpoint.value, region.strip() if region else None), images)


def sources(profile: str) -> dict[str, config.Setting]:
    """The upload settings env or the config file sets, and where each comes from (``wanvid config show``)."""
    table = config.profile_table(config.load_file(), profile)
    found = {name: config.pick(None, (ENV[name],), _text(table.get(name)), None) for name in KEYS}
    return {name: s for name, s in found.items() if s.value is not None}


def _text(value: object) -> str | None:
    return str(value).lower() if isinstance(value, bool) else value if isinstance(value, str) else None


def check_setting(name: str, value: str, source: str = "") -> str:
    """A value for ``wanvid config set`` (or from any source) as it is stored; a UsageError if malformed."""
    if name == "bucket":
        _bucket(value, source)
    elif name == "bucket_endpoint":
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(
                f"bucket endpoint {value!r}{_from(source)} is not an http(s) URL",
                hint="e.g. --bucket-endpoint https://oss-cn-hangzhou.aliyuncs.com (leave it out for AWS S3)",
            )
    elif name == "upload_images":
        return "true" if _truth(value, source) else "false"
    return value


def _bucket(value: str, source: str) -> tuple[str, str]:
    text = value.strip()
    rest = text[5:] if text[:5].lower() == "s3://" else None
    name, _, prefix = (rest or "").partition("/")
    if rest is None or not name or not all(c.isalnum() or c in ".-_" for c in name):
        raise UsageError(
            f"bucket {value!r}{_from(source)} is not s3://BUCKET or s3://BUCKET/PREFIX",
            hint="e.g. --bucket s3://my-bucket/wanvid",
        )
    prefix = prefix.strip("/")
    return name, prefix + "/" if prefix else ""


def _truth(value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in config.TRUE or text in config.FALSE:
        return text in config.TRUE
    raise UsageError(f"upload_images {value!r}{_from(source)} is not true or false")


def _from(source: str) -> str:
    return f" (from {source})" if source and source != "flag" else ""


# ---------------------------------------------------------------------------------------------
# Which files go by URL (no network).


def uses_media_list(v: Validated) -> bool:
    """The body is wan2.7's ``input.media`` list (wan2.7, and native models wanvid does not know)."""
    return v.protocol == "native" and (v.spec is None or v.spec.native_media)


def place(
    v: Validated,
    profile: str,
    options: dict[str, Any] | None = None,
    *,
    connect: bool = True,
    out: Reporter | None = None,
) -> list[Hosted]:
    """``prepare`` with the upload settings of ``profile`` (``options``: the upload flags given, as ``resolve``
    takes them): what ``create``, ``run`` and ``wanvid.Wanvid`` do before sending a request."""
    return prepare(v, resolve(profile, **(options or {})), connect=connect, out=out)


def prepare(v: Validated, hosting: Hosting, *, connect: bool = True, out: Reporter | None = None) -> list[Hosted]:
    """Swap the local files that go by URL for ``Hosted`` media; return them. Nothing is sent or uploaded.

    A local audio or video file for a media-list body without a bucket, or ``upload_images`` without one, is
    a ``FieldError`` (exit 2). With ``connect``, boto3 is imported and the credentials are found now, so a
    missing extra or missing credentials stop the command before anything is paid for.
    """
    hosted: list[Hosted] = []
    for name, m in list(v.media.items()):
        local = m.local
        if local is None or isinstance(m, Hosted):
            continue
        moving = local.kind != "image" or hosting.images
        if not moving:
            continue
        if hosting.target is None:
            if local.kind == "image":
                raise FieldError(name, f"{local.path} would be uploaded (upload_images), but no bucket is named", _HOW)
            if not uses_media_list(v):
                continue  # wan2.6's audio_url: inline, as it always was
            raise FieldError(
                name,
                f"{local.path} is a local {local.kind} file, and {v.request.model} takes {local.kind} only as an "
                "http(s) URL; nothing was sent",
                f"give a URL, or {_HOW}",
            )
        key = hosting.target.prefix + local.sha256 + EXTENSIONS.get(local.mime, "")
        values = {f.name: getattr(m, f.name) for f in fields(m)}
        values.update(ref=f"<presigned GET URL of {hosting.target.object(key)}, made at send time>", local=None)
        h = Hosted(**values, file=local, target=hosting.target, key=key)
        v.media[name] = h
        hosted.append(h)
    if hosted and connect:
        _client(hosted[0].target, out)  # type: ignore[arg-type]
    return hosted


_HOW = (
    "name a bucket to upload it to: --bucket s3://BUCKET/PREFIX, WANVID_BUCKET, or "
    f"`wanvid config set bucket s3://BUCKET/PREFIX` (needs {INSTALL} and AWS credentials)"
)


def planned(v: Validated) -> list[dict[str, Any]]:
    """What ``publish`` would upload, for ``--dry-run``."""
    return [
        {"input": name, "path": str(m.file.path), "bytes": m.file.size_bytes, "object": m.object}
        for name, m in v.media.items()
        if isinstance(m, Hosted) and m.file is not None
    ]


# ---------------------------------------------------------------------------------------------
# Upload and presign (just before the create).


def publish(v: Validated, out: Reporter | None = None) -> None:
    """Make sure every hosted file is in the bucket (HEAD, upload if missing) and give it a presigned URL."""
    for m in v.media.values():
        if isinstance(m, Hosted) and m.url is None:
            _publish(m, out)


def _publish(h: Hosted, out: Reporter | None) -> None:
    assert h.file is not None and h.target is not None
    client, temporary = _client(h.target, out)
    f = h.file
    if f.changed():
        raise _changed(f)
    size = _head(client, h)
    if size == f.size_bytes:
        h.uploaded = False
        _say(out, f"{f.path.name} is already at {h.object}; not uploading it again")
    else:
        _put(client, h)
        h.uploaded = True
        _say(out, f"uploaded {f.path.name} ({f.size_bytes:,} bytes) to {h.object}")
    signed_at = time.time()  # the URL's life counts from its signing (X-Amz-Date)
    try:
        url = client.generate_presigned_url(
            "get_object", Params={"Bucket": h.target.bucket, "Key": h.key}, ExpiresIn=URL_LIFE
        )
    except Exception as exc:
        raise _failed(exc, "presigning", h) from None
    _check_fetchable(url, h)
    if temporary and out is not None:
        out.warn(
            f"the AWS credentials are temporary: the URL sent for {f.path.name} stops working when they expire, "
            "which may be before the gateway fetches it; use long-lived keys for the bucket"
        )
    h.url = h.ref = url
    h.expires_at = signed_at + URL_LIFE


def _say(out: Reporter | None, text: str) -> None:
    if out is not None:
        out.info(text)


def _head(client: Any, h: Hosted) -> int | None:
    """The object's size if it is there; None if it is not (or HEAD is not allowed: then it is uploaded)."""
    from botocore.exceptions import ClientError

    assert h.target is not None
    try:
        answer = client.head_object(Bucket=h.target.bucket, Key=h.key)
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status in (403, 404):  # 403: a missing key without s3:ListBucket
            return None
        raise _failed(exc, "looking for", h) from None
    except Exception as exc:
        raise _failed(exc, "looking for", h) from None
    length = answer.get("ContentLength")
    return length if isinstance(length, int) else None


def _put(client: Any, h: Hosted) -> None:
    """Upload the checked bytes: Content-MD5 makes the bucket refuse anything else (a file changed meanwhile)."""
    assert h.file is not None and h.target is not None
    f = h.file
    md5, sha, size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
    with f.path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            md5.update(chunk)
            sha.update(chunk)
            size += len(chunk)
    if size != f.size_bytes or sha.hexdigest() != f.sha256:
        raise _changed(f)
    try:
        with f.path.open("rb") as fh:
            client.put_object(
                Bucket=h.target.bucket,
                Key=h.key,
                Body=fh,
                ContentLength=size,
                ContentType=f.mime,
                ContentMD5=base64.b64encode(md5.digest()).decode(),
            )
    except Exception as exc:
        if _code(exc) in ("BadDigest", "InvalidDigest"):
            raise _changed(f) from None
        raise _failed(exc, "uploading to", h) from None
    if f.changed():
        raise _changed(f)


def _check_fetchable(url: str, h: Hosted) -> None:
    """One byte through the presigned URL, fetched as the gateway will (no credentials): a wrong region or
    endpoint signs URLs the bucket refuses, and that must show before the task is paid for."""
    import requests

    try:
        with requests.get(url, headers={"Range": "bytes=0-0"}, timeout=(10, 30), stream=True) as resp:
            status = resp.status_code
            detail = resp.text[:2000] if status >= 300 else ""
    except requests.RequestException as exc:
        raise Unavailable(
            f"could not fetch {h.object} through its presigned URL: {type(exc).__name__}; nothing was sent",
            hint="check --bucket-endpoint and the network, then run the command again",
        ) from None
    if status >= 500 or status == 429:  # the bucket's own trouble (SlowDown, InternalError): try again later
        raise Unavailable(
            f"the bucket answered HTTP {status} for {h.object}'s presigned URL; nothing was sent",
            hint="try again later",
        )
    if status not in (200, 206):
        code = _xml_code(detail)
        raise UsageError(
            f"the presigned URL for {h.object} answers HTTP {status}{f' {code}' if code else ''}; "
            "the gateway could not fetch it; nothing was sent",
            hint="check --bucket-region (a wrong region signs URLs the bucket refuses) and --bucket-endpoint",
        )


def _xml_code(text: str) -> str:
    start = text.find("<Code>")
    end = text.find("</Code>", start)
    return text[start + 6 : end] if start >= 0 and end > start else ""


def _changed(f: LocalMedia) -> UsageError:
    return UsageError(
        f"{f.path} changed since it was checked; nothing was created",
        hint="leave the file alone until the task is created, then run the command again",
    )


# ---------------------------------------------------------------------------------------------
# boto3, lazily.

_clients: dict[Target, tuple[Any, bool]] = {}  # one client per target per process (a batch shares it)
_lock = threading.Lock()


def _boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise UsageError(f"uploading local files to a bucket needs boto3, which is not installed: {INSTALL}") from None
    return boto3


def _client(target: Target, out: Reporter | None) -> tuple[Any, bool]:
    """The S3 client for ``target`` and whether its credentials are temporary; a UsageError without boto3 or
    credentials. Their secret parts are added to the masks (``wanvid.redact``) (they are never printed anyway)."""
    boto3 = _boto3()  # every time: cheap once imported, and a cached client must not hide a missing extra
    with _lock:
        if target in _clients:
            return _clients[target]
        from botocore.config import Config

        session = boto3.session.Session()
        creds = session.get_credentials()
        if creds is None:
            raise UsageError(
                f"no AWS credentials to upload to s3://{target.bucket}",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (boto3's usual chain; "
                "wanvid never stores them)",
            )
        frozen = creds.get_frozen_credentials()
        redact.add(frozen.secret_key)
        redact.add(frozen.token)
        options: dict[str, Any] = {"signature_version": "s3v4", "retries": {"max_attempts": 4, "mode": "standard"}}
        # botocore >= 1.36 adds CRC checksums by default, which some S3-compatible stores refuse.
        checksums = {"request_checksum_calculation": "when_required", "response_checksum_validation": "when_required"}
        try:
            cfg = Config(**options, **checksums)
        except TypeError:
            cfg = Config(**options)
        client = session.client("s3", endpoint_url=target.endpoint, region_name=target.region, config=cfg)
        _clients[target] = (client, bool(frozen.token))
        return _clients[target]


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _failed(exc: Exception, doing: str, h: Hosted) -> Exception:
    """A bucket error as wanvid's: the bucket's own refusals exit 2 (a setting to fix), the rest 6."""
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    where = h.object
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return UsageError(
            f"no usable AWS credentials for {where}", hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        message = exc.response.get("Error", {}).get("Message") or ""
        said = f"HTTP {status} {_code(exc)}" + (f": {message}" if message else "")
        text = f"{doing} {where} failed: {said}; nothing was sent"
        if status >= 500 or _code(exc) in ("SlowDown", "RequestTimeout"):
            return Unavailable(text, status=status, hint="the bucket is having trouble; run the command again later")
        return UsageError(text, hint="check --bucket, --bucket-region, --bucket-endpoint and the AWS credentials")
    return Unavailable(
        f"{doing} {where} failed: {type(exc).__name__}: {exc}; nothing was sent",
        hint="check --bucket-endpoint and the network, then run the command again",
    )
