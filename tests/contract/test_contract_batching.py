"""The contract's own `multicall`: several calls in one transaction, all or nothing."""

from __future__ import annotations

from contract_model import Execution, Mode, Status, ident, record, states

RUN = Execution("run")


def test_several_calls_in_one_transaction(contract, owner, operator, events, chain):
    calls = [
        contract.registerModel.encode_input(owner.address, RUN.model),
        contract.registerExecution.encode_input(owner.address, *RUN.ids, []),
        contract.registerStates.encode_input(owner.address, RUN.execution, 0, states("a", "b")),
        contract.setOperator.encode_input(operator.address, True),
        contract.registerClientId.encode_input("batched"),
    ]
    start = chain.blocks.height
    receipt = contract.multicall(calls, sender=owner)
    assert chain.blocks.height == start + 1
    key = RUN.key(owner)
    assert [name for name, _ in events(receipt)] == [
        "ModelRegistered",
        "InstanceRegistered",
        "StateRegistered",
        "StateRegistered",
        "OperatorSet",
        "ClientIdRegistered",
    ]
    assert events(receipt, "StateRegistered")[1] == ("StateRegistered", {"key": key, "state": states("b")[0], "seq": 1})
    assert record(contract, owner, RUN) == (2, 0, Status.OPEN, Mode.DIRECT, RUN.head(states("a", "b")))
    assert contract.isOperator(owner, operator) is True
    assert contract.clientIdOf(owner) == "batched"


def test_batch_of_executions_across_instances(contract, owner, events):
    runs = [Execution(f"run {n}") for n in range(4)]
    calls = [
        contract.registerExecution.encode_input(owner.address, *run.ids, states(str(n))) for n, run in enumerate(runs)
    ]
    receipt = contract.multicall(calls, sender=owner)
    names = [name for name, _ in events(receipt)]
    assert names.count("InstanceRegistered") == 4 and names.count("ModelRegistered") == 1
    assert [record(contract, owner, run)[0] for run in runs] == [1, 1, 1, 1]


def test_an_operator_batches_for_several_owners(contract, owner, other, operator):
    for account in (owner, other):
        contract.setOperator(operator, True, sender=account)
    calls = [
        contract.registerExecution.encode_input(account.address, *RUN.ids, states("a")) for account in (owner, other)
    ]
    contract.multicall(calls, sender=operator)
    assert record(contract, owner, RUN)[:3] == record(contract, other, RUN)[:3] == (1, 0, Status.OPEN)


def test_failing_inner_call_reverts_the_whole_batch_with_its_error(contract, owner, expect_revert):
    contract.registerExecution(owner, *RUN.ids, states("a"), sender=owner)
    calls = [
        contract.registerModel.encode_input(owner.address, ident("m2")),
        contract.registerStates.encode_input(owner.address, RUN.execution, 1, states("b")),
        contract.registerStates.encode_input(owner.address, RUN.execution, 1, states("c")),  # a resend
    ]
    with expect_revert("SequenceMismatch", key=RUN.key(owner), expected=2, given=1):
        contract.multicall(calls, sender=owner)
    assert contract.modelOf(owner, ident("m2")) == 0
    assert record(contract, owner, RUN)[0] == 1


def test_multicall_reads_in_one_call(contract, owner):
    contract.registerExecution(owner, *RUN.ids, states("a"), sender=owner)
    results = contract.multicall.call(
        [
            contract.instanceOf.encode_input(owner.address, RUN.execution),
            contract.modelOf.encode_input(owner.address, RUN.model),
        ]
    )
    assert len(results) == 2 and len(bytes(results[0])) == 5 * 32
    assert bytes(results[0])[-32:] == RUN.head(states("a"))


def test_inner_call_reverting_without_data_reverts_failed_call(contract, owner, expect_revert):
    unknown_selector = bytes.fromhex("deadbeef")
    calls = [contract.registerModel.encode_input(owner.address, RUN.model), unknown_selector]
    with expect_revert("FailedCall"):
        contract.multicall(calls, sender=owner)
    assert contract.modelOf(owner, RUN.model) == 0
