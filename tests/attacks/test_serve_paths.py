"""What `ape run serve` hands out: the publish layout and the explorer's files, nothing else.

A request for any other path is answered 404 by its shape alone: the server's threads open nothing
on disk for it (watched with an audit hook on `open`). Paths of the right shape that lead to a
link, a pipe or a directory are refused too, and nothing of the secret outside the root leaks.
"""

from __future__ import annotations

import os
import sys
import threading

import pytest
from serve_attacks import (
    DOCUMENT,
    DOCUMENT_ID,
    PROJECT,
    PROTOCOL,
    PROTOCOL_ID,
    SECRET,
    exchange,
    get,
    make_publish_root,
    sha256,
)

from tracker.publish.server import ExplorerDirError, serve_in_thread

SERVER_THREADS = ("protocol-server-",)
# Every `open` made by a server thread while recording is on: (thread name, path).
_opened: list[tuple[str, str]] = []
_recording = threading.Event()


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _recording.is_set():
        name = threading.current_thread().name
        if name.startswith(SERVER_THREADS):
            _opened.append((name, str(args[0])))


sys.addaudithook(_audit)


@pytest.fixture(scope="module")
def explorer_dir(tmp_path_factory):
    explorer = tmp_path_factory.mktemp("explorer")
    outside = tmp_path_factory.mktemp("outside-explorer") / "secret.js"
    outside.write_bytes(SECRET)
    (explorer / "index.html").write_bytes(b"<!doctype html><title>explorer</title>")
    (explorer / "app.js").write_bytes(b"export const verify = () => true;\n")
    (explorer / "style.css").write_bytes(b"body{margin:0}")
    (explorer / "assets").mkdir()
    (explorer / "assets" / "logo.svg").write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    (explorer / "assets" / "verify.wasm").write_bytes(b"\x00asm\x01\x00\x00\x00")
    (explorer / "assets" / "data.bin").write_bytes(b"\x00\x01")
    (explorer / "sub").mkdir()
    (explorer / "sub" / "index.html").write_bytes(b"<p>sub</p>")
    (explorer / ".hidden.js").write_bytes(SECRET)
    (explorer / "link.js").symlink_to(outside)
    os.link(outside, explorer / "hard.js")
    return explorer


@pytest.fixture(scope="module")
def site(tmp_path_factory, explorer_dir):
    base = tmp_path_factory.mktemp("site")
    root = make_publish_root(base)
    server = serve_in_thread(root, "127.0.0.1", 0, tls_dir=base / "tls", explorer=explorer_dir)
    yield server
    server.stop()


def test_a_document_is_immutable_under_its_id(site):
    response = get(site.port, f"/documents/{DOCUMENT_ID}.json")
    assert (response.status, response.body) == (200, DOCUMENT)
    assert response.headers["content-type"] == "application/json"
    assert response.headers["etag"] == f'"{DOCUMENT_ID}"'
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["access-control-allow-origin"] == "*"
    again = get(site.port, f"/documents/{DOCUMENT_ID}.json", headers=f'If-None-Match: "{DOCUMENT_ID}"\r\n')
    assert (again.status, again.body, again.headers["etag"]) == (304, b"", f'"{DOCUMENT_ID}"')


def test_a_protocol_is_revalidated_by_the_hash_of_its_content(site):
    path = site.root / f"{PROTOCOL_ID}.json"
    response = get(site.port, f"/{PROTOCOL_ID}.json")
    assert (response.status, response.body) == (200, PROTOCOL)
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"] == f'"{sha256(PROTOCOL)}"'
    unchanged = get(site.port, f"/{PROTOCOL_ID}.json", headers=f'If-None-Match: W/"x", "{sha256(PROTOCOL)}"\r\n')
    assert (unchanged.status, unchanged.body) == (304, b"")
    grown = b'{"states":["one"]}'
    path.write_bytes(grown)
    try:
        changed = get(site.port, f"/{PROTOCOL_ID}.json", headers=f'If-None-Match: "{sha256(PROTOCOL)}"\r\n')
        assert (changed.status, changed.body, changed.headers["etag"]) == (200, grown, f'"{sha256(grown)}"')
    finally:
        path.write_bytes(PROTOCOL)


def test_head_answers_the_headers_of_get_without_the_body(site):
    response = get(site.port, f"/documents/{DOCUMENT_ID}.json", method="HEAD")
    assert (response.status, response.headers["content-length"], response.body) == (200, str(len(DOCUMENT)), b"")


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/.env",
        "/.git/config",
        "/.git/",
        "/notes.txt",
        "/index.html",
        "/documents",
        "/documents/",
        f"/documents/{DOCUMENT_ID}.json.bak",
        f"/documents/{DOCUMENT_ID}",
        f"/{DOCUMENT_ID}.JSON",
        f"/{'A' * 64}.json",
        f"/{'a' * 63}.json",
        f"/{'a' * 65}.json",
        f"/documents/{PROTOCOL_ID}.json/",
        f"//{PROTOCOL_ID}.json",
        f"/./{PROTOCOL_ID}.json",
        f"/documents/../{PROTOCOL_ID}.json",
        f"/%64ocuments/{DOCUMENT_ID}.json",
        f"/documents%2f{DOCUMENT_ID}.json",
        f"/{PROTOCOL_ID}%2ejson",
        "/../outside/secret.json",
        "/%2e%2e/outside/secret.json",
        "/documents/..%2f..%2foutside%2fsecret.json",
        "/documents/%2e%2e%5c..%5coutside%5csecret.json",
        "/documents/a.json%00.txt",
        "/%ff.json",
        f"https://localhost/{PROTOCOL_ID}.json",
        f"/explorer/../{PROTOCOL_ID}.json",
        "/explorer/.hidden.js",
        "/explorer/%2e%2e/outside/secret.js",
        "/explorer/assets/../app.js",
        "/explorer//app.js",
        "/explorer/app.js%00",
        "/explorerx/app.js",
    ],
)
def test_any_other_path_is_404_without_touching_the_disk(site, path):
    _opened.clear()
    _recording.set()
    try:
        response = get(site.port, path)
    finally:
        _recording.clear()
    assert (response.status, response.body) == (404, b"not found\n")
    assert _opened == []


@pytest.mark.parametrize("target", ["*", "/a b", "/\x7f", "no-slash"])
def test_a_malformed_request_target_gets_one_400_without_touching_the_disk(site, target):
    _opened.clear()
    _recording.set()
    try:
        result = exchange(site.port, f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    finally:
        _recording.clear()
    assert [response.status for response in result.responses] == [400]
    assert result.closed_by_server
    assert _opened == []


def test_the_audit_hook_does_see_the_server_open_files(site):
    """The check above is not vacuous: serving a real document opens files on a server thread."""
    _opened.clear()
    _recording.set()
    try:
        assert get(site.port, f"/documents/{DOCUMENT_ID}.json").status == 200
    finally:
        _recording.clear()
    assert [path for _name, path in _opened][-1] == f"{DOCUMENT_ID}.json"
    assert all(name.startswith("protocol-server-files") for name, _path in _opened)


@pytest.mark.parametrize(
    "path",
    [
        f"/{'a1' * 32}.json",  # a hard link to the secret outside the root
        f"/documents/{'a2' * 32}.json",  # the same, under documents/
        f"/{'b1' * 32}.json",  # a symbolic link to the secret
        f"/documents/{'b2' * 32}.json",
        f"/{'b3' * 32}.json",  # a symbolic link to a document inside the root: refused all the same
        f"/{'f0' * 32}.json",  # a named pipe: refused, and the open does not wait for a writer
        f"/{'e0' * 32}.json",  # a directory
        f"/{'ff' * 32}.json",  # a file over 64 MiB
        f"/{'99' * 32}.json",  # nothing at all
    ],
)
def test_links_pipes_directories_and_huge_files_of_the_right_name_are_refused(site, path):
    response = get(site.port, path)
    assert (response.status, response.body) == (404, b"not found\n")


def test_a_documents_directory_that_is_a_link_is_refused(tmp_path):
    root, elsewhere = tmp_path / "publish", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (elsewhere / f"{DOCUMENT_ID}.json").write_bytes(SECRET)
    (root / "documents").symlink_to(elsewhere)
    with serve_in_thread(root, "127.0.0.1", 0, tls_dir=tmp_path / "tls") as server:
        assert get(server.port, f"/documents/{DOCUMENT_ID}.json").status == 404


@pytest.mark.parametrize(
    ("path", "content_type", "content"),
    [
        ("/explorer/", "text/html; charset=utf-8", b"<!doctype html><title>explorer</title>"),
        ("/explorer/index.html", "text/html; charset=utf-8", b"<!doctype html><title>explorer</title>"),
        ("/explorer/app.js", "text/javascript; charset=utf-8", b"export const verify = () => true;\n"),
        ("/explorer/style.css?v=3", "text/css; charset=utf-8", b"body{margin:0}"),
        ("/explorer/assets/logo.svg", "image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
        ("/explorer/assets/verify.wasm", "application/wasm", b"\x00asm\x01\x00\x00\x00"),
        ("/explorer/assets/data.bin", "application/octet-stream", b"\x00\x01"),
        ("/explorer/sub/", "text/html; charset=utf-8", b"<p>sub</p>"),
    ],
)
def test_the_explorer_files_are_served_with_their_content_types(site, path, content_type, content):
    response = get(site.port, path)
    assert (response.status, response.headers["content-type"], response.body) == (200, content_type, content)
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"] == f'"{sha256(content)}"'


@pytest.mark.parametrize(
    "path",
    ["/explorer/link.js", "/explorer/hard.js", "/explorer/assets", "/explorer/missing.js", "/explorer/assets/"],
)
def test_explorer_links_directories_and_missing_files_are_404(site, path):
    response = get(site.port, path)
    assert (response.status, response.body) == (404, b"not found\n")
    assert SECRET not in response.body


def test_the_bare_explorer_path_redirects_to_its_index(site):
    response = get(site.port, "/explorer")
    assert (response.status, response.headers["location"]) == (301, "/explorer/")


def test_without_an_explorer_directory_there_is_no_explorer(tmp_path, explorer_dir):
    root = tmp_path / "publish"
    root.mkdir()
    (root / "explorer").symlink_to(explorer_dir)  # even one inside the publish root
    with serve_in_thread(root, "127.0.0.1", 0, tls_dir=tmp_path / "tls") as server:
        assert [get(server.port, path).status for path in ("/explorer/", "/explorer", "/explorer/app.js")] == [404] * 3


def test_a_missing_explorer_directory_is_one_clear_error(tmp_path):
    with pytest.raises(ExplorerDirError) as error:
        serve_in_thread(tmp_path, "127.0.0.1", 0, tls_dir=tmp_path / "tls", explorer=tmp_path / "nope")
    assert str(error.value) == f"explorer directory {tmp_path / 'nope'} does not exist or is not a directory"


def test_ape_run_serve_with_a_missing_explorer_directory_is_one_line(tmp_path):
    import importlib.util

    from click.testing import CliRunner

    spec = importlib.util.spec_from_file_location("attacks_serve_script", PROJECT / "scripts" / "serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    arguments = [
        str(tmp_path),
        "--port",
        "0",
        "--tls-dir",
        str(tmp_path / "tls"),
        "--explorer-dir",
        str(tmp_path / "no"),
    ]
    result = CliRunner(mix_stderr=False).invoke(module.cli, arguments)
    assert result.exit_code == 1
    assert result.stderr == f"Error: explorer directory {tmp_path / 'no'} does not exist or is not a directory\n"
