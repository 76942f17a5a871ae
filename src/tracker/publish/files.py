"""What the protocol server serves: which URL paths name a file, and how that file is read.

The publish layout (`targets`) has exactly two kinds of file, both named by a 64-hex id:
`/<instance id>.json` (an instance protocol, rewritten as states get registered) and
`/documents/<id>.json` (a document, immutable: its bytes are what its id hashes). With an explorer
directory configured, `/explorer/...` names the static files of the browser explorer. Every other
path is refused by its shape alone, before anything on disk is looked at, so `/.env`,
`/.git/config` or a stray backup file in the publish directory are never served.

A file is opened one path component at a time below its base directory, each with `O_NOFOLLOW`:
no symbolic link is followed anywhere below the base, so nothing outside it can be reached, and a
file with more than one hard link is refused (a hard link can point at any file on the same file
system, and nothing about the link itself says so). Only regular files are served.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

# Larger files are not served: a response is read whole into memory (to hash it for its ETag).
MAX_FILE_BYTES = 64 * 1024 * 1024
EXPLORER_PREFIX = "/explorer/"
EXPLORER_INDEX = "index.html"

_PROTOCOL_PATH = re.compile(r"/([0-9a-f]{64})\.json")
_DOCUMENT_PATH = re.compile(r"/documents/([0-9a-f]{64})\.json")
# A path segment of the explorer: plain characters, never starting with a dot (no `.`, `..` or
# hidden files), never percent-encoded.
_EXPLORER_SEGMENT = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*")

EXPLORER_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/vnd.microsoft.icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".wasm": "application/wasm",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"


class Kind(Enum):
    PROTOCOL = "protocol"
    DOCUMENT = "document"
    EXPLORER = "explorer"


@dataclass(frozen=True)
class Target:
    """A file a URL path names: its kind, the directory it must lie in, and its path below it."""

    kind: Kind
    base: Path
    parts: tuple[str, ...]
    # The id in the file name, for protocols and documents.
    identifier: str = ""

    @property
    def content_type(self) -> str:
        if self.kind is not Kind.EXPLORER:
            return "application/json"
        suffix = os.path.splitext(self.parts[-1])[1].lower()
        return EXPLORER_CONTENT_TYPES.get(suffix, DEFAULT_CONTENT_TYPE)


def route(raw_path: str, root: Path, explorer: Path | None) -> Target | None:
    """The file a request target names, or None when its shape is not one the server serves.

    `raw_path` is the request target as sent (not percent-decoded); a query string is ignored.
    """
    path = raw_path.split("?", 1)[0]
    if match := _PROTOCOL_PATH.fullmatch(path):
        return Target(Kind.PROTOCOL, root, (path[1:],), match.group(1))
    if match := _DOCUMENT_PATH.fullmatch(path):
        return Target(Kind.DOCUMENT, root, ("documents", f"{match.group(1)}.json"), match.group(1))
    if explorer is None or not path.startswith(EXPLORER_PREFIX):
        return None
    segments = path[len(EXPLORER_PREFIX) :].split("/")
    if segments[-1] == "":
        segments[-1] = EXPLORER_INDEX
    if not all(_EXPLORER_SEGMENT.fullmatch(segment) for segment in segments):
        return None
    return Target(Kind.EXPLORER, explorer, tuple(segments))


def read_below(base: Path, parts: tuple[str, ...], max_bytes: int = MAX_FILE_BYTES) -> bytes | None:
    """The bytes of the regular file at `parts` below `base`, or None when it is not one to serve.

    None for anything missing, unreadable, a symbolic link (at any component), a directory, a
    device or pipe, a file with more than one hard link, or a file over `max_bytes`.
    """
    opened: list[int] = []
    try:
        opened.append(os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        for name in parts[:-1]:
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            opened.append(os.open(name, flags, dir_fd=opened[-1]))
        # O_NONBLOCK: opening a named pipe must not wait for a writer; it is refused below.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        opened.append(os.open(parts[-1], flags, dir_fd=opened[-1]))
        info = os.fstat(opened[-1])
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_size > max_bytes:
            return None
        return _read_all(opened[-1], max_bytes)
    except OSError:
        return None
    finally:
        for descriptor in opened:
            os.close(descriptor)


def _read_all(descriptor: int, max_bytes: int) -> bytes | None:
    chunks, total = [], 0
    while chunk := os.read(descriptor, 1 << 20):
        total += len(chunk)
        if total > max_bytes:
            return None  # the file grew past the limit while being read
        chunks.append(chunk)
    return b"".join(chunks)
