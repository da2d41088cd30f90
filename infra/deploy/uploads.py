"""The widget and the console in the stage's site bucket, behind CloudFront.

Every object carries the Cache-Control CloudFront's CachingOptimized policy follows: the widget
a few minutes (sites embed its stable address), the console's assets for ever under
content-hashed names, everything else revalidated. An object is uploaded only when its body or
headers changed (a fingerprint in its metadata), and CloudFront forgets only stable names.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from infra.deploy import client_error_code

# Cache-Control per kind of object (CloudFront's CachingOptimized policy follows them).
CACHE_WIDGET = "public, max-age=300, stale-while-revalidate=86400, stale-if-error=604800"
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "no-cache"

#: Key -> (body, content type, cache control).
SiteFiles = Mapping[str, tuple[bytes, str, str]]
#: Records a change (``Deployer.changed``).
Changed = Callable[[str], None]


def content_type(key: str) -> str:
    if key.endswith(".js"):
        return "text/javascript; charset=utf-8"
    guessed = mimetypes.guess_type(key)[0] or "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def site_files(root: Path, stage: str, ws: str, api: str, site: str,
               snippet: str) -> dict[str, tuple[bytes, str, str]]:
    """Everything the bucket should hold, the console's assets under content-hashed names."""
    assets = _assets(root)
    console_config = {"ws": ws, "api": api, "site": site, "stage": stage}
    assets["console/config.js"] = (
        f"// Written by infra/deploy.py for stage {stage}; do not edit.\n"
        f"window.ChatConsoleConfig = {json.dumps(console_config, sort_keys=True)};\n").encode()
    files: dict[str, tuple[bytes, str, str]] = {}
    for key, body in assets.items():
        cache = CACHE_WIDGET if key == "widget/widget.js" else CACHE_REVALIDATE
        files[key] = (body, content_type(key), cache)
    index = root / "console" / "index.html"
    if index.exists():
        files["console/index.html"] = (_console_index(index.read_text(), assets, files).encode(),
                                       "text/html; charset=utf-8", CACHE_REVALIDATE)
    files["widget/embed-snippet.html"] = (snippet.encode(), "text/plain; charset=utf-8",
                                          CACHE_REVALIDATE)
    return files


def _assets(root: Path) -> dict[str, bytes]:
    """Key -> body of the widget's and the console's files (the console's index aside)."""
    assets: dict[str, bytes] = {}
    for name in ("widget.js", "chatlink.js"):
        if (root / "widget" / name).exists():
            assets[f"widget/{name}"] = (root / "widget" / name).read_bytes()
    for path in sorted((root / "console").glob("*")):
        if path.is_file() and path.name != "index.html" and not path.name.startswith("."):
            assets[f"console/{path.name}"] = path.read_bytes()
    return assets


def _console_index(html: str, assets: Mapping[str, bytes],
                   files: dict[str, tuple[bytes, str, str]]) -> str:
    """The console's index.html loading config.js first and every asset by its hashed name
    (each hashed copy is added to ``files``, cached for ever)."""
    if "/console/config.js" not in html:  # before the first script: the console reads it
        html = re.sub(r"(<script\b)", '<script src="/console/config.js"></script>\n  \\1', html,
                      count=1)

    def hashed(match: re.Match[str]) -> str:
        key = match.group(2).lstrip("/")
        if key not in assets:
            return match.group(0)
        digest = hashlib.sha256(assets[key]).hexdigest()[:10]
        stem, dot, ext = key.rpartition(".")
        hashed_key = f"{stem}.{digest}{dot}{ext}"
        files[hashed_key] = (assets[key], content_type(key), CACHE_IMMUTABLE)
        return f'{match.group(1)}="/{hashed_key}"'

    return re.sub(r'\b(src|href)="(/(?:console|widget)/[^"?#]+)"', hashed, html)


def upload_site(client: Callable[[str], Any], bucket: str, distribution_id: str,
                files: SiteFiles, changed: Changed) -> None:
    """Make the bucket hold exactly ``files`` (under widget/ and console/); invalidate what
    CloudFront may have cached of the stable names that changed."""
    s3 = client("s3")
    changed_keys = []
    for key, (body, ctype, cache) in sorted(files.items()):
        parts = [body, ctype.encode(), cache.encode()]
        fingerprint = hashlib.sha256(b"\0".join(parts)).hexdigest()
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
            if head.get("Metadata", {}).get("fingerprint") == fingerprint:
                continue
        except ClientError as exc:
            if client_error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                raise
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=ctype, CacheControl=cache,
                      Metadata={"fingerprint": fingerprint})
        changed_keys.append(key)
    stale = [key for key in _bucket_keys(s3, bucket, ("widget/", "console/")) if key not in files]
    for start in range(0, len(stale), 1000):
        batch = [{"Key": k} for k in stale[start:start + 1000]]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    if stale:
        changed(f"removed {len(stale)} old file(s) from the site bucket")
    if changed_keys:
        changed(f"uploaded {len(changed_keys)} file(s): {', '.join(changed_keys)}")
        _invalidate(client, distribution_id, files, changed_keys, changed)


def _invalidate(client: Callable[[str], Any], distribution_id: str, files: SiteFiles,
                changed_keys: list[str], changed: Changed) -> None:
    # Hashed names are new names: only the stable ones need CloudFront to forget them.
    paths = sorted({"/" + k for k in changed_keys if files[k][2] != CACHE_IMMUTABLE}
                   | ({"/console/"} if "console/index.html" in changed_keys else set()))
    if paths and distribution_id:
        client("cloudfront").create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": paths},
                               "CallerReference": hashlib.sha256(
                                   json.dumps(paths).encode() + secrets.token_bytes(8)).hexdigest()})
        changed(f"CloudFront invalidation of {len(paths)} path(s)")


def _bucket_keys(s3: Any, bucket: str, prefixes: Iterable[str]) -> list[str]:
    keys = []
    paginator = s3.get_paginator("list_objects_v2")
    for prefix in prefixes:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def empty_bucket(s3: Any, bucket: str, changed: Changed) -> None:
    """Delete every version of every object (CloudFormation cannot delete a bucket that has any)."""
    try:
        paginator = s3.get_paginator("list_object_versions")
        removed = 0
        for page in paginator.paginate(Bucket=bucket):
            objects = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                       for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if objects:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
                removed += len(objects)
    except ClientError as exc:
        if client_error_code(exc) != "NoSuchBucket":
            raise
        return
    if removed:
        changed(f"emptied bucket {bucket} ({removed} object(s))")
