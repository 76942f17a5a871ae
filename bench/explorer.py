"""The explorer's time to a verdict in headless Chromium: an 11-state and a 1,000-state protocol on
anvil, the page served by `ape run serve` (in its own process, beside the protocols) and the chain
read through anvil's JSON-RPC; `verify_protocol` (what `ape run verify` runs) on the same
protocols for comparison; and the size of the page's bundle.

Run as `.venv/bin/python bench/explorer.py` (bin/bench runs it too). It sets up the chain, ENS,
certificate and protocols as bench/verify.py does (its helpers), opens each protocol in the page
with Debian's chromium through selenium (tracker.dev.explorer) and takes the page's own
measurement from the protocol's fetch to its verdict; each protocol twice (the second run finds
the documents in the browser's cache, revalidated). It prints a table and writes
bench/results/explorer.json; it never fails on a figure.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/ itself is not on the path (its tracker.py would hide the tracker package).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
RESULTS_FILE = ROOT / "bench" / "results" / "explorer.json"
NETWORK = "ethereum:local:foundry"
SIZES = (11, 1_000)
ENS_NAME = "bench-client.eth"
BUNDLE_LIMIT_GZIP_KB = 300


def _bench_module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def bundle_size() -> dict:
    dist = ROOT / "web" / "dist"
    files = [path for path in dist.iterdir() if path.is_file() and not path.name.startswith(".")]
    raw = sum(path.stat().st_size for path in files)
    zipped = sum(len(gzip.compress(path.read_bytes(), 9)) for path in files)
    return {"bundle_kb": round(raw / 1024, 1), "bundle_gzip_kb": round(zipped / 1024, 1)}


def measure() -> dict:
    from ape import accounts, chain

    from tracker.chain.contract import TrackerContract
    from tracker.cli.options import connected
    from tracker.dev import ens as dev_ens
    from tracker.dev import explorer
    from tracker.identity import ens
    from tracker.identity.deploy import deploy_canonical
    from tracker.publish.certificates import sign_fingerprint
    from tracker.verify.report import VerifyOptions
    from tracker.verify.verifier import verify_protocol

    reason = explorer.missing(ROOT)
    if reason is not None:
        raise SystemExit(f"bench/explorer.py: {reason}")
    verify_bench = _bench_module("verify")
    figures: dict = {"network": NETWORK, **bundle_size(), "bundle_limit_gzip_kb": BUNDLE_LIMIT_GZIP_KB}
    with tempfile.TemporaryDirectory(prefix="bench-explorer-") as temporary:
        os.environ["TRACKER_PROJECT"] = str(Path(temporary) / "project")
        with connected(NETWORK):
            deployer, client = accounts.test_accounts[0], accounts.test_accounts[1]
            tracker = TrackerContract(deploy_canonical(deployer).contract.contract, client)
            root = Path(temporary) / "publish"
            root.mkdir()
            with verify_bench.served(root, Path(temporary) / "tls") as server:
                tracker.contract.registerCertificate(
                    bytes.fromhex(server.fingerprint), sign_fingerprint(client, server.fingerprint), sender=client
                )
                dev_ens.install_local_ens(deployer)
                dev_ens.register_name(client, ENS_NAME)
                ens.link_identity(client, ENS_NAME, server.origin)
                driver = explorer.start_browser()
                try:
                    for count in SIZES:
                        url = verify_bench._publish(root, server, tracker, client, f"page-{count}", count)
                        page = explorer.page_url(server.origin, url, chain.provider.uri)
                        runs = []
                        for _ in range(2):
                            driver.get("about:blank")  # a new document: the same URL would not reload
                            opened = time.perf_counter()
                            driver.get(page)
                            found = explorer.wait_for_verdict(driver, timeout=300)
                            runs.append((found, time.perf_counter() - opened))
                            steps = driver.execute_script("return document.body.dataset.timings")
                        python = verify_protocol(url, tracker, VerifyOptions(timeout=10.0))
                        figures |= {
                            f"page_seconds_{count}": round(runs[0][0].seconds, 3),
                            f"page_seconds_second_run_{count}": round(runs[1][0].seconds, 3),
                            f"seconds_from_opening_the_page_{count}": round(runs[0][1], 3),
                            f"page_verdict_{count}": runs[0][0].verdict,
                            # ms from the protocol's fetch to each step, on the second run
                            f"page_steps_ms_{count}": json.loads(steps or "{}"),
                            f"verify_protocol_seconds_{count}": round(python.seconds, 3),
                            f"verify_protocol_verdict_{count}": python.verdict,
                        }
                finally:
                    driver.quit()
    figures["cpu_count"] = os.cpu_count()
    return figures


def main() -> int:
    os.chdir(ROOT)  # ape finds the project from the working directory
    sys.path.insert(0, str(ROOT / "src"))
    from rich.console import Console
    from rich.table import Table

    figures = measure()
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(figures, indent=2) + "\n")
    table = Table(title="the explorer in headless Chromium (anvil, ape run serve on loopback TLS)")
    for column in ("what", "figure", "verdict", "beside"):
        table.add_column(column, justify="right" if column == "figure" else "left")
    for count in SIZES:
        table.add_row(
            f"{count:,} states, time to the page's verdict",
            f"{figures[f'page_seconds_{count}']:.2f} s",
            figures[f"page_verdict_{count}"],
            f"verify_protocol {figures[f'verify_protocol_seconds_{count}']:.2f} s "
            f"({figures[f'verify_protocol_verdict_{count}']})",
        )
        table.add_row("same, second run", f"{figures[f'page_seconds_second_run_{count}']:.2f} s", "", "")
    met = "met" if figures["bundle_gzip_kb"] <= BUNDLE_LIMIT_GZIP_KB else "MISSED"
    table.add_row(
        "the page (app.js, index.html, style.css), gzipped",
        f"{figures['bundle_gzip_kb']:.0f} KB",
        "",
        f"<= {BUNDLE_LIMIT_GZIP_KB} KB ({met}); {figures['bundle_kb']:.0f} KB raw",
    )
    Console().print(table)
    print(f"wrote {RESULTS_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
