"""The events alone rebuild every record the contract stores: what an indexer relies on."""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_utils import keccak

EVENTS = (
    "ModelRegistered",
    "InstanceRegistered",
    "StateRegistered",
    "TransitionRegistered",
    "InstanceTerminated",
    "InstanceTransferred",
    "OperatorSet",
    "ClientIdRegistered",
    "CertificateRegistered",
    "StatesAnchored",
)


@dataclass
class RebuiltInstance:
    model: bytes
    owner: str
    states: list[bytes] = field(default_factory=list)
    terminated: bool = False

    def head(self, instance: bytes) -> bytes:
        head = keccak(self.model + instance)
        for state in self.states:
            head = keccak(head + state)
        return head


def _all_logs(contract, chain) -> list:
    """Every log of the contract in chain order, as an indexer reads them."""
    stop = chain.blocks.height + 1
    logs = [log for name in EVENTS for log in getattr(contract, name).range(stop)]
    return sorted(logs, key=lambda log: (log.block_number, log.log_index))


def _rebuild(logs) -> dict:
    models: dict[bytes, str] = {}
    instances: dict[bytes, RebuiltInstance] = {}
    operators: dict[tuple[str, str], bool] = {}
    client_ids: dict[str, str] = {}
    certificates: dict[str, tuple[bytes, bytes]] = {}
    anchors: dict[bytes, tuple[str, int]] = {}
    for log in logs:
        args = log.event_arguments
        name = log.event_name
        if name == "ModelRegistered":
            assert bytes(args["model"]) not in models, "a model was registered twice"
            models[bytes(args["model"])] = args["publisher"]
        elif name == "InstanceRegistered":
            instances[bytes(args["instance"])] = RebuiltInstance(bytes(args["model"]), args["owner"])
        elif name == "StateRegistered":
            record = instances[bytes(args["instance"])]
            assert args["seq"] == len(record.states), "states arrived out of order"
            record.states.append(bytes(args["state"]))
        elif name == "InstanceTerminated":
            record = instances[bytes(args["instance"])]
            record.terminated = True
            assert args["stateCount"] == len(record.states)
            assert bytes(args["head"]) == record.head(bytes(args["instance"]))
        elif name == "InstanceTransferred":
            record = instances[bytes(args["instance"])]
            assert args["from"] == record.owner
            record.owner = args["to"]
        elif name == "TransitionRegistered":
            record = instances[bytes(args["instance"])]
            assert record.states[args["preSeq"]] == bytes(args["pre"])
            assert record.states[args["postSeq"]] == bytes(args["post"])
        elif name == "OperatorSet":
            operators[(args["owner"], args["operator"])] = args["approved"]
        elif name == "ClientIdRegistered":
            client_ids[args["account"]] = args["clientId"]
        elif name == "CertificateRegistered":
            certificates[args["account"]] = (bytes(args["fingerprint"]), bytes(args["signature"]))
        elif name == "StatesAnchored":
            anchors[bytes(args["root"])] = (args["submitter"], args["leafCount"])
    return dict(
        models=models,
        instances=instances,
        operators=operators,
        client_ids=client_ids,
        certificates=certificates,
        anchors=anchors,
    )


def test_events_rebuild_storage(contract, owner, other, operator, ids, sign, chain):
    fingerprint = keccak(text="certificate")
    contract.registerExecution(ids("m1"), ids("i1"), [ids("a"), ids("b")], sender=owner)
    contract.registerModel(ids("m1"), sender=other)  # no-op: no event
    contract.registerExecution(ids("m1"), ids("i2"), [], sender=other)
    contract.setOperator(operator, True, sender=owner)
    contract.registerStates(ids("i1"), 2, [ids("c")], sender=operator)
    contract.registerStates(ids("i2"), 0, [ids("x"), ids("y")], sender=other)
    start = keccak(ids("m1") + ids("i1"))
    contract.registerTransition(ids("i1"), keccak(start + ids("a")), [ids("b"), ids("c")], 1, sender=owner)
    contract.registerStatesAndTerminate(ids("i1"), 3, [ids("d")], ids("end"), sender=operator)
    contract.transferInstance(ids("i2"), owner, sender=other)
    contract.setOperator(operator, False, sender=owner)
    contract.registerClientId("acme", sender=owner)
    contract.registerCertificate(fingerprint, sign(owner, fingerprint), sender=owner)
    contract.anchorStates(ids("root"), 7, sender=other)

    rebuilt = _rebuild(_all_logs(contract, chain))

    assert rebuilt["models"] == {ids("m1"): owner.address}
    for model, publisher in rebuilt["models"].items():
        assert contract.models(model)[0] == publisher
    assert set(rebuilt["instances"]) == {ids("i1"), ids("i2")}
    for instance, record in rebuilt["instances"].items():
        stored_owner, count, terminated, model, _ = contract.instances(instance)
        assert (stored_owner, count, terminated, bytes(model)) == (
            record.owner,
            len(record.states),
            record.terminated,
            record.model,
        )
        assert bytes(contract.instanceHead(instance)) == record.head(instance)
    assert rebuilt["instances"][ids("i1")].states == [ids(n) for n in "abcd"]
    assert rebuilt["instances"][ids("i2")].owner == owner.address
    assert rebuilt["operators"] == {(owner.address, operator.address): False}
    assert contract.isOperator(owner, operator) is False
    assert rebuilt["client_ids"] == {owner.address: contract.clientIdOf(owner)}
    stored_fingerprint, stored_signature, _ = contract.certificateOf(owner)
    assert rebuilt["certificates"] == {owner.address: (bytes(stored_fingerprint), bytes(stored_signature))}
    submitter, _, leaf_count = contract.anchors(ids("root"))
    assert rebuilt["anchors"] == {ids("root"): (submitter, leaf_count)}
