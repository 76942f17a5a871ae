"""Ground truth: the chain's raw `eth_getLogs`, decoded here with eth_abi straight from the ABI
(not with the indexer's decoder, reader or row builder), turned into the rows every table and
view should hold, and compared row by row with what `index` stored.

The workload mixes every event, four accounts, two contracts indexed into one schema, reverted
transactions, a multicall, client ids with a NUL and with bytes that are not UTF-8, direct and
anchored instances, a transfer and a pending proposal, an operator approved and revoked, and
three UTC days. The expectations below are written from the schema's documented meaning of each
column (sql/0003_v2_schema.sql, docs/commands/index-command.md), in natural terms (an instance by
its first key, a model by its id), as `support.tables` renders the stored rows. Left out: the
duration histograms (their buckets are checked by the views' tests), and `block`, which also
keeps each batch's last block; every block with an event is checked in it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak
from support.tables import snapshot

from tracker.indexer.engine import IndexConfig, index

ZERO = b"\0" * 20
DAY = 86_400


def render(raw: bytes) -> str:
    """The documented text rendering of exact bytes, written independently of the indexer's: valid
    UTF-8 as it is, a backslash doubled, control characters and bytes that are not UTF-8 as \\xNN."""
    out, i = [], 0
    while i < len(raw):
        for width in (1, 2, 3, 4):
            try:
                char = raw[i : i + width].decode("utf-8")
            except UnicodeDecodeError:
                continue
            break
        else:
            out.append(f"\\x{raw[i]:02x}")
            i += 1
            continue
        if char == "\\":
            out.append("\\\\")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
        i += width
    return "".join(out)


def _canonical(arg: dict[str, Any]) -> str:
    kind = arg["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_canonical(c) for c in arg["components"]) + ")" + kind[5:]
    return kind


class AbiDecoder:
    """Events and function selectors straight from the ABI JSON."""

    def __init__(self, abi: list[dict[str, Any]]):
        self.events: dict[bytes, dict[str, Any]] = {}
        self.functions: dict[bytes, tuple[str, list[str]]] = {}
        for item in abi:
            signature_types = [_canonical(i) for i in item.get("inputs", [])]
            signature = f"{item.get('name')}({','.join(signature_types)})"
            if item["type"] == "event":
                self.events[keccak(text=signature)] = item
            elif item["type"] == "function":
                self.functions[keccak(text=signature)[:4]] = (item["name"], signature_types)

    @staticmethod
    def _plain(kind: str, value: Any) -> Any:
        if kind == "address":
            return bytes.fromhex(value[2:].lower())
        return value

    def decode(self, log: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        item = self.events[topics[0]]
        args: dict[str, Any] = {}
        indexed = [i for i in item["inputs"] if i["indexed"]]
        for position, arg in enumerate(indexed, start=1):
            (value,) = abi_decode([arg["type"]], topics[position])
            args[arg["name"]] = self._plain(arg["type"], value)
        data = [i for i in item["inputs"] if not i["indexed"]]
        # string has bytes' encoding: decoded as bytes, so that no UTF-8 check can drop one.
        kinds = ["bytes" if i["type"] == "string" else i["type"] for i in data]
        for arg, kind, value in zip(data, kinds, abi_decode(kinds, bytes.fromhex(log["data"][2:]))):
            args[arg["name"]] = self._plain(kind, value)
        return item["name"], args

    def function(self, data: bytes) -> tuple[str | None, tuple[str, ...] | None]:
        name, types = self.functions.get(data[:4], (None, []))
        if name is None:
            return "0x" + data[:4].hex(), None
        if name != "multicall":
            return name, None
        (calls,) = abi_decode(types, data[4:])
        return name, tuple(self.functions[bytes(c[:4])][0] for c in calls)


@dataclass
class Instance:
    first_key: bytes
    execution: bytes | None = None
    first_block: int = 0
    registered: tuple[int, int, datetime] | None = None
    registrant: bytes | None = None
    model: bytes | None = None
    document: bytes | None = None
    mode: int | None = None
    keys: list[bytes] = field(default_factory=list)
    states: dict[int, datetime] = field(default_factory=dict)
    count: int = 0
    ends: list[tuple[int, int, datetime, bool, int, bytes, int, bytes, int]] = field(default_factory=list)
    transitions: int = 0


@dataclass
class Key:
    instance: Instance
    owner: bytes
    first_block: int
    seq_from: int
    moved_block: int | None = None
    proposals: list[tuple[int, int, bytes]] = field(default_factory=list)
    transferred_at: list[tuple[int, int]] = field(default_factory=list)


def _acc() -> dict[str, Any]:
    return defaultdict(int)


def expected_tables(anvil, address: str, abi: list[dict[str, Any]], first: int, last: int) -> dict[str, list[tuple]]:
    """Every compared table of one contract, from raw JSON-RPC answers."""
    request = anvil.web3.provider.make_request
    contract = bytes.fromhex(address[2:].lower())
    decoder = AbiDecoder(abi)
    logs = request("eth_getLogs", [{"address": address, "fromBlock": hex(first), "toBlock": hex(last)}])["result"]
    blocks: dict[int, dict] = {}
    receipts: dict[bytes, dict] = {}
    inputs: dict[bytes, bytes] = {}
    for log in logs:
        number = int(log["blockNumber"], 16)
        if number not in blocks:
            blocks[number] = request("eth_getBlockByNumber", [hex(number), False])["result"]
        tx = bytes.fromhex(log["transactionHash"][2:])
        if tx not in receipts:
            receipts[tx] = request("eth_getTransactionReceipt", [log["transactionHash"]])["result"]
            inputs[tx] = bytes.fromhex(
                request("eth_getTransactionByHash", [log["transactionHash"]])["result"]["input"][2:]
            )

    def when(number: int) -> datetime:
        return datetime.fromtimestamp(int(blocks[number]["timestamp"], 16), timezone.utc)

    out: dict[str, list[tuple]] = defaultdict(list)
    keys: dict[bytes, Key] = {}
    instances: list[Instance] = []
    models: dict[bytes, dict[str, Any]] = {}
    accounts: dict[bytes, dict[str, Any]] = {}
    operators: dict[tuple[bytes, bytes], list] = {}
    days: dict[Any, dict[str, Any]] = defaultdict(_acc)
    transactions: dict[bytes, list] = {}

    def account(who: bytes, number: int) -> dict[str, Any]:
        if who not in accounts:
            accounts[who] = {"first_block": number, **{k: 0 for k in ACCOUNT_COUNTERS}, "ids": [], "certs": []}
        return accounts[who]

    def model(model_id: bytes, number: int) -> dict[str, Any]:
        if model_id not in models:
            models[model_id] = {"first_block": number, "publishers": [], **{k: 0 for k in MODEL_COUNTERS}}
        return models[model_id]

    for log in logs:
        name, args = decoder.decode(log)
        number, index_ = int(log["blockNumber"], 16), int(log["logIndex"], 16)
        at = when(number)
        where = (contract, number, index_, at)
        tx = bytes.fromhex(log["transactionHash"][2:])
        span = transactions.setdefault(tx, [number, index_, index_, 0, 0])
        span[2], span[3] = index_, span[3] + 1
        for arg in next(e for e in abi if e.get("type") == "event" and e["name"] == name)["inputs"]:
            if arg["type"] == "address" and args[arg["name"]] != ZERO:
                account(args[arg["name"]], number)
        day = days[at.date()]
        if name == "ModelRegistered":
            entry = model(args["model"], number)
            entry["publishers"].append(at)
            account(args["publisher"], number)["models"] += 1
            out["model_registration"].append((*where, args["publisher"], args["model"]))
        elif name == "InstanceRegistered":
            instance = Instance(args["key"], args["execution"], number, (number, index_, at), args["owner"])
            instance.model, instance.document, instance.mode = args["model"], args["instanceDocument"], args["mode"]
            instance.keys.append(args["key"])
            instances.append(instance)
            keys[args["key"]] = Key(instance, args["owner"], number, 0)
            entry = model(args["model"], number)
            entry["instances"] += 1
            entry["direct_instances" if args["mode"] == 0 else "anchored_instances"] += 1
            account(args["owner"], number)["instances"] += 1
            day["instances"] += 1
        elif name == "StateRegistered":
            key = keys[args["key"]]
            instance = key.instance
            instance.states[args["seq"]] = at
            instance.count = max(instance.count, args["seq"] + 1)
            models[instance.model]["direct_states"] += 1
            account(key.owner, number)["direct_states"] += 1
            day["direct_states"] += 1
            span[4] += 1
            out["state"].append((*where, instance.first_key, args["seq"], args["key"], args["state"]))
        elif name in ("AttemptEnded", "InstanceTerminated"):
            key = keys[args["key"]]
            instance = key.instance
            final = name == "InstanceTerminated"
            stated = args["stateCount"]
            added = max(0, stated - instance.count) if instance.mode == 1 else 0
            instance.count = max(instance.count, stated)
            instance.ends.append(
                (number, index_, at, final, args["attempt"], args["endDocument"], stated, args["head"], added)
            )
            owner = account(key.owner, number)
            owner["attempt_ends"] += 1
            owner["terminations"] += final
            owner["anchored_states"] += added
            models[instance.model]["final_instances"] += final
            models[instance.model]["anchored_states"] += added
            day["attempt_ends"] += 1
            day["terminations"] += final
            day["anchored_states"] += added
            out["attempt_end"].append(
                (
                    *where,
                    instance.first_key,
                    args["key"],
                    final,
                    args["attempt"],
                    args["endDocument"],
                    stated,
                    args["head"],
                    added,
                )
            )
        elif name == "TransitionRegistered":
            key = keys[args["key"]]
            key.instance.transitions += 1
            account(key.owner, number)["transitions"] += 1
            day["transitions"] += 1
            out["transition"].append(
                (
                    *where,
                    key.instance.first_key,
                    args["key"],
                    args["pre"],
                    args["post"],
                    args["preSeq"],
                    args["postSeq"],
                )
            )
        elif name == "TransferProposed":
            key = keys[args["key"]]
            key.proposals.append((number, index_, args["to"]))
            out["transfer_proposal"].append((*where, key.instance.first_key, args["key"], args["from"], args["to"]))
        elif name == "InstanceTransferred":
            source = keys[args["fromKey"]]
            instance = source.instance
            source.moved_block = number
            source.transferred_at.append((number, index_))
            keys[args["toKey"]] = Key(instance, args["to"], number, instance.count)
            instance.keys.append(args["toKey"])
            account(args["from"], number)["transfers_out"] += 1
            account(args["to"], number)["transfers_in"] += 1
            out["transfer"].append(
                (
                    *where,
                    instance.first_key,
                    args["fromKey"],
                    args["toKey"],
                    args["execution"],
                    args["from"],
                    args["to"],
                )
            )
        elif name == "OperatorSet":
            pair = (args["owner"], args["operator"])
            operators.setdefault(pair, []).append((number, at, args["approved"]))
            account(args["owner"], number)["operator_changes"] += 1
            out["operator_change"].append((*where, args["owner"], args["operator"], args["approved"]))
        elif name == "ClientIdRegistered":
            raw = args["clientId"]
            account(args["account"], number)["ids"].append(raw)
            out["client_id_registration"].append((*where, args["account"], raw, render(raw)))
        elif name == "CertificateRegistered":
            account(args["account"], number)["certs"].append((args["fingerprint"], at))
            out["certificate_registration"].append((*where, args["account"], args["fingerprint"], args["signature"]))
        elif name == "StatesAnchored":
            submitter = account(args["submitter"], number)
            submitter["anchors"] += 1
            submitter["anchored_leaves"] += args["leafCount"]
            day["anchors"] += 1
            day["anchored_leaves"] += args["leafCount"]
            out["anchor"].append((*where, args["submitter"], args["root"], args["leafCount"]))
        else:
            raise AssertionError(f"an event the ground truth does not know: {name}")

    functions: dict[str, dict[str, int]] = defaultdict(_acc)
    for tx, (number, first_index, last_index, events, states) in transactions.items():
        receipt = receipts[tx]
        sender = bytes.fromhex(receipt["from"][2:])
        to = bytes.fromhex(receipt["to"][2:]) if receipt["to"] else None
        gas, price = int(receipt["gasUsed"], 16), int(receipt["effectiveGasPrice"], 16)
        function, inner = decoder.function(inputs[tx]) if to == contract else (None, None)
        out["transaction"].append(
            (contract, number, first_index, last_index, when(number), tx, sender, to, gas, price, gas * price,
             function, inner, events, states)
        )  # fmt: skip
        who = account(sender, number)
        who["transactions"] += 1
        who["gas_used"] += gas
        who["fee_wei"] += gas * price
        who["states_sent"] += states
        day = days[when(number).date()]
        day["transactions"] += 1
        day["gas_used"] += gas
        day["fee_wei"] += gas * price
        stats = functions[function or ""]
        for measure, value in (
            ("transactions", 1),
            ("gas", gas),
            ("fee", gas * price),
            ("events", events),
            ("states", states),
        ):
            stats[measure] += value
    out["function_stats"] = [
        (contract, name, s["transactions"], s["gas"], s["fee"], s["events"], s["states"])
        for name, s in functions.items()
    ]
    out["day_stats"] = [
        (contract, day, d["direct_states"], d["anchored_states"], d["instances"], d["attempt_ends"], d["terminations"],
         d["transitions"], d["anchors"], d["anchored_leaves"], d["transactions"], d["gas_used"], d["fee_wei"])
        for day, d in days.items()
    ]  # fmt: skip
    for instance in instances:
        ends = instance.ends
        last_end = max(ends, key=lambda e: (e[0], e[1])) if ends else None
        finals = [e for e in ends if e[3]]
        counted = [e[2] for e in ends if e[8] > 0]
        seqs = sorted(instance.states)
        live = instance.keys[-1]
        out["instance"].append(
            (
                contract, instance.first_key, instance.execution, instance.first_block,
                *(instance.registered or (None, None, None)), instance.registrant, instance.model, instance.document,
                instance.mode, keys[live].owner, live, len(instance.keys),
                max([seqs[-1] + 1 if seqs else 0] + [e[6] for e in ends]),
                instance.states[seqs[0]] if seqs else (min(counted) if counted else None),
                instance.states[seqs[-1]] if seqs else (max(counted) if counted else None),
                max(e[4] for e in ends) + 1 if ends else 0, bool(finals),
                last_end[5] if last_end else None, last_end[2] if last_end else None,
                min(e[2] for e in finals) if finals else None, last_end[7] if last_end else None,
                instance.transitions,
            )
        )  # fmt: skip
    for key_bytes, key in keys.items():
        pending = None
        if key.proposals:
            latest = key.proposals[-1]
            if not any(t > latest[:2] for t in key.transferred_at) and latest[2] != ZERO:
                pending = latest[2]
        out["instance_key"].append(
            (
                contract,
                key_bytes,
                key.instance.first_key,
                key.owner,
                key.first_block,
                key.seq_from,
                key.moved_block,
                pending,
            )
        )
    for model_id, m in models.items():
        out["model"].append(
            (contract, model_id, m["first_block"], len(m["publishers"]), min(m["publishers"], default=None),
             *(m[k] for k in MODEL_COUNTERS))
        )  # fmt: skip
    for who, a in accounts.items():
        certificate = a["certs"][-1] if a["certs"] else (None, None)
        latest_id = a["ids"][-1] if a["ids"] else None
        out["account"].append(
            (contract, who, a["first_block"], *(a[k] for k in ACCOUNT_COUNTERS), latest_id,
             render(latest_id) if latest_id is not None else None, len(a["ids"]), *certificate, len(a["certs"]))
        )  # fmt: skip
    for (owner, operator), changes in operators.items():
        number, at, approved = changes[-1]
        out["operator"].append((contract, owner, operator, approved, number, at, len(changes)))
    out["blocks_with_events"] = [
        (contract, n, bytes.fromhex(b["hash"][2:]), bytes.fromhex(b["parentHash"][2:]), when(n))
        for n, b in blocks.items()
    ]
    out["protocol"] = _protocol(out, receipts, instances, keys)
    return out


MODEL_COUNTERS = (
    "instances", "direct_instances", "anchored_instances", "final_instances", "direct_states", "anchored_states",
)  # fmt: skip
ACCOUNT_COUNTERS = (
    "transactions", "gas_used", "fee_wei", "states_sent", "models", "instances", "direct_states", "anchored_states",
    "attempt_ends", "terminations", "transitions", "transfers_out", "transfers_in", "anchors", "anchored_leaves",
    "operator_changes",
)  # fmt: skip


def _protocol(out, receipts, instances, keys) -> list[tuple]:
    """instance_protocol: each instance's states and ends, with the transaction and its sender."""
    sender = {tx: bytes.fromhex(r["from"][2:]) for tx, r in receipts.items()}
    tx_of = {(row[1], i): row[5] for row in out["transaction"] for i in range(row[2], row[3] + 1)}
    by_first = {instance.first_key: instance for instance in instances}
    rows = []
    for row in out["state"]:
        _, number, log_index, at, first_key, seq, key, state = row
        tx = tx_of[(number, log_index)]
        execution = by_first[first_key].execution
        rows.append(
            (execution, key, keys[key].owner, "state", seq, state, None, None, number, log_index, at, tx, sender[tx])
        )
    for row in out["attempt_end"]:
        _, number, log_index, at, first_key, key, final, _, document, stated, head, _ = row
        tx = tx_of[(number, log_index)]
        execution = by_first[first_key].execution
        entry = "final end" if final else "attempt end"
        rows.append(
            (
                execution,
                key,
                keys[key].owner,
                entry,
                stated,
                None,
                document,
                head,
                number,
                log_index,
                at,
                tx,
                sender[tx],
            )
        )
    return rows


PROTOCOL_SQL = """
    SELECT execution, key, owner, entry, seq, state_id, end_document, head, block_number, log_index, block_time,
           transaction_hash, client_address
    FROM instance_protocol WHERE contract = %s"""


def _normal(value: Any) -> Any:
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    if isinstance(value, (list, tuple)):
        return tuple(_normal(v) for v in value)
    return value


def _rows(rows) -> list[tuple]:
    return sorted((tuple(_normal(v) for v in row) for row in rows), key=repr)


def _assert_same(table: str, expected: list[tuple], found: list[tuple]) -> None:
    want, got = _rows(expected), _rows(found)
    missing = [r for r in want if r not in got]
    extra = [r for r in got if r not in want]
    assert want == got, f"{table}: {len(want)} expected, {len(got)} stored; missing {missing[:3]}, extra {extra[:3]}"


def _raw_client_id(tracker, raw: bytes, sender: int) -> None:
    from eth_abi import encode

    data = keccak(text="registerClientId(string)")[:4] + encode(["bytes"], [raw])
    web3 = tracker.web3
    tx = web3.eth.send_transaction(
        {"from": tracker.accounts[sender], "to": tracker.address, "data": "0x" + data.hex(), "gas": 200_000}
    )
    assert web3.eth.wait_for_transaction_receipt(tx, timeout=30).status == 1


def _next_day(anvil) -> None:
    anvil.web3.provider.make_request("evm_increaseTime", [DAY])
    anvil.mine(1)


def test_every_table_and_view_equals_the_decoded_chain(
    anvil,
    deployed,
    deploy_tracker,
    produce_every_event,
    register_execution,
    database_url,
    schema,
    db,
    label_id,
    project,
):
    other = deploy_tracker()
    produce_every_event(deployed)
    register_execution(other, "other-contract", 3, sender=3, model="model")
    _next_day(anvil)
    _raw_client_id(deployed, b"nul\x00inside", sender=1)
    _raw_client_id(deployed, b"\xff\xfenot utf-8\\", sender=3)
    deployed.send_reverting("registerClientId", "")  # InvalidClientId: reverted, no log
    deployed.send_reverting("registerStates", deployed.accounts[0], label_id("no-such-execution"), 0, [label_id("s")])
    calls = [
        deployed.contract.encode_abi("registerClientId", ["through-multicall"]),
        deployed.contract.encode_abi("setOperator", [deployed.accounts[3], True]),
    ]
    deployed.send("multicall", calls)
    execution = register_execution(deployed, "day-two", 4, sender=3, model="model-2")
    deployed.send("proposeTransfer", execution, deployed.accounts[1], sender=3)  # left pending
    register_execution(other, "other-day-two", 2, sender=0, model="other-model")
    _next_day(anvil)
    deployed.send("setOperator", deployed.accounts[3], False)
    deployed.send("registerStates", deployed.accounts[3], execution, 4, [label_id("late-state")], sender=3)
    deployed.send("endAttempt", deployed.accounts[3], execution, 5, [], 0, label_id("day-three-end"), sender=3)
    last = anvil.web3.eth.block_number
    abi = project.InstanceTracker.contract_type.model_dump(mode="json", by_alias=True)["abi"]

    for tracker in (deployed, other):
        config = IndexConfig(
            contract_address=tracker.address,
            database_url=database_url,
            schema=schema,
            from_block=tracker.deploy_block,
            batch_blocks=7,  # several batches, so that rollups add up across them
        )
        index(config, anvil.rpc())

    expected: dict[str, list[tuple]] = defaultdict(list)
    for tracker in (deployed, other):
        for table, rows in expected_tables(anvil, tracker.address, abi, tracker.deploy_block, last).items():
            expected[table].extend(rows)
    stored = snapshot(db)
    compared = sorted(set(stored) - {"block", "model_histogram", "owner_histogram"})
    assert len(compared) == 18
    for table in compared:
        assert expected[table], f"the workload has no {table} row"
        _assert_same(table, expected[table], stored[table])
    assert set(expected["blocks_with_events"]) <= {_normal(r) for r in stored["block"]}
    for tracker in (deployed, other):
        contract = bytes.fromhex(tracker.address[2:].lower())
        protocol = [
            row for row in expected["protocol"] if row[8] >= tracker.deploy_block and _of(row, expected, contract)
        ]
        _assert_same("instance_protocol", protocol, db.execute(PROTOCOL_SQL, [contract]).fetchall())
    # The hostile ids are exact in the analyst's history view, beside their renderings.
    history = db.execute("SELECT client_id_bytes, client_id FROM client_id_history ORDER BY block_number").fetchall()
    assert (b"nul\x00inside", "nul\\x00inside") in [(bytes(b), t) for b, t in history]
    assert (b"\xff\xfenot utf-8\\", "\\xff\\xfenot utf-8\\\\") in [(bytes(b), t) for b, t in history]
    # Views that add up the tables: per day and per model, as the expected rollups say.
    days = _rows(db.execute("SELECT contract, day, direct_states, anchored_states, states FROM states_per_day"))
    assert days == _rows((r[0], r[1], r[2], r[3], r[2] + r[3]) for r in expected["day_stats"]), "states_per_day"
    assert len({r[1] for r in days}) == 3
    models = _rows(db.execute("SELECT contract, model_id, instances, open_instances, states FROM model_summary"))
    assert models == _rows((r[0], r[1], r[5], r[5] - r[8], r[9] + r[10]) for r in expected["model"]), "model_summary"


def _of(row: tuple, expected: dict[str, list[tuple]], contract: bytes) -> bool:
    """Whether a protocol row is of `contract`: its transaction is one of the contract's."""
    return any(t[0] == contract and t[5] == row[11] for t in expected["transaction"])
