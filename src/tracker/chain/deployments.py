"""Where InstanceTracker is deployed, per chain id.

Public chains are recorded in `deployments.json` at the project root, which is committed (a real
Sepolia deployment belongs there). Local development chains (ape's test chain, anvil) change with
every restart, so they are recorded in `.build/local-deployments.json`, which is not committed,
and a recorded address is only trusted when code is found there.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

LOCAL_CHAIN_IDS = frozenset({1337, 31337})
PUBLIC_FILE = "deployments.json"
LOCAL_FILE = Path(".build") / "local-deployments.json"


@dataclass(frozen=True)
class Deployment:
    """Where and when the contract was deployed on a chain; `genesis_hash` tells a restarted local
    chain (whose record then no longer applies) from the one the record was made on."""

    chain_id: int
    address: str
    block_number: int
    transaction_hash: str
    genesis_hash: str | None = None


def project_root() -> Path:
    """The project directory (TRACKER_PROJECT, else ape's project path, else the working directory)."""
    if os.environ.get("TRACKER_PROJECT"):
        return Path(os.environ["TRACKER_PROJECT"])
    try:
        from ape import project

        return Path(project.path)
    except Exception:  # no ape project loaded: fall back to the working directory
        return Path.cwd()


def _file_for(chain_id: int, root: Path | None = None) -> Path:
    root = root or project_root()
    return root / (LOCAL_FILE if chain_id in LOCAL_CHAIN_IDS else PUBLIC_FILE)


def _read(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def recorded(chain_id: int, root: Path | None = None) -> Deployment | None:
    """The deployment recorded for a chain id, if any (code at the address is not checked here)."""
    entry = _read(_file_for(chain_id, root)).get(str(chain_id))
    return Deployment(**entry) if entry else None


def record(deployment: Deployment, root: Path | None = None) -> Path:
    """Records a deployment, replacing the one for its chain id; written atomically."""
    path = _file_for(deployment.chain_id, root)
    entries = _read(path)
    entries[str(deployment.chain_id)] = asdict(deployment)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)
    return path
