"""The Python client of the contract (tracker.chain.contract): the reads and the one send path that
the tracker, execution control and the verifier use, on the chain the suite runs on."""

from __future__ import annotations

import pytest

from tracker.chain.contract import Mode, Status, TrackerContract, instance_key
from tracker.documents.facts import chain_head, start_head
from tracker.documents.ids import sha256_hex as sha
from tracker.errors import ChainError


def me(tracker: TrackerContract) -> str:
    return str(tracker.sender.address)


def test_records_are_read_back_under_their_owner_in_one_call(tracker, contract, other):
    states = [sha(f"s{i}") for i in range(3)]
    tracker.send([tracker.register_execution_call(me(tracker), sha("x"), sha("m"), sha("i"), states)])
    tracker.send(
        [
            tracker.register_model_call(me(tracker), sha("m2")),
            tracker.register_anchored_execution_call(me(tracker), sha("x2"), sha("m2"), sha("i2")),
        ]
    )
    got = tracker.instances(me(tracker), [sha("x"), sha("x2"), sha("nope")])
    direct, anchored = got[sha("x")], got[sha("x2")]
    assert got[sha("nope")] is None
    assert (direct.state_count, direct.status, direct.mode) == (3, Status.OPEN, Mode.DIRECT)
    assert direct.head == chain_head(sha("x"), sha("m"), sha("i"), states)
    assert (anchored.mode, anchored.head, anchored.state_count) == (Mode.ANCHORED, None, 0)
    # the key is computed offline as the contract does, and nothing exists under another owner
    assert direct.key == bytes(contract.instanceKey(tracker.sender, bytes.fromhex(sha("x")))).hex()
    assert direct.key == instance_key(me(tracker), sha("x"))
    assert tracker.instance(str(other.address), sha("x")) is None
    registered = tracker.models_registered_at(me(tracker), [sha("m"), sha("m2"), sha("nope")])
    assert registered[sha("m")] and registered[sha("m2")] and registered[sha("nope")] is None
    assert tracker.model_registered_at(str(other.address), sha("m")) is None
    assert (
        start_head(sha("x"), sha("m"), sha("i"))
        == bytes(contract.startHead(bytes.fromhex(sha("x")), bytes.fromhex(sha("m")), bytes.fromhex(sha("i")))).hex()
    )


def test_send_names_the_custom_error_and_sends_nothing(tracker, chain):
    tracker.send([tracker.register_execution_call(me(tracker), sha("x"), sha("m"), sha("i"), [])])
    height = chain.blocks.height
    key = instance_key(me(tracker), sha("x"))
    with pytest.raises(ChainError) as error:
        tracker.send([tracker.register_execution_call(me(tracker), sha("x"), sha("m"), sha("i"), [])])
    assert str(error.value) == f"registerExecution failed: InstanceAlreadyRegistered(key=0x{key})"
    assert chain.blocks.height == height  # refused while estimating gas: no transaction was mined


def test_send_packs_several_calls_into_one_transaction(tracker):
    calls = [tracker.register_execution_call(me(tracker), sha(f"x{n}"), sha("m"), sha(f"i{n}"), []) for n in range(3)]
    sent = tracker.send(calls)
    assert sent.gas_used > 0 and len(sent.transaction_hash) == 64
    records = tracker.instances(me(tracker), [sha(f"x{n}") for n in range(3)])
    assert all(record is not None for record in records.values())


def test_send_without_an_account_is_one_line(contract):
    with pytest.raises(ChainError, match=r"^no account to send transactions from \(use --account\)$"):
        TrackerContract(contract).send([TrackerContract(contract).register_model_call("0" * 40, sha("m"))])
