"""The events alone rebuild every record the contract stores: what an indexer relies on."""

from __future__ import annotations

from dataclasses import dataclass, field

from contract_model import Execution, MerkleTree, chain, ident, key, start_head, states
from eth_utils import keccak

EVENTS = (
    "ModelRegistered",
    "InstanceRegistered",
    "StateRegistered",
    "AttemptEnded",
    "InstanceTerminated",
    "TransitionRegistered",
    "TransferProposed",
    "InstanceTransferred",
    "OperatorSet",
    "ClientIdRegistered",
    "CertificateRegistered",
    "StatesAnchored",
)


@dataclass
class Rebuilt:
    execution: bytes
    model: bytes
    document: bytes
    mode: int
    states: list[bytes] = field(default_factory=list)
    count: int = 0  # anchored: the owner's last statement
    pinned_head: bytes | None = None  # anchored: the owner's last statement
    attempts: int = 0
    status: int = 1

    def head(self) -> bytes:
        if self.mode == 1:
            return b"\x00" * 32
        return chain(start_head(self.execution, self.model, self.document), self.states)


def _all_logs(contract, chain_manager) -> list:
    """Every log of the contract in chain order, as an indexer reads them."""
    stop = chain_manager.blocks.height + 1
    logs = [log for name in EVENTS for log in getattr(contract, name).range(stop)]
    return sorted(logs, key=lambda log: (log.block_number, log.log_index))


def _rebuild(logs) -> dict:
    models: set[tuple[str, bytes]] = set()
    instances: dict[bytes, Rebuilt] = {}
    pending: dict[bytes, str] = {}
    operators: dict[tuple[str, str], bool] = {}
    client_ids: dict[str, str] = {}
    certificates: dict[str, tuple[bytes, bytes]] = {}
    anchors: dict[tuple[str, bytes], int] = {}
    for log in logs:
        args, name = log.event_arguments, log.event_name
        if name == "ModelRegistered":
            entry = (args["publisher"], bytes(args["model"]))
            assert entry not in models, "a model was registered twice by one publisher"
            models.add(entry)
        elif name == "InstanceRegistered":
            instance = bytes(args["key"])
            assert instance == key(args["owner"], bytes(args["execution"]))
            instances[instance] = Rebuilt(
                bytes(args["execution"]), bytes(args["model"]), bytes(args["instanceDocument"]), int(args["mode"])
            )
        elif name == "StateRegistered":
            record = instances[bytes(args["key"])]
            assert args["seq"] == len(record.states), "states arrived out of order"
            record.states.append(bytes(args["state"]))
            record.count = len(record.states)
        elif name in ("AttemptEnded", "InstanceTerminated"):
            record = instances[bytes(args["key"])]
            if record.mode == 0:
                assert args["stateCount"] == len(record.states)
                assert bytes(args["head"]) == record.head()
            record.count, record.pinned_head = args["stateCount"], bytes(args["head"])
            record.attempts = max(record.attempts, args["attempt"] + 1)
            record.status = 2 if name == "InstanceTerminated" else 1
        elif name == "TransitionRegistered":
            record = instances[bytes(args["key"])]
            assert record.states[args["preSeq"]] == bytes(args["pre"])
            assert record.states[args["postSeq"]] == bytes(args["post"])
        elif name == "TransferProposed":
            pending[bytes(args["key"])] = args["to"]
        elif name == "InstanceTransferred":
            source = instances[bytes(args["fromKey"])]
            assert pending.pop(bytes(args["fromKey"])) == args["to"]
            moved = Rebuilt(**{**source.__dict__, "states": list(source.states)})
            instances[bytes(args["toKey"])] = moved
            source.status = 3
        elif name == "OperatorSet":
            operators[(args["owner"], args["operator"])] = args["approved"]
        elif name == "ClientIdRegistered":
            client_ids[args["account"]] = args["clientId"]
        elif name == "CertificateRegistered":
            certificates[args["account"]] = (bytes(args["fingerprint"]), bytes(args["signature"]))
        elif name == "StatesAnchored":
            anchors[(args["submitter"], bytes(args["root"]))] = args["leafCount"]
    pending = {k: v for k, v in pending.items() if v != "0x" + "00" * 20}
    return dict(
        models=models,
        instances=instances,
        pending=pending,
        operators=operators,
        client_ids=client_ids,
        certificates=certificates,
        anchors=anchors,
    )


def test_events_rebuild_storage(contract, owner, other, operator, accounts, sign, chain):
    newcomer = accounts[3]
    one, two, anchored, kept = Execution("one"), Execution("two"), Execution("anchored"), Execution("kept")
    fingerprint = keccak(text="certificate")
    contract.registerExecution(owner, *one.ids, states("a", "b"), sender=owner)
    contract.registerModel(owner, one.model, sender=owner)  # no-op: no event
    contract.registerExecution(other, *two.ids, [], sender=other)
    contract.setOperator(operator, True, sender=owner)
    contract.registerStates(owner, one.execution, 2, states("c"), sender=operator)
    contract.registerStates(other, two.execution, 0, states("x", "y"), sender=other)
    contract.registerTransition(owner, one.execution, one.head(states("a")), states("b", "c"), 1, sender=owner)
    contract.endAttempt(owner, one.execution, 3, [], 0, ident("failed"), sender=operator)
    contract.terminate(owner, one.execution, 3, states("d"), 1, ident("end"), sender=operator)
    contract.registerAnchoredExecution(owner, *anchored.ids, sender=owner)
    tree = MerkleTree.build([anchored.leaf(s, n) for n, s in enumerate(states("p", "q"))])
    contract.anchorStates(tree.root, 2, sender=owner)
    contract.anchorStates(tree.root, 2, sender=other)  # the same root under another submitter
    contract.closeAnchored(
        owner, anchored.execution, 0, 2, anchored.head(states("p", "q")), ident("e"), True, sender=owner
    )
    contract.proposeTransfer(two.execution, owner, sender=other)
    contract.acceptTransfer(other, two.execution, sender=owner)
    contract.registerExecution(owner, *kept.ids, [], sender=owner)
    contract.proposeTransfer(kept.execution, newcomer, sender=owner)  # left pending
    contract.setOperator(operator, False, sender=owner)
    contract.registerClientId("acme", sender=owner)
    contract.registerCertificate(fingerprint, sign(owner, fingerprint), sender=owner)

    rebuilt = _rebuild(_all_logs(contract, chain))

    assert rebuilt["models"] == {(owner.address, one.model), (other.address, two.model)}
    for publisher, model in rebuilt["models"]:
        assert contract.modelOf(publisher, model) != 0
    assert len(rebuilt["instances"]) == 5
    for instance, record in rebuilt["instances"].items():
        count, attempts, status, mode = tuple(contract.instances(instance))
        assert (count, attempts, status, mode) == (record.count, record.attempts, record.status, record.mode)
    for account, run in ((owner, one), (owner, two), (other, two), (owner, anchored), (owner, kept)):
        assert bytes(contract.instanceOf(account, run.execution)[4]) == rebuilt["instances"][run.key(account)].head()
    assert rebuilt["instances"][one.key(owner)].states == states("a", "b", "c", "d")
    assert rebuilt["instances"][anchored.key(owner)].pinned_head == anchored.head(states("p", "q"))
    assert rebuilt["pending"] == {kept.key(owner): newcomer.address}
    assert contract.pendingOwner(kept.key(owner)) == newcomer.address
    assert rebuilt["operators"] == {(owner.address, operator.address): False}
    assert contract.isOperator(owner, operator) is False
    assert rebuilt["client_ids"] == {owner.address: contract.clientIdOf(owner)}
    stored_fingerprint, stored_signature, _ = contract.certificateOf(owner)
    assert rebuilt["certificates"] == {owner.address: (bytes(stored_fingerprint), bytes(stored_signature))}
    assert rebuilt["anchors"] == {(owner.address, tree.root): 2, (other.address, tree.root): 2}
    for (submitter, root), leaf_count in rebuilt["anchors"].items():
        assert contract.anchorOf(submitter, root)[1] == leaf_count
