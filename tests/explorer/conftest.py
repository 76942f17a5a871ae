"""Fixtures for the explorer's tests: the verifier's publishing fixtures (an execution registered on
chain, published and served over TLS on loopback), and the browser helpers beside this file."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "verify"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # browser, shared_cases, verify_fixtures, publishing

from verify_fixtures import publish_execution, register_certificate, serve  # noqa: E402, F401
