"""Publish targets: where documents and instance protocols go, and the URLs they get.

Layout, relative to the publish root (served at the base URL):

* `documents/<id>.json`: model, instance, state and end documents, named by their id. Written once:
  a document whose file exists is never rewritten (its bytes are fixed by its id).
* `<instance id>.json`: the instance protocol, rewritten as states get registered.

Targets: a local directory (default `./protocol`; every file written to a temporary name and
renamed, so a reader or a killed process never sees half a file) or `s3://bucket/prefix` through
boto3 (a PUT is atomic). Many documents are written by a small thread pool (`publish_documents`):
the writes wait on I/O, not on Python.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from tracker.documents.facts import Document
from tracker.errors import ConfigurationError, TrackerError, one_line

DEFAULT_BASE_URL = "https://localhost:8443"
DEFAULT_TARGET = "./protocol"
WRITERS = 8


class PublishError(TrackerError):
    """The publish target refused a write."""


def document_path(document_id: str) -> str:
    return f"documents/{document_id}.json"


def protocol_path(instance_id: str) -> str:
    return f"{instance_id}.json"


class Publisher(Protocol):
    """A place that stores published files by relative path."""

    base_url: str

    def exists(self, path: str) -> bool: ...

    def write(self, path: str, content: bytes) -> None: ...

    def describe(self) -> str: ...


def url_for(publisher: Publisher, path: str) -> str:
    return f"{publisher.base_url.rstrip('/')}/{path}"


def publish_document(publisher: Publisher, document: Document) -> str:
    """Writes a document unless its bytes are already published; returns its URL."""
    path = document_path(document.id)
    if not publisher.exists(path):
        publisher.write(path, document.content)
    return url_for(publisher, path)


def publish_documents(publisher: Publisher, documents: list[Document]) -> None:
    """Publishes many documents (each unless already there) with a few concurrent writers."""
    unique = list({document.id: document for document in documents}.values())
    _concurrently(lambda document: publish_document(publisher, document), unique)


def write_files(publisher: Publisher, files: dict[str, bytes]) -> None:
    """Writes (or rewrites) many files, such as protocols, with a few concurrent writers."""
    _concurrently(lambda item: publisher.write(*item), list(files.items()))


def _concurrently(action, items: list) -> None:
    if len(items) < 2 * WRITERS:
        for item in items:
            action(item)
        return
    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        list(pool.map(action, items))


class DirectoryPublisher:
    """A local directory, written atomically (temporary file, then rename over the target)."""

    def __init__(self, root: str | Path = DEFAULT_TARGET, base_url: str = DEFAULT_BASE_URL):
        self.root = Path(root)
        self.base_url = base_url
        try:
            (self.root / "documents").mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise PublishError(f"cannot create publish directory {self.root}: {one_line(error)}") from error

    def describe(self) -> str:
        return str(self.root)

    def exists(self, path: str) -> bool:
        return (self.root / path).exists()

    def write(self, path: str, content: bytes) -> None:
        target = self.root / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
            with os.fdopen(handle, "wb") as stream:
                stream.write(content)
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        except OSError as error:
            raise PublishError(f"cannot write {target}: {one_line(error)}") from error


class S3Publisher:
    """`s3://bucket/prefix` through boto3 (standard credentials, AWS_ENDPOINT_URL honoured)."""

    def __init__(self, bucket: str, prefix: str, session: Any, base_url: str = DEFAULT_BASE_URL):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.base_url = base_url
        self.client = session.client("s3")

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def exists(self, path: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(path))
            return True
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise PublishError(f"cannot read {self.describe()}/{path}: {one_line(error)}") from error

    def write(self, path: str, content: bytes) -> None:
        from botocore.exceptions import ClientError

        content_type = "application/json"
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(path), Body=content, ContentType=content_type)
        except ClientError as error:
            raise PublishError(f"cannot write {self.describe()}/{path}: {one_line(error)}") from error


def open_target(target: str, base_url: str = DEFAULT_BASE_URL, session: Any = None) -> Publisher:
    """`./dir` or `s3://bucket/prefix` as a publisher (a session is needed for S3)."""
    if target.startswith("s3://"):
        bucket, _, prefix = target[len("s3://") :].partition("/")
        if not bucket:
            raise ConfigurationError(f"publish target {target!r} names no bucket (expected s3://bucket/prefix)")
        if session is None:
            raise ConfigurationError("an S3 publish target needs AWS settings (AWS_REGION)")
        return S3Publisher(bucket, prefix, session, base_url)
    if "://" in target:
        raise ConfigurationError(f"publish target {target!r}: expected a directory or s3://bucket/prefix")
    return DirectoryPublisher(target, base_url)
