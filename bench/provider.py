"""Benchmark: index 100,000 InstanceTracker events through a hosted-provider emulator at its budget.

    .venv/bin/python bench/provider.py [--parts index,verify,track,deploy]
                                       [--events 100000] [--states-per-tx 400]
                                       [--small-events 5000] [--small-states-per-tx 13]
                                       [--track-executions 1000] [--track-block-time 12]

Starts its own anvil (a 100M block gas limit), produces the events as bench/indexer.py does
(registerExecution transactions of a few hundred states), indexes them once straight from
anvil, then once through tests/support's emulator imitating a hosted provider: 60 ms per
request, 330 compute units per second (one second of budget in its bucket, HTTP 429 past it),
Alchemy's eth_getLogs rule and a batch cap of 1,000 calls, with the indexer pacing itself with
`--rpc-budget 330`. Figures:

* `exact`: every table equal to the direct run's;
* `index_seconds`, the run through the emulator; `index_floor_seconds`, the compute units the
  emulator charged divided by 330 (no client can be faster at that budget, give or take the
  bucket's one second); `floor_ratio`, their ratio (target <= 1.3);
* `cu_per_event`, `rate_limited` (429s met and retried; none ended the run), `requests`.

A second, smaller chain of short transactions (`--small-states-per-tx`, 13 by default: one
execution of the reference size per transaction and block) gives the compute units per event of
a chain where every event has a block and a receipt of its own: `small_transactions`.

The commands through the same emulator (60 ms, 330 CU/s, HTTP 429 past it), ape connected to
it by URL as a user's `--network https://...` connects:

* `verify` (`--parts verify`): a 1,000-state protocol served over TLS by `ape run serve`, with
  ENS and a registered certificate, verified in-process: `verify_round_trips` (HTTP requests the
  emulator answered during `verify_protocol`; target <= 15) and `verify_seconds` (target <= 2);
  then `ape run verify --json` in its own process through the emulator (`verify_command_*`,
  what ape's start-up adds).
* `track` (`--parts track`): 20,000 states (1,000 synthetic executions of 20) tracked by the
  engine behind `ape run track_execution` with anvil mining every 12 s (`--track-block-time`),
  while a thread drops pending transactions from anvil's pool (`anvil_dropTransaction`) and
  raises the next block's base fee (`anvil_setNextBlockBaseFeePerGas`). `track_states_per_s`
  against the lower of two floors: block gas limit / gas per state / block time, and 330 CU/s /
  the compute units per state the run spent (target >= 60% of it); `registered_twice` counts
  (key, seq) pairs with more than one StateRegistered event (target 0).
* `deploy` (`--parts deploy`): `ape run deploy` with a client id, an ENS name and a certificate,
  anvil mining every 12 s: `deploy_round_trips`, `deploy_seconds`, every step done.

`--parts` runs some of them (default: all) and keeps the other figures of the results file.
Prints a table and writes bench/results/provider.json. Never fails on timing.
Postgres: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from web3 import HTTPProvider, Web3

ROOT = Path(__file__).resolve().parents[1]
# bench/ itself is not on the path (its tracker.py would hide the tracker package); tests/ is, for the emulator.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT / "tests"))


def _bench_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


_indexer_bench = _bench_module("indexer")
produce, start_anvil = _indexer_bench.produce, _indexer_bench.start_anvil

from support.hosted_provider import HostedProvider, Rules  # noqa: E402
from support.tables import differences, schema_snapshot  # noqa: E402

from tracker.chain.rpc import JsonRpc, RpcBudget, RpcOptions  # noqa: E402
from tracker.indexer.engine import BatchReport, IndexConfig, index  # noqa: E402
from tracker.indexer.store import drop_schema  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "provider.json"
LATENCY_S = 0.06
BUDGET = 330.0
MAX_BATCH = 1000
PARTS = ("index", "verify", "track", "deploy")
ANVIL_GAS_LIMIT = 30_000_000  # anvil's default, Sepolia's limit (mainnet: 36M)
VERIFY_STATES = 1_000
TRACK_STATES = 20  # per execution
TRACK_IN_FLIGHT = 8
FEE_RISE = 3
DEPLOY_NAME = "hosted-bench.eth"


class Progress:
    def __init__(self, label: str):
        self.label = label
        self.started = time.perf_counter()
        self.last = 0.0
        self.events = 0

    def __call__(self, batch: BatchReport) -> None:
        self.events += batch.events
        now = time.perf_counter()
        if now - self.last >= 5 or batch.last_block >= batch.target_block:
            self.last = now
            print(
                f"  {self.label}: {self.events:,} events, block {batch.last_block}/{batch.target_block}, "
                f"{now - self.started:.0f} s",
                file=sys.stderr,
            )


def run(url: str, database_url: str, first_block: int, last_block: int, contract: str, label: str) -> dict:
    direct_schema, hosted_schema = f"bench_provider_{label}_direct", f"bench_provider_{label}_hosted"

    def config(schema: str) -> IndexConfig:
        return IndexConfig(
            contract_address=contract,
            database_url=database_url,
            schema=schema,
            from_block=first_block,
            to_block=last_block,
        )

    with psycopg.connect(database_url) as connection:
        drop_schema(connection, direct_schema)
        drop_schema(connection, hosted_schema)
    print(f"[{label}] indexing straight from anvil", file=sys.stderr)
    direct = index(config(direct_schema), JsonRpc.from_uri(url), on_batch=Progress("direct"))
    rules = Rules(latency=LATENCY_S, compute_units_per_second=BUDGET, log_rules=True, max_batch=MAX_BATCH)
    print(f"[{label}] indexing through the emulator ({LATENCY_S * 1000:.0f} ms, {BUDGET:g} CU/s)", file=sys.stderr)
    with HostedProvider(url, rules) as provider:
        rpc = JsonRpc.from_uri(provider.url, RpcOptions(budget=RpcBudget(BUDGET)))
        started = time.perf_counter()
        hosted = index(config(hosted_schema), rpc, on_batch=Progress("hosted"))
        seconds = time.perf_counter() - started
        counters = provider.counters
    found = differences(schema_snapshot(database_url, direct_schema), schema_snapshot(database_url, hosted_schema))
    with psycopg.connect(database_url) as connection:
        drop_schema(connection, direct_schema)
        drop_schema(connection, hosted_schema)
    floor = counters.compute_units / BUDGET
    return {
        "events": hosted.events,
        "blocks": last_block - first_block + 1,
        "exact": not found and hosted.events == direct.events,
        "differences": found,
        "index_seconds": round(seconds, 2),
        "index_floor_seconds": round(floor, 2),
        "floor_ratio": round(seconds / floor, 3) if floor else None,
        "compute_units": counters.compute_units,
        "cu_per_event": round(counters.compute_units / max(hosted.events, 1), 4),
        "requests": counters.requests,
        "calls": dict(counters.calls),
        "rate_limited": counters.rate_limited,
        "client_waited_seconds": round(rpc.stats.seconds_waiting, 2),
        "direct_seconds": round(direct.seconds, 2),
    }


def measure_index(options: argparse.Namespace, database_url: str) -> dict:
    result: dict = {}
    for label, events, per_tx in (
        ("main", options.events, options.states_per_tx),
        ("small", options.small_events, options.small_states_per_tx),
    ):
        if events <= 0:
            continue
        process, url = start_anvil()
        try:
            web3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 120}))
            print(f"[{label}] producing {events:,} events, {per_tx} states per transaction", file=sys.stderr)
            contract, first_block, last_block, _ = produce(web3, events, per_tx)
            figures = run(url, database_url, first_block, last_block, contract.address, label)
        finally:
            process.terminate()
            process.wait(timeout=10)
        figures["states_per_tx"] = per_tx
        if label == "main":
            result.update(figures)
        else:
            result["small_transactions"] = figures
    return result


# -- the commands through the emulator ------------------------------------------------------------


def hosted_rules() -> Rules:
    return Rules(latency=LATENCY_S, compute_units_per_second=BUDGET, log_rules=True, max_batch=MAX_BATCH)


def anvil_at(block_time: int | None, gas_limit: int = ANVIL_GAS_LIMIT) -> tuple[subprocess.Popen, str]:
    """anvil on a free loopback port, mining every `block_time` seconds (None: on every transaction)."""
    from tracker.dev.services import free_port

    port = free_port()
    command = ["anvil", "--port", str(port), "--silent", "--gas-limit", str(gas_limit)]
    if block_time:
        command += ["--block-time", str(block_time)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            node_call(url, "eth_chainId", [])
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("anvil did not start")


def node_call(url: str, method: str, params: list) -> object:
    """One JSON-RPC call straight to anvil (the bench's own controls, never through the emulator)."""
    import requests

    answer = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=30)
    body = answer.json()
    if "error" in body:
        raise RuntimeError(f"{method}: {body['error']}")
    return body["result"]


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def measure_verify() -> dict:
    from ape import accounts, networks

    from tracker.chain.contract import TrackerContract
    from tracker.dev import ens as dev_ens
    from tracker.identity import ens
    from tracker.identity.deploy import deploy_canonical
    from tracker.publish.certificates import sign_fingerprint
    from tracker.verify.report import VerifyOptions
    from tracker.verify.verifier import verify_protocol

    verify_bench = _bench_module("verify")
    anvil, url = anvil_at(None)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-provider-verify-") as temporary:
            os.environ["TRACKER_PROJECT"] = str(Path(temporary) / "project")
            root = Path(temporary) / "publish"
            root.mkdir()
            with networks.parse_network_choice(url), verify_bench.served(root, Path(temporary) / "tls") as server:
                print(f"[verify] publishing {VERIFY_STATES:,} states with ENS and a certificate", file=sys.stderr)
                deployer, client = accounts.test_accounts[0], accounts.test_accounts[1]
                tracker = TrackerContract(deploy_canonical(deployer).contract.contract, client)
                tracker.contract.registerCertificate(
                    bytes.fromhex(server.fingerprint), sign_fingerprint(client, server.fingerprint), sender=client
                )
                dev_ens.install_local_ens(deployer)
                dev_ens.register_name(client, verify_bench.ENS_NAME)
                ens.link_identity(client, verify_bench.ENS_NAME, server.origin)
                protocol_url = verify_bench._publish(root, server, tracker, client, "hosted-1k", VERIFY_STATES)
                direct = verify_protocol(protocol_url, tracker, VerifyOptions(timeout=10.0))
                print(f"[verify] through the emulator ({LATENCY_S * 1000:.0f} ms, {BUDGET:g} CU/s)", file=sys.stderr)
                with HostedProvider(url, hosted_rules()) as provider:
                    with networks.parse_network_choice(provider.url):
                        before = provider.counters.requests
                        hosted_tracker = TrackerContract.at()  # the canonical address, as the command finds it
                        located = provider.counters.requests - before
                        runs = []
                        for _ in range(2):  # the second run: what a verifier that stays connected pays
                            before, units = provider.counters.requests, provider.counters.compute_units
                            report = verify_protocol(protocol_url, hosted_tracker, VerifyOptions(timeout=10.0))
                            runs.append(
                                (
                                    report,
                                    provider.counters.requests - before,
                                    provider.counters.compute_units - units,
                                )
                            )
                    before = provider.counters.requests
                    command = verify_bench._verify_in_own_process(protocol_url, provider.url)
                    command_requests = provider.counters.requests - before
                    rate_limited = provider.counters.rate_limited
    finally:
        stop(anvil)
    (first, trips, units), (second, trips_again, _) = runs
    return {
        "verify_states": VERIFY_STATES,
        "verify_verdict": first.verdict,
        "verify_round_trips": trips,
        "verify_round_trips_second_run": trips_again,
        "verify_locate_round_trips": located,
        "verify_seconds": round(first.seconds, 3),
        "verify_seconds_second_run": round(second.seconds, 3),
        "verify_compute_units": units,
        "verify_direct_seconds": round(direct.seconds, 3),
        "verify_rate_limited": rate_limited,
        "verify_command_verdict": command["verdict"],
        "verify_command_exit_code": command["exit_code"],
        "verify_command_seconds": command["seconds"],
        "verify_command_round_trips": command_requests,
        "verify_measured_at": now(),
    }


class Disturbance(threading.Thread):
    """What a public network does to pending transactions, straight on anvil while the tracker runs:
    every `every` seconds, alternately, the newest pending transaction (of a nonce not dropped
    before) is dropped from the pool (`anvil_dropTransaction`) and the next block's base fee is raised (`anvil_setNextBlockBaseFeePerGas`)
    to `FEE_RISE` times the chain's first base fee: far past the 12.5% a block EIP-1559 allows, so
    that a transaction pending at the old fees is really priced out and has to be replaced."""

    def __init__(self, url: str, every: float):
        super().__init__(name="disturbance", daemon=True)
        self.url = url
        self.every = every
        self.stopping = threading.Event()
        self.drops = 0
        self.fee_rises = 0
        self.base_fee: int | None = None  # each rise is from the first base fee: spikes, not a spiral
        self.dropped: set[int] = set()  # each nonce once: a network that drops every try is censoring

    def run(self) -> None:
        turn = 0
        while not self.stopping.wait(self.every):
            turn += 1
            try:
                if turn % 2:
                    pool = node_call(self.url, "txpool_content", [])
                    pending = [
                        (int(tx["nonce"], 16), tx["hash"])
                        for by_nonce in pool["pending"].values()
                        for tx in by_nonce.values()
                        if int(tx["nonce"], 16) not in self.dropped
                    ]
                    if pending:
                        nonce, tx_hash = max(pending)
                        node_call(self.url, "anvil_dropTransaction", [tx_hash])
                        self.dropped.add(nonce)
                        self.drops += 1
                else:
                    if self.base_fee is None:
                        block = node_call(self.url, "eth_getBlockByNumber", ["latest", False])
                        self.base_fee = int(block["baseFeePerGas"], 16)
                    node_call(self.url, "anvil_setNextBlockBaseFeePerGas", [hex(self.base_fee * FEE_RISE)])
                    self.fee_rises += 1
            except (OSError, RuntimeError, KeyError) as error:
                print(f"  disturbance: {error}", file=sys.stderr)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


def measure_track(executions: int, block_time: int) -> dict:
    from ape import accounts, networks, project

    from tracker.chain import logs
    from tracker.chain.contract import TrackerContract
    from tracker.dev.synthetic import SyntheticExecutions
    from tracker.publish.targets import DirectoryPublisher
    from tracker.tracking.config import TrackConfig
    from tracker.tracking.engine import track

    anvil, url = anvil_at(block_time)
    try:
        with networks.parse_network_choice(url):
            sender = accounts.test_accounts[0]
            address = sender.deploy(project.InstanceTracker).address
        states = executions * TRACK_STATES
        print(
            f"[track] {states:,} states through the emulator, anvil mining every {block_time} s",
            file=sys.stderr,
        )
        with HostedProvider(url, hosted_rules()) as provider, networks.parse_network_choice(provider.url):
            contract = TrackerContract(project.InstanceTracker.at(address), accounts.test_accounts[0])
            disturbance = Disturbance(url, block_time / 2)
            with tempfile.TemporaryDirectory(prefix="bench-provider-track-") as scratch:
                config = TrackConfig(
                    state_dir=Path(scratch) / "state",
                    max_in_flight=TRACK_IN_FLIGHT,
                    replace_after_s=2.0 * block_time,
                )
                source = SyntheticExecutions([TRACK_STATES] * executions, "hosted")
                disturbance.start()
                started = time.perf_counter()
                summary = track(config, source, contract, DirectoryPublisher(Path(scratch) / "protocol"))
                seconds = time.perf_counter() - started
                disturbance.stop()
            counters = provider.counters
        with networks.parse_network_choice(url):  # straight to anvil: what the chain holds
            registered_events = logs.events(address, "StateRegistered")
            seen = [(bytes(e.args["key"]).hex(), int(e.args["seq"])) for e in registered_events]
    finally:
        stop(anvil)
    registered = summary.states_registered
    gas_per_state = summary.gas_used / max(registered, 1)
    cu_per_state = counters.compute_units / max(registered, 1)
    gas_floor = ANVIL_GAS_LIMIT / gas_per_state / block_time
    budget_floor = BUDGET / cu_per_state
    floor = min(gas_floor, budget_floor)
    rate = registered / seconds
    return {
        "track_states": registered,
        "track_executions": executions,
        "track_instances_terminated": summary.instances_terminated,
        "track_block_time_s": block_time,
        "track_block_gas_limit": ANVIL_GAS_LIMIT,
        "track_seconds": round(seconds, 1),
        "track_states_per_s": round(rate, 1),
        "track_transactions": summary.transactions,
        "track_gas_per_state": round(gas_per_state),
        "track_cu_per_state": round(cu_per_state, 3),
        "track_gas_floor_states_per_s": round(gas_floor, 1),
        "track_budget_floor_states_per_s": round(budget_floor, 1),
        "track_floor_states_per_s": round(floor, 1),
        "track_floor_share": round(rate / floor, 3),
        "track_events": len(seen),
        "track_registered_twice": len(seen) - len(set(seen)),
        "track_drops_injected": disturbance.drops,
        "track_fee_rises_injected": disturbance.fee_rises,
        "track_raw_transactions_sent": counters.calls.get("eth_sendRawTransaction", 0),
        "track_rate_limited": counters.rate_limited,
        "track_requests": counters.requests,
        "track_compute_units": counters.compute_units,
        "track_calls": dict(counters.calls),
        "track_max_in_flight": TRACK_IN_FLIGHT,
        "track_measured_at": now(),
    }


def measure_deploy(block_time: int) -> dict:
    from ape import accounts, networks

    from tracker.dev import ens as dev_ens
    from tracker.publish.certificates import generate_self_signed

    anvil, url = anvil_at(None)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-provider-deploy-") as scratch:
            with networks.parse_network_choice(url):
                client = accounts.test_accounts[3]
                dev_ens.install_local_ens(accounts.test_accounts[0])
                name = dev_ens.register_name(client, DEPLOY_NAME, resolver=None)
            # from here on, blocks come every `block_time` seconds, as on a public chain
            node_call(url, "evm_setAutomine", [False])
            node_call(url, "evm_setIntervalMining", [block_time])
            certificate = Path(scratch) / "server.pem"
            certificate.write_bytes(generate_self_signed(["tracker.example.org"])[0])
            environment = {**os.environ, "TRACKER_PROJECT": str(Path(scratch) / "project")}
            with HostedProvider(url, hosted_rules()) as provider:
                command = [
                    str(Path(sys.executable).parent / "ape"), "run", "deploy", "--network", provider.url,
                    "--account", "TEST::3", "--client-id", "bench", "--ens-name", name,
                    "--uri", "https://tracker.example.org", "--cert", str(certificate), "--json",
                ]  # fmt: skip
                print(f"[deploy] ape run deploy through the emulator, blocks every {block_time} s", file=sys.stderr)
                started = time.perf_counter()
                done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=900)
                seconds = time.perf_counter() - started
                counters = provider.counters
    finally:
        stop(anvil)
    try:
        report = json.loads(done.stdout[done.stdout.find("{") :])
    except json.JSONDecodeError:
        report = {}
    steps = {step["step"]: step["status"] for step in report.get("steps", [])}
    return {
        "deploy_exit_code": done.returncode,
        "deploy_error": done.stderr.strip().splitlines()[-1] if done.returncode and done.stderr.strip() else None,
        "deploy_steps": steps,
        "deploy_all_done": bool(steps) and all(status == "done" for status in steps.values()),
        "deploy_round_trips": counters.requests,
        "deploy_compute_units": counters.compute_units,
        "deploy_rate_limited": counters.rate_limited,
        "deploy_seconds": round(seconds, 1),
        "deploy_block_time_s": block_time,
        "deploy_calls": dict(counters.calls),
        "deploy_measured_at": now(),
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"some of {', '.join(PARTS)} (comma-separated)")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--states-per-tx", type=int, default=400)
    parser.add_argument("--small-events", type=int, default=5_000)
    parser.add_argument("--small-states-per-tx", type=int, default=13)
    parser.add_argument("--track-executions", type=int, default=1_000, help="of 20 states each")
    parser.add_argument("--track-block-time", type=int, default=12, help="seconds (anvil --block-time)")
    options = parser.parse_args()
    parts = [part.strip() for part in options.parts.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown --parts {', '.join(unknown)} (choose from {', '.join(PARTS)})")
    database_url = (
        os.environ.get("BENCH_DATABASE_URL")
        or os.environ.get("TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/test"
    )
    os.chdir(ROOT)
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    from ape.logging import logger

    logger.set_level("WARNING")
    result: dict = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if "index" in parts:
        for key in [k for k in result if not k.startswith(("verify_", "track_", "deploy_"))]:
            del result[key]
        result.update(measure_index(options, database_url))
        result["measured_at"] = now()
        save(result)
    if "verify" in parts:
        result.update(measure_verify())
        save(result)
    if "track" in parts:
        result.update(measure_track(options.track_executions, options.track_block_time))
        save(result)
    if "deploy" in parts:
        result.update(measure_deploy(options.track_block_time))
    result.update(
        {
            "provider": f"emulator: {LATENCY_S * 1000:.0f} ms per request, {BUDGET:g} CU/s (1 s bucket, HTTP 429), "
            f"Alchemy's eth_getLogs rule, batches of at most {MAX_BATCH}",
            "client": f"JsonRpc with RpcBudget({BUDGET:g}) (index --rpc-budget {BUDGET:g}); the commands through "
            "ape connected to the emulator's URL",
            "targets": {
                "floor_ratio": 1.3,
                "verify_round_trips": 15,
                "verify_seconds": 2.0,
                "track_floor_share": 0.6,
                "track_registered_twice": 0,
            },
            "cpus": os.cpu_count(),
        }
    )
    print_tables(result)
    save(result)
    print(f"wrote {RESULTS.relative_to(ROOT)}")


def save(result: dict) -> None:
    """Written after each part, so that a later part's failure keeps the earlier figures."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


def print_tables(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"indexer through a hosted provider ({LATENCY_S * 1000:.0f} ms, {BUDGET:g} CU/s)")
    for column in ("chain", "events", "exact", "seconds", "floor s", "ratio", "CU/event", "429s"):
        table.add_column(column)
    for name, figures in (("main", result), ("small transactions", result.get("small_transactions"))):
        if not figures or "events" not in figures:
            continue
        table.add_row(
            f"{name} ({figures['states_per_tx']} states/tx)",
            f"{figures['events']:,}",
            str(figures["exact"]),
            f"{figures['index_seconds']:.1f}",
            f"{figures['index_floor_seconds']:.1f}",
            f"{figures['floor_ratio']:.2f}",
            f"{figures['cu_per_event']:.3f}",
            str(figures["rate_limited"]),
        )
    console.print(table)
    commands = Table(title="the commands through the same emulator")
    for column in ("command", "figure", "target"):
        commands.add_column(column)
    if "verify_round_trips" in result:
        commands.add_row(
            f"verify {result['verify_states']:,} states ({result['verify_verdict']})",
            f"{result['verify_round_trips']} round trips, {result['verify_seconds']:.2f} s "
            f"(the command in its own process: {result['verify_command_round_trips']} round trips, "
            f"{result['verify_command_seconds']:.1f} s, {result['verify_command_verdict']})",
            "<= 15 round trips, <= 2 s",
        )
    if "track_states_per_s" in result:
        commands.add_row(
            f"track {result['track_states']:,} states at {result['track_block_time_s']} s blocks",
            f"{result['track_states_per_s']:.1f} states/s = {result['track_floor_share']:.0%} of the floor "
            f"{result['track_floor_states_per_s']:.1f} (gas {result['track_gas_floor_states_per_s']:.1f}, "
            f"budget {result['track_budget_floor_states_per_s']:.1f}); {result['track_registered_twice']} registered "
            f"twice after {result['track_drops_injected']} drops and {result['track_fee_rises_injected']} fee rises",
            ">= 60% of the floor, none twice",
        )
    if "deploy_round_trips" in result:
        commands.add_row(
            f"deploy with ENS and certificate at {result['deploy_block_time_s']} s blocks",
            f"exit {result['deploy_exit_code']}, every step done: {result['deploy_all_done']}, "
            f"{result['deploy_round_trips']} round trips, {result['deploy_seconds']:.1f} s",
            "succeeds",
        )
    console.print(commands)


if __name__ == "__main__":
    main()
