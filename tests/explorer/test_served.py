"""`ape run serve` serves the built explorer under /explorer/ without being told to, beside the
protocols, as a file server: the bytes of web/dist, nothing computed."""

from __future__ import annotations

import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import browser
import pytest

from tracker.dev import explorer as page


def test_ape_run_serve_serves_the_built_explorer_by_default(tmp_path):
    dist = page.built_explorer(browser.PROJECT_ROOT)
    if not (dist / "index.html").exists():
        pytest.skip("the explorer is not built: run bin/setup (node web/build.mjs)")
    root = tmp_path / "publish"
    root.mkdir()
    ape = str(Path(sys.executable).parent / "ape")
    command = [ape, "run", "serve", str(root), "--port", "0", "--tls-dir", str(tmp_path / "tls")]
    process = subprocess.Popen(
        command, cwd=browser.PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not any(line.startswith("SHA-256 fingerprint:") for line in lines):
            assert time.monotonic() < deadline and process.poll() is None, "".join(lines)
            lines.append(process.stdout.readline())
        printed = next(line for line in lines if line.startswith("explorer:"))
        url = re.search(r"at (https://\S+/explorer/)", printed).group(1)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the generated self-signed certificate
        for name in ("", "app.js", "style.css"):
            with urllib.request.urlopen(url + name, context=context, timeout=10) as response:
                assert response.read() == (dist / (name or "index.html")).read_bytes()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
