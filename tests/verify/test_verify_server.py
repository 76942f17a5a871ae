"""The protocol server over real TLS on loopback: protocols and documents as JSON, no listings, no
way out of the root, the self-signed certificate kept across restarts, and one clear message per
bad setting. (tests/attacks/test_serve_*.py try harder to break it.)"""

from __future__ import annotations

import hashlib
import socket
import ssl

import pytest

from tracker.publish.certificates import generate_self_signed
from tracker.publish.server import CertificateFileError, PublishRootError, ServerStartError, serve_in_thread


def raw_get(server, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes, bytes]:
    """Sends the path exactly as given (no client-side normalisation); returns status, headers, body, peer DER."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((server.host, server.port), timeout=5) as plain:
        with context.wrap_socket(plain) as tls:
            der = tls.getpeercert(binary_form=True)
            tls.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body, der


DOCUMENT = "d0" * 32
PROTOCOL = "c1" * 32


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "publish"
    (root / "documents").mkdir(parents=True)
    (root / "documents" / f"{DOCUMENT}.json").write_bytes(b'{"a":1}')
    (root / f"{PROTOCOL}.json").write_bytes(b'{"states":[]}')
    (root / "notes.txt").write_text("hello")
    secret = tmp_path / "secret.json"
    secret.write_text('{"secret":true}')
    (root / "leak.json").symlink_to(secret)
    (root / f"{'e' * 64}.json").symlink_to(secret)
    server = serve_in_thread(root, "127.0.0.1", 0, tls_dir=tmp_path / "tls")
    yield server
    server.stop()


def test_protocols_and_documents_are_served_as_json(site):
    status, headers, body, _ = raw_get(site, f"/documents/{DOCUMENT}.json")
    assert (status, headers["Content-Type"], headers["Content-Length"], body) == (
        200,
        "application/json",
        "7",
        b'{"a":1}',
    )
    status, headers, body, _ = raw_get(site, f"/{PROTOCOL}.json")
    assert (status, headers["Content-Type"], body) == (200, "application/json", b'{"states":[]}')
    status, headers, body, _ = raw_get(site, f"/documents/{DOCUMENT}.json", method="HEAD")
    assert (status, headers["Content-Length"], body) == (200, "7", b"")


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/documents",
        "/documents/",
        "/../secret.json",
        "/documents/../../secret.json",
        "/%2e%2e/secret.json",
        "/documents/..%2f..%2fsecret.json",
        "/documents/%2e%2e%5c..%5csecret.json",
        "/leak.json",
        f"/{'e' * 64}.json",
        "/notes.txt",
        "//etc/passwd",
        "/documents/a.json%00.txt",
        "/%ff.json",
        "/missing.json",
    ],
)
def test_no_listing_no_traversal_no_symlink_out_of_the_root(site, path):
    status, _headers, body, _ = raw_get(site, path)
    assert (status, body) == (404, b"not found\n")
    assert b"secret" not in body


def test_only_get_and_head_are_answered(site):
    status, headers, _body, _ = raw_get(site, f"/documents/{DOCUMENT}.json", method="POST")
    assert (status, headers["Allow"]) == (405, "GET, HEAD")


def test_the_presented_certificate_is_the_one_printed(site):
    der = raw_get(site, f"/documents/{DOCUMENT}.json")[3]
    assert hashlib.sha256(der).hexdigest() == site.fingerprint


def test_self_signed_certificate_is_generated_once_and_kept(tmp_path):
    root = tmp_path / "publish"
    root.mkdir()
    first = serve_in_thread(root, "127.0.0.1", 0, tls_dir=tmp_path / "tls")
    first.stop()
    second = serve_in_thread(root, "127.0.0.1", 0, tls_dir=tmp_path / "tls")
    second.stop()
    assert first.tls.generated and not second.tls.generated
    assert first.fingerprint == second.fingerprint
    assert (tmp_path / "tls" / "server.key").stat().st_mode & 0o777 == 0o600


def test_given_certificate_and_key_are_used(tmp_path):
    cert_pem, key_pem = generate_self_signed(["example.test"])
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(key_pem)
    server = serve_in_thread(tmp_path, "127.0.0.1", 0, tmp_path / "c.pem", tmp_path / "k.pem")
    try:
        der = ssl.PEM_cert_to_DER_cert(cert_pem.decode())
        assert server.fingerprint == hashlib.sha256(der).hexdigest() and not server.tls.generated
    finally:
        server.stop()


def test_missing_publish_directory_is_one_clear_error(tmp_path):
    with pytest.raises(PublishRootError) as error:
        serve_in_thread(tmp_path / "nope", "127.0.0.1", 0, tls_dir=tmp_path / "tls")
    assert str(error.value) == f"publish directory {tmp_path / 'nope'} does not exist or is not a directory"


def test_cert_without_key_is_refused(tmp_path):
    with pytest.raises(CertificateFileError) as error:
        serve_in_thread(tmp_path, "127.0.0.1", 0, cert=tmp_path / "c.pem")
    assert str(error.value) == "give both --cert and --key, or neither for a self-signed certificate"


def test_missing_certificate_file_is_refused(tmp_path):
    with pytest.raises(CertificateFileError) as error:
        serve_in_thread(tmp_path, "127.0.0.1", 0, cert=tmp_path / "c.pem", key=tmp_path / "k.pem")
    assert str(error.value) == f"no such file: {tmp_path / 'c.pem'}"


def test_key_of_another_certificate_is_refused(tmp_path):
    cert_pem, _ = generate_self_signed(["localhost"])
    _, other_key = generate_self_signed(["localhost"])
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(other_key)
    with pytest.raises(CertificateFileError) as error:
        serve_in_thread(tmp_path, "127.0.0.1", 0, tmp_path / "c.pem", tmp_path / "k.pem")
    assert str(error.value).startswith(f"cannot use certificate {tmp_path / 'c.pem'} with key {tmp_path / 'k.pem'}: ")


def test_port_in_use_is_one_clear_error(site, tmp_path):
    with pytest.raises(ServerStartError) as error:
        serve_in_thread(tmp_path, "127.0.0.1", site.port, tls_dir=tmp_path / "tls")
    assert str(error.value) == f"cannot listen on 127.0.0.1:{site.port}: Address already in use"


def test_stopped_server_frees_its_port(tmp_path):
    server = serve_in_thread(tmp_path, "127.0.0.1", 0, tls_dir=tmp_path / "tls")
    port = server.port
    server.stop()
    again = serve_in_thread(tmp_path, "127.0.0.1", port, tls_dir=tmp_path / "tls")
    again.stop()
    assert again.port == port


def test_ape_run_serve_prints_origin_and_fingerprint_and_serves(tmp_path):
    """The real command in its own process: what it prints is what it presents; SIGINT stops it."""
    import re
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = tmp_path / "publish"
    (root / "documents").mkdir(parents=True)
    (root / "documents" / f"{DOCUMENT}.json").write_bytes(b'{"a":1}')
    ape = str(Path(sys.executable).parent / "ape")
    command = [ape, "run", "serve", str(root), "--port", "0", "--tls-dir", str(tmp_path / "tls"), "--quiet"]
    project = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not any(line.startswith("SHA-256 fingerprint:") for line in lines):
            assert time.monotonic() < deadline and process.poll() is None, "".join(lines)
            lines.append(process.stdout.readline())
        origin = re.search(r"at (https://127\.0\.0\.1:\d+)", "".join(lines)).group(1)
        printed = next(line for line in lines if line.startswith("SHA-256 fingerprint:")).split(": ")[1].strip()

        class Origin:
            host, port = "127.0.0.1", int(origin.rsplit(":", 1)[1])

        status, _headers, body, der = raw_get(Origin, f"/documents/{DOCUMENT}.json")
        assert (status, body) == (200, b'{"a":1}')
        assert hashlib.sha256(der).hexdigest() == printed
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 130


def test_ape_run_serve_with_a_missing_directory_is_one_line(tmp_path):
    import importlib.util
    from pathlib import Path

    from click.testing import CliRunner

    spec = importlib.util.spec_from_file_location(
        "verify_tests_serve_script", Path(__file__).resolve().parents[2] / "scripts" / "serve.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = CliRunner(mix_stderr=False).invoke(module.cli, [str(tmp_path / "nope"), "--port", "0"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: publish directory {tmp_path / 'nope'} does not exist or is not a directory\n"
