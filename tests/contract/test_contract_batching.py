"""The contract's own `multicall`: several calls in one transaction, all or nothing."""

from __future__ import annotations

from tracker.documents.facts import chain_head


def test_several_calls_in_one_transaction(contract, owner, operator, ids, hexid, events, chain):
    calls = [
        contract.registerModel.encode_input(ids("m")),
        contract.registerInstance.encode_input(ids("m"), ids("i")),
        contract.registerStates.encode_input(ids("i"), 0, [ids("a"), ids("b")]),
        contract.setOperator.encode_input(operator.address, True),
        contract.registerClientId.encode_input("batched"),
    ]
    start = chain.blocks.height
    receipt = contract.multicall(calls, sender=owner)
    assert chain.blocks.height == start + 1
    assert events(receipt) == [
        ("ModelRegistered", {"model": ids("m"), "publisher": owner.address}),
        ("InstanceRegistered", {"instance": ids("i"), "model": ids("m"), "owner": owner.address}),
        ("StateRegistered", {"instance": ids("i"), "state": ids("a"), "seq": 0}),
        ("StateRegistered", {"instance": ids("i"), "state": ids("b"), "seq": 1}),
        ("OperatorSet", {"owner": owner.address, "operator": operator.address, "approved": True}),
        ("ClientIdRegistered", {"account": owner.address, "clientId": "batched"}),
    ]
    assert bytes(contract.instanceHead(ids("i"))).hex() == chain_head(hexid("m"), hexid("i"), [hexid("a"), hexid("b")])
    assert contract.isOperator(owner, operator) is True
    assert contract.clientIdOf(owner) == "batched"


def test_batch_of_executions_across_instances(contract, owner, ids, events):
    calls = [contract.registerExecution.encode_input(ids("m"), ids(f"i{n}"), [ids(f"s{n}")]) for n in range(4)]
    receipt = contract.multicall(calls, sender=owner)
    assert [name for name, _ in events(receipt)].count("InstanceRegistered") == 4
    assert [name for name, _ in events(receipt)].count("ModelRegistered") == 1
    assert [contract.instances(ids(f"i{n}"))[1] for n in range(4)] == [1, 1, 1, 1]


def test_failing_inner_call_reverts_the_whole_batch_with_its_error(contract, owner, ids, expect_revert):
    contract.registerExecution(ids("m"), ids("i"), [ids("a")], sender=owner)
    calls = [
        contract.registerModel.encode_input(ids("m2")),
        contract.registerStates.encode_input(ids("i"), 1, [ids("b")]),
        contract.registerStates.encode_input(ids("i"), 1, [ids("c")]),  # a resend: seq 1 is taken
    ]
    with expect_revert("SequenceMismatch", instance=ids("i"), expected=2, given=1):
        contract.multicall(calls, sender=owner)
    assert contract.models(ids("m2"))[0] == "0x" + "00" * 20
    assert contract.instances(ids("i"))[1] == 1


def test_multicall_reads_in_one_call(contract, owner, ids):
    contract.registerExecution(ids("m"), ids("i"), [ids("a")], sender=owner)
    results = contract.multicall.call(
        [contract.instanceHead.encode_input(ids("i")), contract.models.encode_input(ids("m"))]
    )
    assert bytes(results[0]) == bytes(contract.instanceHead(ids("i")))
    assert len(results) == 2 and len(bytes(results[1])) == 64


def test_client_send_batch_reports_inner_error_in_one_line(tracker, contract, owner, hexid):
    from tracker.errors import ChainError

    tracker.send_batch([tracker.register_execution_call(hexid("m"), hexid("i"), [hexid("a")])])
    calls = [tracker.register_model_call(hexid("m2")), tracker.register_states_call(hexid("i"), 5, [hexid("b")])]
    try:
        tracker.send_batch(calls)
    except ChainError as error:
        message = str(error)
    else:
        raise AssertionError("send_batch accepted a gap in the sequence")
    assert message.startswith("registerModel, registerStates failed: SequenceMismatch(")
    assert "expected=1" in message and "given=5" in message and "\n" not in message


def test_inner_call_reverting_without_data_reverts_failed_call(contract, owner, ids, expect_revert):
    unknown_selector = bytes.fromhex("deadbeef")
    calls = [contract.registerModel.encode_input(ids("m")), unknown_selector]
    with expect_revert("FailedCall"):
        contract.multicall(calls, sender=owner)
    assert contract.models(ids("m"))[0] == "0x" + "00" * 20
