"""Durable progress: one checkpoint per execution, and the anchors in flight, in one sqlite file.

The file lives in the state directory (default `.tracker/`), one per chain and contract
(`<chain id>-<contract address>.sqlite`), so that switching networks never mixes progress.
Checkpoints are written only after the transaction that registered their states was confirmed,
all of one poll in one sqlite transaction (atomic: a killed process leaves the previous poll's
state). An anchor is journalled before its transaction is sent; on the next start the tracker
asks the contract whether the root got anchored and either commits or drops it.

The chain is the truth: a store remembers which chain and which contract code it describes (the
genesis block's hash and the code's hash, as `identity`), and a store opened for another (a
local chain restarted, the contract redeployed at the same address) drops what it holds, so
every state is registered again instead of being believed registered.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (execution_arn TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending_anchors (root TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS task_documents (
    execution_arn TEXT NOT NULL, event_id INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (execution_arn, event_id)
);
"""
SELECT_META = "SELECT value FROM meta WHERE key = ?"
UPSERT_META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
COUNT_CHECKPOINTS = "SELECT count(*) FROM checkpoints"

UPSERT_CHECKPOINT = "INSERT INTO checkpoints (execution_arn, body) VALUES (?, ?) ON CONFLICT(execution_arn) DO UPDATE SET body = excluded.body"
SELECT_CHECKPOINTS = "SELECT body FROM checkpoints ORDER BY execution_arn"
INSERT_PENDING = "INSERT OR REPLACE INTO pending_anchors (root, body) VALUES (?, ?)"
SELECT_PENDING = "SELECT body FROM pending_anchors ORDER BY root"
DELETE_PENDING = "DELETE FROM pending_anchors WHERE root = ?"
SELECT_TASK_DOCUMENT = "SELECT body FROM task_documents WHERE execution_arn = ? AND event_id = ?"
INSERT_TASK_DOCUMENT = "INSERT OR IGNORE INTO task_documents (execution_arn, event_id, body) VALUES (?, ?, ?)"


@dataclass
class RegisteredState:
    """A state whose registration (or anchor) is confirmed, with what the protocol entry needs."""

    state_id: str
    seq: int
    block_nr: int
    transaction_hash: str
    timestamp: int
    client_address: str
    merkle_root: str | None = None
    merkle_proof: list[str] | None = None
    task_id: str | None = None  # the state's task document, when it ran a task


@dataclass
class RegisteredEnd:
    """An attempt end whose registration is confirmed (`final` when it made the instance final)."""

    attempt: int
    end_id: str
    state_count: int
    block_nr: int
    transaction_hash: str
    timestamp: int
    final: bool = False


@dataclass
class Checkpoint:
    """Progress of one execution: what is confirmed on chain and the last history event processed.

    `ends` holds every attempt end registered so far; `final` is set once the chain made the
    instance final, after which the execution is never loaded again."""

    execution_arn: str
    execution_id: str
    model_id: str
    instance_id: str
    mode: str = "direct"
    last_event_id: int = 0
    states: list[RegisteredState] = field(default_factory=list)
    ends: list[RegisteredEnd] = field(default_factory=list)
    instance_registered: bool = False
    final: bool = False
    redrive_count: int = 0

    def to_json(self) -> str:
        # Field by field: `asdict` deep-copies every state and dominates large polls.
        data = {key: getattr(self, key) for key in self.__dataclass_fields__ if key not in ("states", "ends")}
        data["states"] = [state.__dict__ for state in self.states]
        data["ends"] = [end.__dict__ for end in self.ends]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        data: dict[str, Any] = json.loads(text)
        data["states"] = [RegisteredState(**item) for item in data.get("states", [])]
        data["ends"] = [RegisteredEnd(**item) for item in data.get("ends", [])]
        return cls(**data)


@dataclass
class PendingAnchor:
    """An anchor transaction that may or may not have been mined: its root, who submits it and
    what it covers. Only an anchor of that submitter is ever settled as ours."""

    root: str
    submitter: str
    leaf_count: int
    # execution ARN -> states (without block data yet) that the root covers
    states: dict[str, list[RegisteredState]]


def store_path(state_dir: Path, chain_id: int, contract_address: str) -> Path:
    return Path(state_dir) / f"{chain_id}-{contract_address.lower()}.sqlite"


class CheckpointStore:
    """The sqlite file of one chain and contract.

    With `identity` (what identifies the chain and the contract's code), a store written for
    another identity is emptied on opening; `discarded` then says how many checkpoints it held.
    """

    def __init__(self, path: Path, identity: str | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self.discarded = 0
        if identity is not None:
            self._settle_identity(identity)

    def _settle_identity(self, identity: str) -> None:
        row = self._db.execute(SELECT_META, ("identity",)).fetchone()
        if row is not None and row[0] == identity:
            return
        # Another chain or contract, or a store that never said which (written before stores
        # recorded it): nothing in it can be believed.
        with self._transaction():
            self.discarded = int(self._db.execute(COUNT_CHECKPOINTS).fetchone()[0])
            self._db.execute("DELETE FROM checkpoints")
            self._db.execute("DELETE FROM pending_anchors")
            self._db.execute(UPSERT_META, ("identity", identity))

    def close(self) -> None:
        self._db.close()

    def load_all(self) -> dict[str, Checkpoint]:
        return {
            cp.execution_arn: cp
            for cp in (Checkpoint.from_json(row[0]) for row in self._db.execute(SELECT_CHECKPOINTS))
        }

    def commit(self, checkpoints: Iterable[Checkpoint], settled_roots: Iterable[str] = ()) -> None:
        """Writes checkpoints and clears settled anchors in one atomic sqlite transaction."""
        with self._transaction():
            self._db.executemany(UPSERT_CHECKPOINT, [(cp.execution_arn, cp.to_json()) for cp in checkpoints])
            self._db.executemany(DELETE_PENDING, [(root,) for root in settled_roots])

    def add_pending(self, pending: PendingAnchor) -> None:
        body = json.dumps(
            {
                "root": pending.root,
                "submitter": pending.submitter,
                "leaf_count": pending.leaf_count,
                "states": {k: [asdict(s) for s in v] for k, v in pending.states.items()},
            }
        )
        with self._transaction():
            self._db.execute(INSERT_PENDING, (pending.root, body))

    def pending(self) -> list[PendingAnchor]:
        anchors = []
        for (body,) in self._db.execute(SELECT_PENDING):
            data = json.loads(body)
            states = {k: [RegisteredState(**s) for s in v] for k, v in data["states"].items()}
            anchors.append(PendingAnchor(data["root"], str(data["submitter"]), int(data["leaf_count"]), states))
        return anchors

    def drop_pending(self, root: str) -> None:
        with self._transaction():
            self._db.execute(DELETE_PENDING, (root,))

    def pinned_task(self, execution_arn: str, event_id: int) -> bytes | None:
        """The task document first written for a state visit, if any."""
        row = self._db.execute(SELECT_TASK_DOCUMENT, (execution_arn, event_id)).fetchone()
        return bytes(row[0]) if row else None

    def pin_task(self, execution_arn: str, event_id: int, content: bytes) -> bytes:
        """Keeps a state visit's task document for good (facts read after the fact, such as the
        code behind $LATEST, must not change the state's id at the next poll); returns the pinned
        bytes, which are the earlier ones when another writer was first."""
        with self._transaction():
            self._db.execute(INSERT_TASK_DOCUMENT, (execution_arn, event_id, content))
        pinned = self.pinned_task(execution_arn, event_id)
        assert pinned is not None
        return pinned

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: Any, *_: Any) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
