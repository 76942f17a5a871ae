"""Requests an attacker shapes: other methods, bodies that smuggle a second request, old TLS.

Each case asserts the exact responses on the connection, parsed by their framing, so that a body
read as a request would show up as a response too many.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import warnings

import pytest
from serve_attacks import DOCUMENT, DOCUMENT_ID, PROTOCOL_ID, client_context, exchange, make_publish_root

from tracker.publish.certificates import generate_self_signed
from tracker.publish.server import serve_in_thread


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("site")
    server = serve_in_thread(make_publish_root(base), "127.0.0.1", 0, tls_dir=base / "tls")
    yield server
    server.stop()


def request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n"
    return head.encode() + body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"])
def test_methods_other_than_get_and_head_get_405_with_allow(site, method):
    result = exchange(site.port, request(method, f"/documents/{DOCUMENT_ID}.json", "Connection: close"))
    [response] = result.responses
    assert (response.status, response.headers["allow"], response.body) == (405, "GET, HEAD", b"method not allowed\n")


def test_a_method_http_does_not_know_gets_one_400_and_the_connection_closes(site):
    result = exchange(site.port, request("BREW", f"/documents/{DOCUMENT_ID}.json"))
    assert [response.status for response in result.responses] == [400]
    assert result.closed_by_server


def test_a_body_on_a_get_is_not_read_as_a_second_request(site):
    """The report's attack: a GET whose Content-Length body is itself a request, and a third behind it."""
    smuggled = request("GET", f"/{PROTOCOL_ID}.json")
    data = request("GET", f"/documents/{DOCUMENT_ID}.json", f"Content-Length: {len(smuggled)}", body=smuggled)
    result = exchange(site.port, data + request("GET", f"/{PROTOCOL_ID}.json"))
    assert [response.status for response in result.responses] == [400]
    assert result.responses[0].headers["connection"] == "close"
    assert result.closed_by_server


@pytest.mark.parametrize(
    "headers",
    [
        ("Transfer-Encoding: chunked",),
        ("Content-Length: 5",),
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_any_request_body_gets_one_400_and_the_connection_closes(site, method, headers):
    body = b"5\r\nhello\r\n0\r\n\r\n" if "chunked" in headers[0] else b"hello"
    data = request(method, f"/documents/{DOCUMENT_ID}.json", *headers, body=body)
    result = exchange(site.port, data + request("GET", f"/documents/{DOCUMENT_ID}.json"), head_request=method == "HEAD")
    assert [response.status for response in result.responses] == [400]
    assert result.closed_by_server


def test_a_body_that_never_ends_does_not_hold_the_connection(site):
    data = request("GET", f"/documents/{DOCUMENT_ID}.json", "Content-Length: 1000000000", body=b"abc")
    result = exchange(site.port, data, wait=10)
    assert [response.status for response in result.responses] == [400]
    assert result.closed_by_server and result.seconds < 5


def test_a_post_with_a_body_gets_one_405_and_the_connection_closes(site):
    smuggled = request("GET", f"/{PROTOCOL_ID}.json")
    data = request("POST", f"/{PROTOCOL_ID}.json", f"Content-Length: {len(smuggled)}", body=smuggled)
    result = exchange(site.port, data)
    assert [response.status for response in result.responses] == [405]
    assert result.closed_by_server


def test_an_empty_content_length_is_no_body(site):
    result = exchange(site.port, request("GET", f"/documents/{DOCUMENT_ID}.json", "Content-Length: 0"), wait=1)
    assert [(response.status, response.body) for response in result.responses] == [(200, DOCUMENT)]


def test_content_length_and_chunked_together_are_refused(site):
    data = request(
        "GET", f"/documents/{DOCUMENT_ID}.json", "Content-Length: 4", "Transfer-Encoding: chunked", body=b"0\r\n\r\n"
    )
    result = exchange(site.port, data)
    assert [response.status for response in result.responses] == [400]
    assert result.closed_by_server


def test_pipelined_requests_on_a_kept_alive_connection_are_each_answered_once(site):
    one = request("GET", f"/documents/{DOCUMENT_ID}.json")
    result = exchange(site.port, one + request("GET", f"/{'99' * 32}.json") + one, wait=1.5)
    assert [(response.status, response.body) for response in result.responses] == [
        (200, DOCUMENT),
        (404, b"not found\n"),
        (200, DOCUMENT),
    ]
    assert not result.closed_by_server  # kept alive: the client decides when it is done


def test_a_header_block_over_the_limit_is_refused_with_one_response(site):
    data = request("GET", f"/documents/{DOCUMENT_ID}.json", "X-Pad: " + "a" * 20000)
    result = exchange(site.port, data)
    assert len(result.responses) == 1 and result.responses[0].status in (400, 431)
    assert result.closed_by_server


def _old_tls_client() -> ssl.SSLContext:
    context = client_context()
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


def test_tls_older_than_1_2_is_refused(site, tmp_path):
    # The control: this client does complete a TLS 1.1 handshake with a server that allows it, so
    # the refusal below is the protocol server's own.
    cert, key = generate_self_signed(["localhost"])
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    permissive.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        permissive.minimum_version = ssl.TLSVersion.TLSv1
    permissive.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def answer() -> None:
            connection, _ = listener.accept()
            with permissive.wrap_socket(connection, server_side=True):
                pass

        thread = threading.Thread(target=answer)
        thread.start()
        with _old_tls_client().wrap_socket(socket.create_connection(listener.getsockname(), timeout=5)) as tls:
            assert tls.version() in ("TLSv1", "TLSv1.1")
        thread.join(5)

    with pytest.raises(ssl.SSLError), socket.create_connection(("127.0.0.1", site.port), timeout=5) as plain:
        _old_tls_client().wrap_socket(plain)
    with client_context().wrap_socket(socket.create_connection(("127.0.0.1", site.port), timeout=5)) as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert tls.selected_alpn_protocol() in (None, "http/1.1")


def test_what_a_client_sends_reaches_the_log_as_one_printable_line(tmp_path):
    """No terminal escapes, no forged lines, no stack traces: at most one line per request. (Bytes
    that are not HTTP at all, on a fresh connection, are not logged.)"""
    lines: list[str] = []
    root = make_publish_root(tmp_path)
    with serve_in_thread(root, "127.0.0.1", 0, tls_dir=tmp_path / "tls", log=lines.append) as server:
        exchange(server.port, b"GET /\x1b[2J\rforged HTTP/1.1\r\nHost: localhost\r\n\r\n")
        exchange(server.port, request("GET", "/%1b[2J%0d%0aforged", "Connection: close"))
        exchange(server.port, b"\x16\x03\x01garbage that is not http\r\n\r\n")
        time.sleep(0.2)
    assert len(lines) == 2, lines
    assert all(line.isprintable() and "Traceback" not in line for line in lines), lines
    assert lines[0].startswith("Error handling request from 127.0.0.1: 400, message: Invalid char in url path")
    assert lines[1] == "127.0.0.1 GET /%1b[2J%0d%0aforged 404"
