"""Fixtures for the verifier: a real execution registered on chain under its owner's key, its
documents and protocol published in a temporary directory and served over real TLS on loopback,
the server's certificate registered on chain by the owner. The builders live in publishing.py
(the attack suite uses them too).

Tampering tests change the published files (or the chain) and expect the named check to fail.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # publishing and verify_fixtures, importable by the tests

from verify_fixtures import (  # noqa: E402, F401  (fixtures: pytest finds them by name)
    publish_execution,
    published,
    register_certificate,
    serve,
    stalled_origin,
    verify_command,
)
