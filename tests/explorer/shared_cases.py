"""The verification cases both verifiers run: the Python one (tests/explorer/test_shared_cases.py)
and the explorer's JavaScript (web/test/shared-cases.test.mjs), from one file, verify_cases.json.

Each case is a protocol, the bytes of its documents (a URL missing from `documents` answers 404)
and what the chain says of the instance (the chain view, in the shape web/src/verify/chain.js
reads it; null: the chain was not read). Checks 2 and 3, every state row and every attempt row are
judged from them; `expect` says in a few words what must come out (written by hand: which check
or row fails, with which words), `results` is every verdict and reason in full as the Python
verifier gives them, which the JavaScript must reproduce word for word.

`python tests/explorer/shared_cases.py` rewrites verify_cases.json from the cases below (the
documents are made by the project's own document builders, so they are what the tracker
publishes).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from tracker.chain.contract import AnchorRecord, InstanceRecord, Mode, Status, instance_key
from tracker.chain.merkle import MerkleTree, state_leaf
from tracker.documents.facts import EndFacts, InstanceFacts, StateFacts, chain_head, model_document
from tracker.documents.ids import sha256_hex
from tracker.documents.protocol import InstanceProtocol
from tracker.verify.chain import Anchoring, ChainView, EndEvent, Holder, OperatorHistory, Registration, StateEvent
from tracker.verify.content import read_end, read_instance, read_state
from tracker.verify.download import Fetched
from tracker.verify.ends import model_check
from tracker.verify.states import Trace, judge_states, states_check

CASES_FILE = Path(__file__).resolve().parent / "verify_cases.json"
ORIGIN = "https://publisher.example"
OWNER = "70997970c51812dc3a010c7d01b50e0d17dc79c8"
STRANGER = "3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
CHAIN_ID = 31337
CONTRACT = "b0a4119952a68efe967123f9a98282542909bff7"
NO_CHAIN = "no chain reachable"
DEFINITION = '{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},"B":{"Type":"Pass","End":true}}}'


def _tx(label: str) -> str:
    return sha256_hex(f"transaction {label}")


def _url(identifier: str) -> str:
    return f"{ORIGIN}/documents/{identifier}.json"


def _state(instance_id: str, seq: int, previous: str, attempt: int = 0) -> bytes:
    return (
        StateFacts(
            instance_id=instance_id,
            seq=seq,
            previous_state_id=previous,
            attempt=attempt,
            event_id=seq + 2,
            event_type="PassStateEntered",
            state_name="AB"[seq % 2],
            timestamp_ms=1_700_000_000_000 + 1000 * seq,
        )
        .document()
        .content
    )


def base_case() -> dict[str, Any]:
    """A final 4-state execution in direct mode, registered in two transactions, terminated."""
    model = model_document(DEFINITION)
    facts = InstanceFacts(
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:shared:case",
        state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:shared",
        name="case",
        start_date_ms=1_700_000_000_000,
        model_id=model.id,
        input_sha256="0" * 64,
    )
    instance = facts.document()
    execution = facts.execution_id
    states: list[bytes] = []
    for seq in range(4):
        states.append(_state(instance.id, seq, sha256_hex(states[-1]) if states else ""))
    ids = [sha256_hex(s) for s in states]
    end = (
        EndFacts(instance.id, 0, "SUCCEEDED", 1_700_000_100_000, 4, ids[-1], output_sha256="1" * 64).document().content
    )
    blocks, txs = [10, 10, 11, 11], [_tx("a"), _tx("a"), _tx("b"), _tx("b")]
    head = chain_head(execution, model.id, instance.id, ids)
    key = instance_key(OWNER, execution)
    protocol = {
        "model_hash": model.id,
        "instance_hash": instance.id,
        "model_data": _url(model.id),
        "instance_data": _url(instance.id),
        "chain_id": CHAIN_ID,
        "contract_address": CONTRACT,
        "execution_id": execution,
        "owner": OWNER,
        "mode": "direct",
        "final": True,
        "state_count": 4,
        "accumulator_head": head,
        "end_hash": sha256_hex(end),
        "end_data": _url(sha256_hex(end)),
        "attempts": [
            {
                "attempt": 0,
                "end_hash": sha256_hex(end),
                "end_data": _url(sha256_hex(end)),
                "state_count": 4,
                "accumulator_head": head,
                "block_nr": 12,
                "transaction_hash": _tx("c"),
                "timestamp": 1_700_000_012,
                "final": True,
            }
        ],
        "instance_protocol": [
            {
                "event_type": "Register State",
                "state_hash": ids[seq],
                "timestamp": 1_700_000_000 + blocks[seq],
                "block_nr": blocks[seq],
                "client_address": OWNER,
                "transaction_hash": txs[seq],
                "state_data": _url(ids[seq]),
                "seq": seq,
            }
            for seq in range(4)
        ],
    }
    chain = {
        "chain_id": CHAIN_ID,
        "contract_address": CONTRACT,
        "owner": OWNER,
        "execution_id": execution,
        "key": key,
        "instance": {"state_count": 4, "attempts": 1, "status": "FINAL", "mode": "direct", "head": head},
        "holders": [{"owner": OWNER, "key": key, "until": None}],
        "moved_to": None,
        "registration": {
            "key": key,
            "owner": OWNER,
            "model": model.id,
            "instance_document": instance.id,
            "mode": "direct",
            "block": 9,
            "log_index": 1,
            "transaction": _tx("r"),
        },
        "other_owners": [],
        "model_registered_at": {OWNER: 9},
        "states": [
            {
                "key": key,
                "state_id": ids[seq],
                "seq": seq,
                "block": blocks[seq],
                "log_index": seq,
                "transaction": txs[seq],
            }
            for seq in range(4)
        ],
        "ends": [
            {
                "key": key,
                "end_id": sha256_hex(end),
                "attempt": 0,
                "state_count": 4,
                "head": head,
                "final": True,
                "block": 12,
                "log_index": 0,
                "transaction": _tx("c"),
            }
        ],
        "anchorings": {},
        "anchor_records": [],
        "operators": [],
        "senders": {_tx("a"): OWNER, _tx("b"): OWNER},
        "block_times": {"10": 1_700_000_010, "11": 1_700_000_011, "12": 1_700_000_012},
    }
    documents = {_url(model.id): model.content, _url(instance.id): instance.content, _url(sha256_hex(end)): end}
    documents |= {_url(i): s for i, s in zip(ids, states)}
    return {
        "protocol": protocol,
        "documents": {url: data.decode("utf-8") for url, data in documents.items()},
        "chain": chain,
    }


def _entry(case: dict[str, Any], position: int) -> dict[str, Any]:
    entry: dict[str, Any] = case["protocol"]["instance_protocol"][position]
    return entry


def _document(case: dict[str, Any], position: int) -> str:
    return str(case["documents"][_entry(case, position)["state_data"]])


def _set_document(case: dict[str, Any], position: int, text: str) -> None:
    case["documents"][_entry(case, position)["state_data"]] = text


def _tampered(name: str, expect: dict[str, Any], change: Any) -> dict[str, Any]:
    case = base_case()
    change(case)
    return {"name": name, "expect": expect, **case}


def _swap(case: dict[str, Any]) -> None:
    listed = case["protocol"]["instance_protocol"]
    listed[1], listed[2] = listed[2], listed[1]
    listed[1]["seq"], listed[2]["seq"] = 1, 2


def _reforge_previous(case: dict[str, Any]) -> None:
    # A new document for seq 2 naming a wrong previous state, its id put in the protocol: it
    # hashes to its (new) id, but says the wrong thing and is not what the chain registered.
    instance = case["protocol"]["instance_hash"]
    forged = _state(instance, 2, "ab" * 32).decode()
    identifier = sha256_hex(forged)
    entry = _entry(case, 2)
    entry["state_hash"], entry["state_data"] = identifier, _url(identifier)
    case["documents"][_url(identifier)] = forged


def _malformed_children(case: dict[str, Any]) -> None:
    # A state document whose `children` (the id of what its visit started) is not an id: the
    # document is malformed, as any other field of the wrong shape makes it.
    instance = case["protocol"]["instance_hash"]
    previous = _entry(case, 0)["state_hash"]
    facts = StateFacts(
        instance_id=instance,
        seq=1,
        previous_state_id=previous,
        attempt=0,
        event_id=3,
        event_type="MapStateEntered",
        state_name="B",
        timestamp_ms=1_700_000_000_001,
        children="not an id",
    )
    forged = facts.document().content.decode()
    identifier = sha256_hex(forged)
    entry = _entry(case, 1)
    entry["state_hash"], entry["state_data"] = identifier, _url(identifier)
    case["documents"][_url(identifier)] = forged


def _foreign(case: dict[str, Any]) -> None:
    # The published prototype's shape: no owner, seq, execution id or attempts; documents not ours.
    protocol = case["protocol"]
    for key in ("chain_id", "contract_address", "execution_id", "owner", "mode", "final", "state_count"):
        protocol.pop(key)
    for key in ("accumulator_head", "end_hash", "end_data", "attempts"):
        protocol.pop(key)
    for position, entry in enumerate(protocol["instance_protocol"]):
        entry.pop("seq")
        text = json.dumps({"state": f"S{position}", "time": position}, indent=1)
        entry["state_hash"] = sha256_hex(text)
        entry["state_data"] = _url(entry["state_hash"])
        case["documents"][entry["state_data"]] = text
    case["chain"] = None


def _anchor(case: dict[str, Any]) -> None:
    """The same execution in anchored mode: its 4 states under one Merkle root, anchored by the
    owner in block 11, pinned by the termination in block 12."""
    chain, protocol = case["chain"], case["protocol"]
    execution = chain["execution_id"]
    ids = [entry["state_hash"] for entry in protocol["instance_protocol"]]
    tree = MerkleTree.build([state_leaf(execution, state_id, seq) for seq, state_id in enumerate(ids)])
    root = tree.root.hex()
    protocol["mode"] = "anchored"
    for seq, entry in enumerate(protocol["instance_protocol"]):
        entry.update(
            merkle_root=root,
            merkle_proof=[p.hex() for p in tree.proof(seq)],
            block_nr=11,
            transaction_hash=_tx("b"),
            timestamp=1_700_000_011,
        )
    chain["instance"].update(mode="anchored", head=None)
    chain["registration"]["mode"] = "anchored"
    chain["states"] = []
    chain["anchorings"] = {
        root: [
            {"submitter": OWNER, "root": root, "leaf_count": 4, "block": 11, "log_index": 0, "transaction": _tx("b")}
        ]
    }
    chain["anchor_records"] = [{"submitter": OWNER, "root": root, "anchored_at": 11, "leaf_count": 4}]


def _anchor_with_a_wrong_proof(case: dict[str, Any]) -> None:
    _anchor(case)
    entry = _entry(case, 1)
    entry["merkle_proof"] = list(reversed(entry["merkle_proof"]))


def cases() -> list[dict[str, Any]]:
    def sender(case: dict[str, Any]) -> None:
        case["chain"]["senders"][_tx("b")] = STRANGER

    def operator(case: dict[str, Any]) -> None:
        sender(case)
        case["chain"]["operators"] = [
            {"owner": OWNER, "operator": STRANGER, "approved": True, "block": 8, "log_index": 0}
        ]
        for position in (2, 3):
            _entry(case, position)["client_address"] = STRANGER

    def end_attempt(case: dict[str, Any]) -> None:
        text = case["documents"][case["protocol"]["end_data"]].replace('"attempt":0', '"attempt":1')
        case["documents"][case["protocol"]["end_data"]] = text

    return [
        _tampered("good", {"states": True, "model_instance": True, "rows": "all true"}, lambda case: None),
        _tampered(
            "state document changed",
            {"row": 2, "ok": False, "contains": "state document hashes to"},
            lambda c: _set_document(c, 2, _document(c, 2) + " "),
        ),
        _tampered(
            "state document re-forged with another previous state",
            {"row": 2, "ok": False, "contains": "the state listed before it is"},
            _reforge_previous,
        ),
        _tampered("states listed out of order", {"row": 1, "ok": False, "contains": "out of order"}, _swap),
        _tampered(
            "a state document naming a children document by something not an id",
            {"row": 1, "ok": False, "contains": "has a malformed children: 'not an id'"},
            _malformed_children,
        ),
        _tampered(
            "block number changed",
            {"row": 1, "ok": False, "contains": "block_nr 999 but registered in block 10"},
            lambda c: _entry(c, 1).update(block_nr=999),
        ),
        _tampered(
            "transaction hash changed",
            {"row": 3, "ok": False, "contains": "transaction_hash"},
            lambda c: _entry(c, 3).update(transaction_hash=_tx("z")),
        ),
        _tampered(
            "timestamp changed",
            {"row": 0, "ok": False, "contains": "timestamp 1 but block 10 has 1700000010"},
            lambda c: _entry(c, 0).update(timestamp=1),
        ),
        _tampered(
            "client address of another account",
            {"row": 0, "ok": False, "contains": "client_address 0x" + STRANGER},
            lambda c: _entry(c, 0).update(client_address=STRANGER),
        ),
        _tampered(
            "registered by a stranger",
            {"row": 2, "ok": False, "contains": "neither the owner"},
            sender,
        ),
        _tampered("registered by an approved operator", {"row": 2, "ok": True, "contains": "by operator 0x"}, operator),
        _tampered(
            "a state left out of the protocol",
            {"states": False, "contains": "chain has 4 registered states, the protocol lists 3"},
            lambda c: c["protocol"]["instance_protocol"].pop(),
        ),
        _tampered(
            "model document changed",
            {"model_instance": False, "contains": "model document hashes to"},
            lambda c: c["documents"].update({c["protocol"]["model_data"]: DEFINITION + "\n"}),
        ),
        _tampered(
            "end document changed",
            {"attempt": 0, "ok": False, "contains": "end document hashes to"},
            end_attempt,
        ),
        _tampered(
            "state document missing",
            {"row": 1, "ok": False, "contains": "HTTP 404 Not Found"},
            lambda c: c["documents"].pop(_entry(c, 1)["state_data"]),
        ),
        _tampered(
            "not registered under the owner",
            {"states": False, "contains": "is not registered under the owner"},
            lambda c: c["chain"].update(instance=None, registration=None, states=[], ends=[], model_registered_at={}),
        ),
        _tampered(
            "protocol names another chain",
            {"states": False, "contains": "protocol names chain id 1, verified on chain id 31337"},
            lambda c: c["protocol"].update(chain_id=1),
        ),
        _tampered("anchored under one root", {"states": True, "rows": "all true"}, _anchor),
        _tampered(
            "anchored, a proof that does not lead to the root",
            {"row": 1, "ok": False, "contains": "Merkle proof does not lead from (execution, state, seq 1)"},
            _anchor_with_a_wrong_proof,
        ),
        _tampered(
            "the chain not read",
            {"states": None, "contains": "not checked: no chain reachable"},
            lambda c: c.update(chain=None),
        ),
        _tampered(
            "the published prototype's format",
            {"row": 0, "ok": None, "contains": "content not checked: not in this project's format"},
            _foreign,
        ),
    ]


# ---------------------------------------------------------------------------------------------
# The Python verifier on a case.


def _fetched(case: dict[str, Any], url: str, reader: Any) -> Fetched[Any]:
    text = case["documents"].get(url)
    if text is None:
        return Fetched(url, None, error=f"HTTP 404 Not Found for {url}", status=404)
    data = text.encode("utf-8")
    return Fetched(url, sha256_hex(data), len(data), reader(data) if reader is not None else None)


def _view(chain: dict[str, Any] | None) -> ChainView | None:
    if chain is None:
        return None
    record = chain["instance"]
    instance = (
        InstanceRecord(
            chain["owner"],
            chain["execution_id"],
            record["state_count"],
            record["attempts"],
            Status[record["status"]],
            Mode.DIRECT if record["mode"] == "direct" else Mode.ANCHORED,
            record["head"],
        )
        if record is not None
        else None
    )
    registration = chain["registration"]
    states_by_seq: dict[int, StateEvent] = {}
    duplicates: list[int] = []
    for state in chain["states"]:
        event = StateEvent(**state)
        if event.seq in states_by_seq:
            duplicates.append(event.seq)
        states_by_seq.setdefault(event.seq, event)
    seqs_by_state: dict[str, int] = {}
    for seq in sorted(states_by_seq):
        seqs_by_state.setdefault(states_by_seq[seq].state_id, seq)
    operators = OperatorHistory([])
    for change in chain["operators"]:
        pair = (change["owner"], change["operator"])
        operators._changes.setdefault(pair, []).append(((change["block"], change["log_index"]), change["approved"]))
    for changes in operators._changes.values():
        changes.sort()
    anchorings = {root: [Anchoring(**a) for a in found] for root, found in chain["anchorings"].items()}
    anchor_records: dict[tuple[str, str], AnchorRecord | None] = {
        (r["submitter"], r["root"]): AnchorRecord(r["submitter"], r["root"], r["anchored_at"], r["leaf_count"])
        if r["anchored_at"]
        else None
        for r in chain["anchor_records"]
    }
    return ChainView(
        chain_id=chain["chain_id"],
        contract_address=chain["contract_address"],
        canonical=True,
        owner=chain["owner"],
        execution_id=chain["execution_id"],
        key=chain["key"],
        instance=instance,
        holders=[Holder(h["owner"], h["key"], None) for h in chain["holders"]],
        moved_to=None,
        registration=Registration(
            **{**registration, "mode": Mode.DIRECT if registration["mode"] == "direct" else Mode.ANCHORED}
        )
        if registration is not None
        else None,
        other_owners=chain["other_owners"],
        model_registered_at=chain["model_registered_at"],
        states_by_seq=states_by_seq,
        seqs_by_state=seqs_by_state,
        ends=sorted((EndEvent(**e) for e in chain["ends"]), key=lambda end: end.position),
        anchorings=anchorings,
        anchor_records=anchor_records,
        operators=operators,
        senders=chain["senders"],
        block_times={int(block): time for block, time in chain["block_times"].items()},
        duplicate_seqs=duplicates,
    )


def judge(case: dict[str, Any]) -> dict[str, Any]:
    """Checks 2 and 3 with every row, as the Python verifier makes them on this case."""
    protocol = InstanceProtocol.from_json(case["protocol"])
    instance = _fetched(case, protocol.instance_data, read_instance)
    execution = protocol.execution_id
    if execution is None and instance.content is not None and hasattr(instance.content, "execution_id"):
        execution = instance.content.execution_id
    view = _view(case["chain"])
    trace = Trace(protocol, [_fetched(case, e.state_data, read_state) for e in protocol.instance_protocol], execution)
    rows = judge_states(trace, view)
    chain_id = CHAIN_ID if view is not None else None
    contract = CONTRACT if view is not None else None
    states = states_check(trace, rows, view, chain_id, contract, NO_CHAIN)
    ends = {a.end_data: _fetched(case, a.end_data, read_end) for a in protocol.attempts}
    model = model_check(
        trace, _fetched(case, protocol.model_data, None), instance, ends, view, NO_CHAIN, states.in_progress
    )
    return {
        "states": {"ok": states.check.ok, "reason": states.check.reason},
        "model_instance": {"ok": model.check.ok, "reason": model.check.reason},
        "rows": [{"position": r.position, "ok": r.ok, "reason": r.reason} for r in rows],
        "attempts": [{"attempt": a.attempt, "ok": a.ok, "reason": a.reason} for a in model.attempts],
        "status": model.status,
    }


def write() -> None:
    table = []
    for case in cases():
        case["results"] = judge(case)
        table.append(case)
    text = json.dumps({"about": __doc__.split("\n\n")[0], "cases": table}, indent=1, ensure_ascii=False)
    CASES_FILE.write_text(text + "\n")
    print(f"wrote {len(table)} cases to {CASES_FILE}", file=sys.stderr)


def load() -> list[dict[str, Any]]:
    return list(copy.deepcopy(json.loads(CASES_FILE.read_text())["cases"]))


if __name__ == "__main__":
    write()
