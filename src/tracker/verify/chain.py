"""What the chain says about one instance, read once for all checks (batched: one multicall, one eth_getLogs per event kind, one batch of block headers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tracker.chain.contract import InstanceRecord, TrackerContract
from tracker.documents.ids import id_to_bytes32, normalize_address, normalize_id
from tracker.documents.protocol import InstanceProtocol
from tracker.errors import ChainError, one_line

STATE_REGISTERED_SIGNATURE = "StateRegistered(bytes32,bytes32,uint256)"
STATES_ANCHORED_SIGNATURE = "StatesAnchored(bytes32,address,uint256)"


def _topic(signature: str) -> str:
    from eth_utils import keccak

    return "0x" + keccak(text=signature).hex()


STATE_REGISTERED_TOPIC = _topic(STATE_REGISTERED_SIGNATURE)
STATES_ANCHORED_TOPIC = _topic(STATES_ANCHORED_SIGNATURE)
INSTANCE_TERMINATED_TOPIC = _topic("InstanceTerminated(bytes32,bytes32,uint256,bytes32)")


@dataclass(frozen=True)
class StateEvent:
    """A StateRegistered log of the instance."""

    state_id: str
    seq: int
    block_number: int
    transaction_hash: str


@dataclass(frozen=True)
class AnchorFact:
    """An anchored Merkle root: who anchored it, and the block and transaction that did."""

    root: str
    submitter: str | None
    block_number: int | None = None
    transaction_hash: str | None = None


@dataclass
class ChainView:
    """What the chain says about one instance, read once for all checks."""

    chain_id: int
    contract_address: str
    instance: InstanceRecord | None
    model: int | None  # v1 leftover: the verifier is being rewritten for v2
    events_by_seq: dict[int, StateEvent]
    anchors: dict[str, AnchorFact]
    block_times: dict[int, int]
    operators: frozenset[str] = frozenset()
    end_document: str | None = None

    def acts_for_owner(self, address: str | None) -> bool:
        """Whether an address is the instance owner or an operator the owner approved."""
        owner = self.instance.owner if self.instance else None
        return address is not None and (address == owner or address in self.operators)

    def seqs_of(self, state_id: str) -> list[int]:
        return sorted(seq for seq, event in self.events_by_seq.items() if event.state_id == state_id)


def _web3() -> Any:
    from ape import chain

    return chain.provider.web3


def _logs(address: str, topics: list[Any], from_block: int = 0) -> list[dict[str, Any]]:
    """`eth_getLogs` results. Over JSON-RPC the raw response is used: web3's result formatters
    checksum an address per log, which costs more than the request itself for a thousand logs.
    ape's in-process chain speaks no JSON-RPC, so there web3's method is used as it is."""
    from web3.providers import JSONBaseProvider
    from web3.types import RPCEndpoint

    web3 = _web3()
    params = {"address": address, "topics": topics, "fromBlock": hex(from_block), "toBlock": "latest"}
    try:
        if not isinstance(web3.provider, JSONBaseProvider):
            return [dict(log) for log in web3.eth.get_logs({**params, "fromBlock": from_block})]
        response = web3.provider.make_request(RPCEndpoint("eth_getLogs"), [params])
    except Exception as error:  # web3 raises transport- and node-specific errors
        raise ChainError(f"eth_getLogs failed: {one_line(error)}") from error
    if "error" in response:
        raise ChainError(f"eth_getLogs failed: {one_line(response['error'])}")
    return list(response["result"])


def _quantity(value: Any) -> int:
    return value if isinstance(value, int) else int(str(value), 16)


def _data(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return bytes.fromhex(str(value).removeprefix("0x"))


def _state_event(log: dict[str, Any]) -> StateEvent:
    return StateEvent(
        state_id=_data(log["topics"][2]).hex(),
        seq=int.from_bytes(_data(log["data"])[:32], "big"),
        block_number=_quantity(log["blockNumber"]),
        transaction_hash=_data(log["transactionHash"]).hex(),
    )


def state_events(tracker: TrackerContract, instance_id: str, from_block: int = 0) -> list[StateEvent]:
    """Every StateRegistered event of the instance, in one `eth_getLogs` filtered by its topic."""
    topic = "0x" + normalize_id(instance_id)
    return [_state_event(log) for log in _logs(tracker.address, [STATE_REGISTERED_TOPIC, topic], from_block)]


def _block_timestamps(numbers: Sequence[int], batched: bool) -> dict[int, int]:
    """Block timestamps, in one JSON-RPC batch when the provider takes batches."""
    wanted = sorted(set(numbers))
    if not wanted:
        return {}
    web3 = _web3()
    if batched and len(wanted) > 1:
        try:
            with web3.batch_requests() as batch:
                for number in wanted:
                    batch.add(web3.eth.get_block(number))
                blocks = batch.execute()
            return {number: int(block["timestamp"]) for number, block in zip(wanted, blocks)}
        except Exception:  # a provider without batch support (ape's in-process chain): one by one
            pass
    return {number: int(web3.eth.get_block(number)["timestamp"]) for number in wanted}


def _anchor_records(tracker: TrackerContract, roots: Sequence[str]) -> dict[str, str | None]:
    """Root => submitter (None when not anchored), in one multicall."""
    from eth_abi import decode

    results = tracker.read_many(tracker.contract.anchors.encode_input(id_to_bytes32(root)) for root in roots)
    submitters: dict[str, str | None] = {}
    for root, data in zip(roots, results):
        submitter, _anchored_at, _leaf_count = decode(["address", "uint64", "uint32"], data)
        submitters[root] = None if int(submitter, 16) == 0 else normalize_address(submitter)
    return submitters


def read_chain(tracker: TrackerContract, protocol: InstanceProtocol, batched: bool = True) -> ChainView:
    """Reads every chain fact the checks need: batched, or one call per state (the baseline)."""
    from ape import chain

    instance_id, model_id = protocol.instance_hash, protocol.model_hash
    instance = tracker.instances([instance_id])[instance_id]
    model = tracker.models_of([model_id])[model_id]
    roots = sorted({entry.merkle_root for entry in protocol.instance_protocol if entry.merkle_root})
    since = tracker.deployment_block()
    if batched:
        events = {event.seq: event for event in state_events(tracker, instance_id, since)}
    else:
        events = {}
        topic = "0x" + instance_id
        for entry in protocol.instance_protocol:
            tracker.instances([instance_id])  # what a per-state check reads: the instance, then its log
            for log in _logs(tracker.address, [STATE_REGISTERED_TOPIC, topic, "0x" + entry.state_hash], since):
                event = _state_event(log)
                events[event.seq] = event
    anchors: dict[str, AnchorFact] = {}
    if roots:
        submitters = _anchor_records(tracker, roots)
        logs = _logs(tracker.address, [STATES_ANCHORED_TOPIC, ["0x" + root for root in roots]], since)
        placed: dict[str, dict[str, Any]] = {_data(log["topics"][1]).hex(): log for log in logs}
        for root in roots:
            found = placed.get(root)
            anchors[root] = AnchorFact(
                root,
                submitters[root],
                _quantity(found["blockNumber"]) if found else None,
                _data(found["transactionHash"]).hex() if found else None,
            )
    blocks = [event.block_number for event in events.values()]
    blocks += [fact.block_number for fact in anchors.values() if fact.block_number is not None]
    if batched:
        times = _block_timestamps(blocks, batched=True)
    else:
        times = {}
        for number in blocks:  # one request per state, as a verifier without batching does
            times[number] = int(_web3().eth.get_block(number)["timestamp"])
    operators: set[str] = set()
    if instance is not None:
        candidates = {entry.client_address for entry in protocol.instance_protocol}
        candidates |= {fact.submitter for fact in anchors.values() if fact.submitter}
        for address in sorted(candidates - {instance.owner}):  # usually none: the owner registers
            if tracker.is_operator(instance.owner, address):
                operators.add(address)
    end_document = None
    if protocol.end_hash is not None and instance is not None and instance.terminated:
        terminated = _logs(tracker.address, [INSTANCE_TERMINATED_TOPIC, "0x" + instance_id], since)
        end_document = _data(terminated[0]["topics"][2]).hex() if terminated else None
    return ChainView(
        int(chain.chain_id),
        normalize_address(tracker.address),
        instance,
        model,
        events,
        anchors,
        times,
        frozenset(operators),
        end_document,
    )
