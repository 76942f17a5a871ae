"""Verify a 1,000-state instance protocol against anvil: batched reads with concurrent downloads, and
the same verification with one call per state and sequential downloads, in the same run.

Run as `.venv/bin/python bench/verify.py` (bin/bench runs it too). It starts its own anvil through
ape, deploys InstanceTracker, installs ENS from ENS's npm builds and links the client's name to the
protocol server, registers 1,000 states (two transactions), publishes their documents and the
protocol into a temporary directory served over TLS on loopback by `ape run serve` in its own
process (the publisher's server is never the verifier's process), then times `verify_protocol`
both ways. It prints a table and writes bench/results/verify.json; it never fails on a figure.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_FILE = ROOT / "bench" / "results" / "verify.json"
NETWORK = "ethereum:local:foundry"
STATE_COUNT = 1_000
STATES_PER_TRANSACTION = 500
TARGET_SECONDS = 3.0
ENS_NAME = "bench-client.eth"


SERVER_START_SECONDS = 60.0


@dataclass(frozen=True)
class ServedDirectory:
    """A publish directory served by `ape run serve` in a child process."""

    origin: str
    fingerprint: str

    def url(self, path: str) -> str:
        return f"{self.origin}/{path}"


@contextlib.contextmanager
def served(root: Path, tls_dir: Path) -> Iterator[ServedDirectory]:
    """Runs `ape run serve` on a free loopback port until the block ends."""
    from tracker.dev.services import free_port
    from tracker.publish.server import certificate_fingerprint

    port = free_port()
    command = [
        str(Path(sys.executable).parent / "ape"),
        "run",
        "serve",
        str(root),
        "--port",
        str(port),
        "--tls-dir",
        str(tls_dir),
        "--quiet",
    ]
    log = tls_dir.parent / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"ape run serve exited: {log.read_text(errors='replace').strip()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"ape run serve did not listen on port {port} within {SERVER_START_SECONDS:g} s")
            time.sleep(0.2)
        yield ServedDirectory(f"https://127.0.0.1:{port}", certificate_fingerprint(tls_dir / "server.crt"))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _documents(count: int):
    from tracker.documents.facts import InstanceFacts, StateFacts, model_document

    model = model_document('{"StartAt":"Work","States":{"Work":{"Type":"Pass","End":true}}}')
    instance = InstanceFacts(
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:bench:run-1",
        state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:bench",
        name="run-1",
        start_date_ms=1_700_000_000_000,
        model_id=model.id,
        input_sha256="0" * 64,
    ).document()
    states, previous = [], ""
    for seq in range(count):
        state = StateFacts(
            instance.id, seq, previous, seq + 2, "PassStateEntered", f"S{seq}", 1_700_000_000_000 + seq
        ).document()
        states.append(state)
        previous = state.id
    return model, instance, states


def _publish(root: Path, server, tracker, client, count: int):
    """Registers `count` states on chain and writes their documents and the protocol under `root`."""
    from ape import chain

    from tracker.documents.protocol import InstanceProtocol, ProtocolEntry

    model, instance, states = _documents(count)
    ids = [state.id for state in states]
    receipts = [
        tracker.send_batch([tracker.register_execution_call(model.id, instance.id, ids[:STATES_PER_TRANSACTION])])
    ]
    for start in range(STATES_PER_TRANSACTION, count, STATES_PER_TRANSACTION):
        chunk = ids[start : start + STATES_PER_TRANSACTION]
        receipts.append(tracker.send_batch([tracker.register_states_call(instance.id, start, chunk)]))
    (root / "documents").mkdir(parents=True, exist_ok=True)
    for document in [model, instance, *states]:
        (root / "documents" / f"{document.id}.json").write_bytes(document.content)
    entries = []
    for seq, state_id in enumerate(ids):
        receipt = receipts[seq // STATES_PER_TRANSACTION]
        entries.append(
            ProtocolEntry(
                state_hash=state_id,
                timestamp=int(chain.blocks[receipt.block_number].timestamp),
                block_nr=int(receipt.block_number),
                client_address=str(client.address).lower()[2:],
                transaction_hash=str(receipt.txn_hash).lower()[2:],
                state_data=server.url(f"documents/{state_id}.json"),
                seq=seq,
            )
        )
    protocol = InstanceProtocol(
        model.id,
        instance.id,
        server.url(f"documents/{model.id}.json"),
        server.url(f"documents/{instance.id}.json"),
        entries,
        chain_id=int(chain.chain_id),
        contract_address=tracker.address.lower()[2:],
    )
    (root / f"{instance.id}.json").write_bytes(protocol.to_bytes())
    return server.url(f"{instance.id}.json")


def measure() -> dict:
    from ape import accounts

    from tracker.chain.contract import TrackerContract
    from tracker.cli.options import connected
    from tracker.dev import ens as dev_ens
    from tracker.identity.deploy import ens
    from tracker.publish.certificates import sign_fingerprint
    from tracker.verify.report import VerifyOptions
    from tracker.verify.verifier import verify_protocol

    with connected(NETWORK), tempfile.TemporaryDirectory(prefix="bench-verify-") as temporary:
        deployer, client = accounts.test_accounts[0], accounts.test_accounts[1]
        tracker = TrackerContract(TrackerContract.deploy(deployer).contract, client)
        root = Path(temporary) / "publish"
        root.mkdir()
        with served(root, Path(temporary) / "tls") as server:
            tracker.contract.registerCertificate(
                bytes.fromhex(server.fingerprint), sign_fingerprint(client, server.fingerprint), sender=client
            )
            dev_ens.install_local_ens(deployer)
            dev_ens.assign_name(deployer, ENS_NAME, str(client.address))
            ens.link_identity(client, ENS_NAME, server.origin)
            url = _publish(root, server, tracker, client, STATE_COUNT)
            batched = verify_protocol(url, tracker, VerifyOptions(timeout=10.0))
            single = verify_protocol(url, tracker, VerifyOptions(timeout=10.0, batched=False))
            again = verify_protocol(url, tracker, VerifyOptions(timeout=10.0))
    return {
        "states": STATE_COUNT,
        "network": NETWORK,
        "seconds_batched": round(batched.seconds, 3),
        "seconds_batched_second_run": round(again.seconds, 3),
        "seconds_one_call_per_state": round(single.seconds, 3),
        "speedup": round(single.seconds / batched.seconds, 1) if batched.seconds else None,
        "target_seconds": TARGET_SECONDS,
        "verdict_batched": batched.verdict,
        "verdict_one_call_per_state": single.verdict,
        "download_concurrency": VerifyOptions.concurrency,
        "cpu_count": os.cpu_count(),
    }


def main() -> int:
    os.chdir(ROOT)  # ape finds the project (contracts, ape-config.yaml) from the working directory
    sys.path.insert(0, str(ROOT / "src"))
    from rich.console import Console
    from rich.table import Table

    started = time.perf_counter()
    figures = measure()
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(figures, indent=2) + "\n")
    table = Table(title=f"verify a {STATE_COUNT:,}-state protocol on anvil (all five checks)")
    table.add_column("strategy")
    table.add_column("seconds", justify="right")
    table.add_column("verdict")
    table.add_column("target")
    met = "met" if figures["seconds_batched"] <= TARGET_SECONDS else "MISSED"
    table.add_row(
        "batched reads, concurrent downloads",
        f"{figures['seconds_batched']:.3f}",
        figures["verdict_batched"],
        f"<= {TARGET_SECONDS:g} s ({met})",
    )
    table.add_row("same, second run", f"{figures['seconds_batched_second_run']:.3f}", "", "")
    table.add_row(
        "one call per state, sequential downloads",
        f"{figures['seconds_one_call_per_state']:.3f}",
        figures["verdict_one_call_per_state"],
        f"{figures['speedup']}x slower" if figures["speedup"] else "",
    )
    Console().print(table)
    print(f"wrote {RESULTS_FILE.relative_to(ROOT)} ({time.perf_counter() - started:.1f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
