"""From a batch of decoded events to the rows of the schema: one handler per event, in chain order.

The handlers map each event once to the rows it adds (facts, and the dimension rows it is the first
to name). Surrogate keys are drawn beforehand from the schema's sequences (`Allocation`); what the
batch refers to and the schema already holds comes in as `Known`. Rollups are not computed here:
the store computes them in SQL from the loaded facts, with the same statements that undo them on
a rollback.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak

from tracker.chain.events import DecodedEvent, render_text
from tracker.chain.reader import BlockHeader, Receipt

ZERO_ADDRESS = b"\0" * 20
DIRECT, ANCHORED = 0, 1

# The columns each table is loaded with, and their Postgres types (binary COPY needs them).
TABLE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "block": (
        ("contract_id", "int4"),
        ("block_number", "int8"),
        ("block_hash", "bytea"),
        ("parent_hash", "bytea"),
        ("block_time", "timestamptz"),
    ),
    "transaction": (
        ("contract_id", "int4"),
        ("block_number", "int8"),
        ("first_log_index", "int4"),
        ("last_log_index", "int4"),
        ("block_time", "timestamptz"),
        ("tx_hash", "bytea"),
        ("from_address", "bytea"),
        ("to_address", "bytea"),
        ("gas_used", "int8"),
        ("effective_gas_price", "numeric"),
        ("fee_wei", "numeric"),
        ("function", "text"),
        ("inner_functions", "text[]"),
        ("events", "int4"),
        ("states", "int4"),
    ),
    "account": (("contract_id", "int4"), ("address", "bytea"), ("first_block", "int8")),
    "model": (("model_sk", "int8"), ("contract_id", "int4"), ("model_id", "bytea"), ("first_block", "int8")),
    "instance": (
        ("instance_sk", "int8"),
        ("contract_id", "int4"),
        ("execution", "bytea"),
        ("first_block", "int8"),
        ("registered_block", "int8"),
        ("registered_log_index", "int4"),
        ("registered_at", "timestamptz"),
        ("registrant", "bytea"),
        ("model_sk", "int8"),
        ("instance_document", "bytea"),
        ("mode", "int2"),
    ),
    "instance_key": (
        ("key_sk", "int4"),
        ("contract_id", "int4"),
        ("key", "bytea"),
        ("instance_sk", "int8"),
        ("owner", "bytea"),
        ("first_block", "int8"),
        ("seq_from", "numeric"),
    ),
    "state": (
        ("contract_id", "int4"),
        ("log_index", "int4"),
        ("block_number", "int8"),
        ("instance_sk", "int8"),
        ("seq", "int8"),
        ("block_time", "timestamptz"),
        ("key_sk", "int4"),
        ("state_id", "bytea"),
    ),
    "model_registration": (("publisher", "bytea"), ("model_sk", "int8")),
    "attempt_end": (
        ("instance_sk", "int8"),
        ("key_sk", "int4"),
        ("final", "bool"),
        ("attempt", "int8"),
        ("end_document", "bytea"),
        ("state_count", "numeric"),
        ("head", "bytea"),
        ("added_states", "numeric"),
    ),
    "transition": (
        ("instance_sk", "int8"),
        ("key_sk", "int4"),
        ("pre_state", "bytea"),
        ("post_state", "bytea"),
        ("pre_seq", "int8"),
        ("post_seq", "int8"),
    ),
    "transfer_proposal": (("instance_sk", "int8"), ("key_sk", "int4"), ("from_owner", "bytea"), ("to_owner", "bytea")),
    "transfer": (
        ("instance_sk", "int8"),
        ("from_key_sk", "int4"),
        ("to_key_sk", "int4"),
        ("execution", "bytea"),
        ("from_owner", "bytea"),
        ("to_owner", "bytea"),
    ),
    "operator_change": (("owner", "bytea"), ("operator", "bytea"), ("approved", "bool")),
    "client_id_registration": (("account", "bytea"), ("client_id", "bytea"), ("client_id_text", "text")),
    "certificate_registration": (("account", "bytea"), ("fingerprint", "bytea"), ("signature", "bytea")),
    "anchor": (("submitter", "bytea"), ("root", "bytea"), ("leaf_count", "int8")),
}
# Facts other than `state` start with where they came from; their own columns follow.
FACT_PREFIX = (("contract_id", "int4"), ("block_number", "int8"), ("log_index", "int4"), ("block_time", "timestamptz"))
FACT_TABLES = (
    "model_registration",
    "attempt_end",
    "transition",
    "transfer_proposal",
    "transfer",
    "operator_change",
    "client_id_registration",
    "certificate_registration",
    "anchor",
)
# The order of loading: what a row refers to is loaded before it.
LOAD_ORDER = ("block", "transaction", "account", "model", "instance", "instance_key", "state", *FACT_TABLES)


def columns_of(table: str) -> tuple[tuple[str, str], ...]:
    own = TABLE_COLUMNS[table]
    return FACT_PREFIX + own if table in FACT_TABLES else own


@dataclass
class Batch:
    """Everything one batch loads: decoded events and the blocks, receipts and inputs they came from."""

    events: list[DecodedEvent]
    headers: dict[int, BlockHeader]
    receipts: dict[bytes, Receipt]
    inputs: dict[bytes, bytes]
    end: BlockHeader


@dataclass
class Lineage:
    """An instance as the handlers track it through the batch."""

    instance_sk: int
    mode: int | None
    count: int  # states so far: the highest seq + 1 (direct), the stated count (anchored)


@dataclass
class KnownKey:
    key_sk: int
    lineage: Lineage
    owner: bytes | None


@dataclass
class Known:
    """What the batch refers to that the schema already holds."""

    keys: dict[bytes, KnownKey] = field(default_factory=dict)
    models: dict[bytes, int] = field(default_factory=dict)
    accounts: set[bytes] = field(default_factory=set)


@dataclass
class References:
    """What a batch refers to, to be looked up before its rows are built."""

    keys: set[bytes]
    models: set[bytes]
    addresses: set[bytes]
    # Upper bounds of the new surrogate keys the batch can need.
    new_models: int
    new_instances: int
    new_keys: int


@dataclass
class Allocation:
    """Surrogate keys drawn from the schema's sequences for one batch."""

    models: Iterator[int]
    instances: Iterator[int]
    keys: Iterator[int]


@dataclass
class Rows:
    """The rows of a batch per table, and what its rollups must refresh."""

    tables: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {t: [] for t in LOAD_ORDER})
    instances: set[int] = field(default_factory=set)
    keys: set[int] = field(default_factory=set)
    models: set[int] = field(default_factory=set)
    accounts: set[bytes] = field(default_factory=set)
    operators: set[tuple[bytes, bytes]] = field(default_factory=set)


KEY_ARGUMENTS = {
    "InstanceRegistered": "key",
    "StateRegistered": "key",
    "AttemptEnded": "key",
    "InstanceTerminated": "key",
    "TransitionRegistered": "key",
    "TransferProposed": "key",
    "InstanceTransferred": "fromKey",
}
ADDRESS_ARGUMENTS = {
    "ModelRegistered": ("publisher",),
    "InstanceRegistered": ("owner",),
    "TransferProposed": ("from", "to"),
    "InstanceTransferred": ("from", "to"),
    "OperatorSet": ("owner", "operator"),
    "ClientIdRegistered": ("account",),
    "CertificateRegistered": ("account",),
    "StatesAnchored": ("submitter",),
}


def references(batch: Batch) -> References:
    keys: set[bytes] = set()
    models: set[bytes] = set()
    addresses = {r.from_address for r in batch.receipts.values()}
    registered = transferred = 0
    for event in batch.events:
        name, args = event.name, event.args
        argument = KEY_ARGUMENTS.get(name)
        if argument is not None:
            keys.add(args[argument])
        if name in ("ModelRegistered", "InstanceRegistered"):
            models.add(args["model"])
        for address_argument in ADDRESS_ARGUMENTS.get(name, ()):
            addresses.add(args[address_argument])
        registered += name == "InstanceRegistered"
        transferred += name == "InstanceTransferred"
    addresses.discard(ZERO_ADDRESS)
    return References(
        keys=keys,
        models=models,
        addresses=addresses,
        new_models=len(models),
        new_instances=len(keys),
        new_keys=len(keys) + transferred,
    )


class FunctionNames:
    """The contract functions a transaction called, from its input and the ABI's selectors."""

    def __init__(self, abi: Sequence[Any], address: bytes):
        self.address = address
        self.by_selector: dict[bytes, str] = {}
        for entry in abi:
            item = entry if isinstance(entry, dict) else entry.model_dump(mode="json")
            if item.get("type") == "function":
                signature = f"{item['name']}({','.join(_abi_type(i) for i in item.get('inputs', []))})"
                self.by_selector[keccak(text=signature)[:4]] = item["name"]

    def describe(self, receipt: Receipt, data: bytes) -> tuple[str | None, list[str] | None]:
        """(function, inner functions of a multicall); (None, None) for a call of another contract."""
        if receipt.to_address != self.address:
            return None, None
        name = self.by_selector.get(data[:4], "0x" + data[:4].hex())
        if name != "multicall":
            return name, None
        try:
            (calls,) = abi_decode(["bytes[]"], data[4:])
        except Exception:  # eth_abi raises several types for malformed data: the outer name stands
            return name, None
        return name, [self.by_selector.get(bytes(c[:4]), "0x" + bytes(c[:4]).hex()) for c in calls]


def _abi_type(item: dict[str, Any]) -> str:
    kind = item["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item.get("components", [])) + ")" + kind[5:]
    return kind


class RowBuilder:
    """Builds the rows of one batch (see the module docstring)."""

    def __init__(self, contract_id: int, known: Known, allocation: Allocation, functions: FunctionNames):
        self.contract_id = contract_id
        self.known = known
        self.allocation = allocation
        self.functions = functions
        self.rows = Rows()
        self.times: dict[int, datetime] = {}
        self.new_accounts: dict[bytes, int] = {}

    def build(self, batch: Batch) -> Rows:
        tables = self.rows.tables
        self.times = {n: datetime.fromtimestamp(h.timestamp, timezone.utc) for n, h in batch.headers.items()}
        event_blocks = {e.log.block_number for e in batch.events}
        for number in sorted(event_blocks | {batch.end.number}):
            header = batch.end if number == batch.end.number else batch.headers[number]
            tables["block"].append(
                (self.contract_id, number, header.hash, header.parent_hash, self._time(number, header))
            )
        handlers: dict[str, Any] = {}
        for event in batch.events:
            handler = handlers.get(event.name)
            if handler is None:
                handler = handlers[event.name] = getattr(self, f"_on_{event.name}")
            handler(event, event.args)
        self._transactions(batch)
        tables["account"] = [(self.contract_id, a, b) for a, b in sorted(self.new_accounts.items())]
        return self.rows

    def _time(self, number: int, header: BlockHeader) -> datetime:
        if number not in self.times:
            self.times[number] = datetime.fromtimestamp(header.timestamp, timezone.utc)
        return self.times[number]

    def _where(self, event: DecodedEvent) -> tuple[int, int, int, datetime]:
        log = event.log
        return (self.contract_id, log.block_number, log.log_index, self.times[log.block_number])

    def _account(self, address: bytes, block: int) -> None:
        if address != ZERO_ADDRESS and address not in self.known.accounts and address not in self.new_accounts:
            self.new_accounts[address] = block

    def _model(self, model_id: bytes, block: int) -> int:
        model_sk = self.known.models.get(model_id)
        if model_sk is None:
            model_sk = next(self.allocation.models)
            self.known.models[model_id] = model_sk
            self.rows.tables["model"].append((model_sk, self.contract_id, model_id, block))
        return model_sk

    def _key(
        self, key: bytes, event: DecodedEvent, owner: bytes | None = None, execution: bytes | None = None
    ) -> KnownKey:
        """The key's record; for a key registered before the first indexed block, a new instance
        known from this event on."""
        found = self.known.keys.get(key)
        if found is not None:
            return found
        block = event.log.block_number
        lineage = Lineage(next(self.allocation.instances), None, 0)
        self.rows.tables["instance"].append(
            (lineage.instance_sk, self.contract_id, execution, block, None, None, None, None, None, None, None)
        )
        return self._new_key(key, lineage, owner, block, 0)

    def _new_key(self, key: bytes, lineage: Lineage, owner: bytes | None, block: int, seq_from: int) -> KnownKey:
        record = KnownKey(next(self.allocation.keys), lineage, owner)
        self.known.keys[key] = record
        self.rows.tables["instance_key"].append(
            (record.key_sk, self.contract_id, key, lineage.instance_sk, owner, block, seq_from)
        )
        self.rows.instances.add(lineage.instance_sk)
        return record

    # One handler per event, named after it.

    def _on_ModelRegistered(self, event: DecodedEvent, args: dict[str, Any]) -> None:
        block = event.log.block_number
        model_sk = self._model(args["model"], block)
        self._account(args["publisher"], block)
        self.rows.models.add(model_sk)
        self.rows.tables["model_registration"].append((*self._where(event), args["publisher"], model_sk))

    def _on_InstanceRegistered(self, event: DecodedEvent, args: dict[str, Any]) -> None:
        key = args["key"]
        if key in self.known.keys:
            raise ValueError(f"instance key 0x{key.hex()} registered twice (block {event.log.block_number})")
        _, block, log_index, time = self._where(event)
        owner, mode = args["owner"], args["mode"]
        self._account(owner, block)
        lineage = Lineage(next(self.allocation.instances), mode, 0)
        self.rows.tables["instance"].append(
            (
                lineage.instance_sk,
                self.contract_id,
                args["execution"],
                block,
                block,
                log_index,
                time,
                owner,
                self._model(args["model"], block),
                args["instanceDocument"],
                mode,
            )
        )
        self._new_key(key, lineage, owner, block, 0)

    def _on_StateRegistered(self, event: DecodedEvent, args: dict[str, Any]) -> None:
        record = self._key(args["key"], event)
        lineage = record.lineage
        log = event.log
        seq = args["seq"]
        self.rows.tables["state"].append(
            (
                self.contract_id,
                log.log_index,
                log.block_number,
                lineage.instance_sk,
                seq,
                self.times[log.block_number],
                record.key_sk,
                args["state"],
            )
        )
        if seq >= lineage.count:
            lineage.count = seq + 1
        self.rows.instances.add(lineage.instance_sk)

    def _end(self, event: DecodedEvent, args: dict[str, Any], final: bool) -> None:
        record = self._key(args["key"], event)
        lineage = record.lineage
        stated = args["stateCount"]
        # Anchored states are known only as the counts their owner states: what a statement adds.
        added = max(0, stated - lineage.count) if lineage.mode == ANCHORED else 0
        lineage.count = max(lineage.count, stated)
        self.rows.tables["attempt_end"].append(
            (
                *self._where(event),
                lineage.instance_sk,
                record.key_sk,
                final,
                args["attempt"],
                args["endDocument"],
                stated,
                args["head"],
                added,
            )
        )
        self.rows.instances.add(lineage.instance_sk)

    def _on_AttemptEnded(self, event: DecodedEvent, args: dict[str, Any]) -> None:
        self._end(event, args, final=False)

    def _on_InstanceTerminated(self, event: DecodedEvent, args: dict[str, Any]) -> None:
        self._end(event, args, final=True)

    def _on_TransitionRegistered(self, event: DecodedEvent, args: dict[str, Any]) -> None:
        record = self._key(args["key"], event)
        self.rows.tables["transition"].append(
            (
                *self._where(event),
                record.lineage.instance_sk,
                record.key_sk,
                args["pre"],
                args["post"],
                args["preSeq"],
                args["postSeq"],
            )
        )
        self.rows.instances.add(record.lineage.instance_sk)

    def _on_TransferProposed(self, event: DecodedEvent, args: dict[str, Any]) -> None:
        block = event.log.block_number
        record = self._key(args["key"], event, owner=args["from"])
        self._account(args["from"], block)
        self._account(args["to"], block)
        self.rows.tables["transfer_proposal"].append(
            (*self._where(event), record.lineage.instance_sk, record.key_sk, args["from"], args["to"])
        )
        self.rows.keys.add(record.key_sk)
        self.rows.instances.add(record.lineage.instance_sk)

    def _on_InstanceTransferred(self, event: DecodedEvent, args: dict[str, Any]) -> None:
        block = event.log.block_number
        source = self._key(args["fromKey"], event, owner=args["from"], execution=args["execution"])
        if args["toKey"] in self.known.keys:
            raise ValueError(f"instance key 0x{args['toKey'].hex()} created twice (block {block})")
        self._account(args["from"], block)
        self._account(args["to"], block)
        lineage = source.lineage
        target = self._new_key(args["toKey"], lineage, args["to"], block, lineage.count)
        self.rows.tables["transfer"].append(
            (
                *self._where(event),
                lineage.instance_sk,
                source.key_sk,
                target.key_sk,
                args["execution"],
                args["from"],
                args["to"],
            )
        )
        self.rows.keys.add(source.key_sk)

    def _on_OperatorSet(self, event: DecodedEvent, args: dict[str, Any]) -> None:
        block = event.log.block_number
        self._account(args["owner"], block)
        self._account(args["operator"], block)
        self.rows.tables["operator_change"].append(
            (*self._where(event), args["owner"], args["operator"], args["approved"])
        )
        self.rows.operators.add((args["owner"], args["operator"]))

    def _on_ClientIdRegistered(self, event: DecodedEvent, args: dict[str, Any]) -> None:
        self._account(args["account"], event.log.block_number)
        raw = args["clientId"]
        self.rows.tables["client_id_registration"].append((*self._where(event), args["account"], raw, render_text(raw)))
        self.rows.accounts.add(args["account"])

    def _on_CertificateRegistered(self, event: DecodedEvent, args: dict[str, Any]) -> None:
        self._account(args["account"], event.log.block_number)
        self.rows.tables["certificate_registration"].append(
            (*self._where(event), args["account"], args["fingerprint"], args["signature"])
        )
        self.rows.accounts.add(args["account"])

    def _on_StatesAnchored(self, event: DecodedEvent, args: dict[str, Any]) -> None:
        self._account(args["submitter"], event.log.block_number)
        self.rows.tables["anchor"].append((*self._where(event), args["submitter"], args["root"], args["leafCount"]))

    def _transactions(self, batch: Batch) -> None:
        spans: dict[bytes, list[int]] = {}  # tx hash -> [block, first log, last log, events, states]
        for event in batch.events:
            log = event.log
            span = spans.get(log.tx_hash)
            if span is None:
                spans[log.tx_hash] = [
                    log.block_number,
                    log.log_index,
                    log.log_index,
                    1,
                    event.name == "StateRegistered",
                ]
            else:
                span[2] = log.log_index
                span[3] += 1
                span[4] += event.name == "StateRegistered"
        rows = self.rows.tables["transaction"]
        for tx_hash, (block, first, last, events, states) in spans.items():
            receipt = batch.receipts[tx_hash]
            self._account(receipt.from_address, block)
            function, inner = self.functions.describe(receipt, batch.inputs.get(tx_hash, b""))
            rows.append(
                (
                    self.contract_id,
                    block,
                    first,
                    last,
                    self.times[block],
                    tx_hash,
                    receipt.from_address,
                    receipt.to_address,
                    receipt.gas_used,
                    receipt.effective_gas_price,
                    receipt.fee_wei,
                    function,
                    inner,
                    events,
                    states,
                )
            )
