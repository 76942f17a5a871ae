"""Verify instance protocols against anvil: time for 1,000 states (batched reads with concurrent
downloads, and the same with one call per state and sequential downloads, in the same run), and
the peak memory of `ape run verify` on a 10,000-state protocol in its own process.

Run as `.venv/bin/python bench/verify.py` (bin/bench runs it too). It starts its own anvil through
ape, deploys InstanceTracker at its canonical address, installs ENS from ENS's npm builds and links
the client's name to the protocol server, registers the states (500 per transaction), publishes
their documents and the protocols into a temporary directory served over TLS on loopback by `ape
run serve` in its own process (the publisher's server is never the verifier's process), times
`verify_protocol` both ways, then runs `ape run verify --json` on the 10,000-state protocol as a
user would (attached to the same anvil by its URI) and reads its peak RSS from the kernel
(`wait4`'s `ru_maxrss`, through the small launcher of `tracker.dev.memory`: started straight from
this process, the command would report at least this process's own size). It prints a table and
writes bench/results/verify.json; it never fails on a figure.
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
LARGE_STATE_COUNT = 10_000
STATES_PER_TRANSACTION = 500
TARGET_SECONDS = 1.5
TARGET_PEAK_RSS_MB = 200
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


def _documents(label: str, count: int):
    from tracker.documents.facts import InstanceFacts, StateFacts, model_document

    model = model_document('{"StartAt":"Work","States":{"Work":{"Type":"Pass","End":true}}}')
    facts = InstanceFacts(
        execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:bench:{label}",
        state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:bench",
        name=label,
        start_date_ms=1_700_000_000_000,
        model_id=model.id,
        input_sha256="0" * 64,
    )
    states, previous = [], ""
    instance = facts.document()
    for seq in range(count):
        state = StateFacts(
            instance.id, seq, previous, 0, seq + 2, "PassStateEntered", f"S{seq}", 1_700_000_000_000 + seq
        ).document()
        states.append(state)
        previous = state.id
    return facts, model, instance, states


def _publish(root: Path, server: ServedDirectory, tracker, client, label: str, count: int) -> str:
    """Registers `count` states under the client and writes their documents and the protocol under `root`."""
    from ape import chain

    from tracker.documents.facts import chain_head
    from tracker.documents.ids import normalize_address
    from tracker.documents.protocol import InstanceProtocol, ProtocolEntry

    facts, model, instance, states = _documents(label, count)
    owner = normalize_address(str(client.address))
    x = facts.execution_id
    ids = [state.id for state in states]
    sent = [
        tracker.send([tracker.register_execution_call(owner, x, model.id, instance.id, ids[:STATES_PER_TRANSACTION])])
    ]
    for start in range(STATES_PER_TRANSACTION, count, STATES_PER_TRANSACTION):
        chunk = ids[start : start + STATES_PER_TRANSACTION]
        sent.append(tracker.send([tracker.register_states_call(owner, x, start, chunk)]))
    (root / "documents").mkdir(parents=True, exist_ok=True)
    for document in [model, instance, *states]:
        (root / "documents" / f"{document.id}.json").write_bytes(document.content)
    times = {s.block_number: int(chain.blocks[s.block_number].timestamp) for s in sent}
    entries = []
    for seq, state_id in enumerate(ids):
        transaction = sent[seq // STATES_PER_TRANSACTION]
        entries.append(
            ProtocolEntry(
                state_hash=state_id,
                timestamp=times[transaction.block_number],
                block_nr=transaction.block_number,
                client_address=owner,
                transaction_hash=transaction.transaction_hash,
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
        contract_address=normalize_address(tracker.address),
        state_count=count,
        accumulator_head=chain_head(x, model.id, instance.id, ids),
        execution_id=x,
        owner=owner,
        mode="direct",
        final=False,
    )
    (root / f"{instance.id}.json").write_bytes(protocol.to_bytes())
    return server.url(f"{instance.id}.json")


def _verify_in_own_process(url: str, node_uri: str) -> dict:
    """`ape run verify URL --json` attached to the bench's anvil: its verdict, time and peak RSS."""
    from tracker.dev.memory import run_measured

    command = [
        str(Path(sys.executable).parent / "ape"),
        "run",
        "verify",
        url,
        "--network",
        f"ethereum:local:{node_uri}",
        "--json",
        "--timeout",
        "30",
    ]
    started = time.perf_counter()
    measured = run_measured(command, cwd=ROOT)
    seconds = time.perf_counter() - started
    out, err = measured.stdout, measured.stderr
    try:
        report = json.loads(out[out.find(b"{") :])  # after anything a plugin printed first
    except json.JSONDecodeError:
        report = {"verdict": f"no JSON report: {(out or err).decode(errors='replace').strip()[-300:]}"}
    return {
        "exit_code": measured.exit_code,
        "verdict": report.get("verdict"),
        "seconds": round(seconds, 2),
        "peak_rss_mb": measured.peak_rss_mb,
        "stderr": err.decode(errors="replace").strip()[-300:],
    }


def measure() -> dict:
    from ape import accounts, chain

    from tracker.chain.contract import TrackerContract
    from tracker.cli.options import connected
    from tracker.dev import ens as dev_ens
    from tracker.identity import ens
    from tracker.identity.deploy import deploy_canonical
    from tracker.publish.certificates import sign_fingerprint
    from tracker.verify.report import VerifyOptions
    from tracker.verify.verifier import verify_protocol

    with tempfile.TemporaryDirectory(prefix="bench-verify-") as temporary:
        os.environ["TRACKER_PROJECT"] = str(Path(temporary) / "project")  # the deployment record stays here
        with connected(NETWORK):
            deployer, client = accounts.test_accounts[0], accounts.test_accounts[1]
            tracker = TrackerContract(deploy_canonical(deployer).contract.contract, client)
            root = Path(temporary) / "publish"
            root.mkdir()
            with served(root, Path(temporary) / "tls") as server:
                tracker.contract.registerCertificate(
                    bytes.fromhex(server.fingerprint), sign_fingerprint(client, server.fingerprint), sender=client
                )
                dev_ens.install_local_ens(deployer)
                dev_ens.register_name(client, ENS_NAME)
                ens.link_identity(client, ENS_NAME, server.origin)
                url = _publish(root, server, tracker, client, "run-1k", STATE_COUNT)
                large_url = _publish(root, server, tracker, client, "run-10k", LARGE_STATE_COUNT)
                small_url = _publish(root, server, tracker, client, "run-1", 1)
                batched = verify_protocol(url, tracker, VerifyOptions(timeout=10.0))
                single = verify_protocol(url, tracker, VerifyOptions(timeout=10.0, batched=False))
                again = verify_protocol(url, tracker, VerifyOptions(timeout=10.0))
                large = _verify_in_own_process(large_url, chain.provider.uri)
                small = _verify_in_own_process(small_url, chain.provider.uri)
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
        "contract_source": batched.contract_source,
        "states_10k": LARGE_STATE_COUNT,
        "peak_rss_mb_10k": large["peak_rss_mb"],
        "target_peak_rss_mb_10k": TARGET_PEAK_RSS_MB,
        "peak_rss_mb_1": small["peak_rss_mb"],
        "peak_rss_mb_10k_over_1": round(large["peak_rss_mb"] - small["peak_rss_mb"], 1),
        "seconds_10k_own_process": large["seconds"],
        "verdict_10k": large["verdict"],
        "exit_code_10k": large["exit_code"],
        "verdict_1": small["verdict"],
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
    table = Table(title="verify instance protocols on anvil (all five checks)")
    for column in ("what", "figure", "verdict", "target"):
        table.add_column(column, justify="right" if column == "figure" else "left")
    met = "met" if figures["seconds_batched"] <= TARGET_SECONDS else "MISSED"
    table.add_row(
        f"{STATE_COUNT:,} states, batched reads, concurrent downloads",
        f"{figures['seconds_batched']:.3f} s",
        figures["verdict_batched"],
        f"<= {TARGET_SECONDS:g} s ({met})",
    )
    table.add_row("same, second run", f"{figures['seconds_batched_second_run']:.3f} s", "", "")
    table.add_row(
        f"{STATE_COUNT:,} states, one call per state, sequential downloads",
        f"{figures['seconds_one_call_per_state']:.3f} s",
        figures["verdict_one_call_per_state"],
        f"{figures['speedup']}x slower" if figures["speedup"] else "",
    )
    met = "met" if figures["peak_rss_mb_10k"] <= TARGET_PEAK_RSS_MB else "MISSED"
    table.add_row(
        f"{LARGE_STATE_COUNT:,} states, `ape run verify` in its own process, peak RSS",
        f"{figures['peak_rss_mb_10k']:.0f} MB ({figures['seconds_10k_own_process']:.1f} s)",
        str(figures["verdict_10k"]),
        f"<= {TARGET_PEAK_RSS_MB} MB ({met})",
    )
    table.add_row(
        "1 state, the same command: what the process costs before any state",
        f"{figures['peak_rss_mb_1']:.0f} MB",
        str(figures["verdict_1"]),
        f"10,000 states add {figures['peak_rss_mb_10k_over_1']:.0f} MB",
    )
    Console().print(table)
    print(f"wrote {RESULTS_FILE.relative_to(ROOT)} ({time.perf_counter() - started:.1f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
