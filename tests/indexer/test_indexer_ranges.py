"""Block ranges adapt to a provider that refuses wide eth_getLogs ranges, in whatever words it uses.

The provider is anvil behind a small HTTP relay that answers a getLogs wider than a few blocks
with a JSON-RPC error worded as configured, and forwards everything else unchanged. (The
emulator in tests/support imitates Alchemy's and Infura's exact rules; this relay checks the
wordings of node software, and one that says nothing usable.)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tracker.chain.rpc import JsonRpc
from tracker.indexer.engine import IndexConfig, index

MAX_RANGE = 4


class RangeLimitedRelay:
    def __init__(self, upstream: str):
        self.upstream = upstream
        self.message = f"query exceeds max block range {MAX_RANGE}"
        self.refused: list[int] = []
        self.served: list[int] = []
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = json.loads(body)
                if isinstance(request, dict) and request.get("method") == "eth_getLogs":
                    width = int(request["params"][0]["toBlock"], 16) - int(request["params"][0]["fromBlock"], 16) + 1
                    if width > MAX_RANGE:
                        relay.refused.append(width)
                        answer = {
                            "jsonrpc": "2.0",
                            "id": request["id"],
                            "error": {
                                "code": -32005,
                                "message": relay.message.replace("{first}", request["params"][0]["fromBlock"]),
                            },
                        }
                        return self._send(json.dumps(answer).encode())
                    relay.served.append(width)
                self._send(
                    requests.post(
                        relay.upstream, data=body, headers={"Content-Type": "application/json"}, timeout=30
                    ).content
                )

            def _send(self, payload: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def relay(anvil) -> Iterator[RangeLimitedRelay]:
    relay = RangeLimitedRelay(anvil.url)
    thread = threading.Thread(target=relay.server.serve_forever, daemon=True)
    thread.start()
    yield relay
    relay.server.shutdown()
    relay.server.server_close()
    thread.join(timeout=5)


def _index_through(relay, anvil, deployed, register_execution, database_url, schema, empty_blocks: int = 100):
    for number in range(6):
        register_execution(deployed, f"range-{number}", 1, model="range-model")
    anvil.mine(empty_blocks)
    config = IndexConfig(
        contract_address=deployed.address,
        database_url=database_url,
        schema=schema,
        from_block=deployed.deploy_block,
        batch_blocks=64,
    )
    return index(config, JsonRpc.from_uri(relay.url)), anvil.web3.eth.block_number


@pytest.mark.parametrize(
    "message",
    [
        f"query exceeds max block range {MAX_RANGE}",
        f"eth_getLogs is limited to {MAX_RANGE} block range",
        f"ranges over {MAX_RANGE} blocks are not supported on freetier",
    ],
)
def test_a_stated_limit_is_kept_after_one_refusal(
    relay, anvil, deployed, register_execution, database_url, schema, db, message
):
    relay.message = message
    summary, head = _index_through(relay, anvil, deployed, register_execution, database_url, schema)

    assert summary.events == 1 + 6 * 2
    assert summary.last_block == head
    assert relay.refused == [64]  # the limit is read from the message: no probing by halving
    assert max(relay.served) == MAX_RANGE
    assert db.execute("SELECT count(*) FROM instance").fetchone()[0] == 6


def test_a_refusal_without_hints_halves_and_probes_again_only_now_and_then(
    relay, anvil, deployed, register_execution, database_url, schema, db
):
    relay.message = "the range is too large"
    summary, head = _index_through(relay, anvil, deployed, register_execution, database_url, schema, empty_blocks=200)

    assert summary.events == 1 + 6 * 2
    assert summary.last_block == head
    assert relay.refused[:4] == [64, 32, 16, 8]  # halved until accepted
    # Then below the refused width for a while before probing once more: a few refusals in all,
    # not one for every other request.
    assert len(relay.refused) <= 4 + len(relay.served) // 16 + 1
    assert max(relay.served) <= MAX_RANGE
    assert db.execute("SELECT count(*) FROM instance").fetchone()[0] == 6


@pytest.mark.parametrize(
    "suggestion",
    ["[{first}, 0xffffffff]", "[0xffff, 0xfffff]"],
    ids=["wider-than-refused", "elsewhere"],
)
def test_a_suggested_range_that_would_not_narrow_is_ignored(
    relay, anvil, deployed, register_execution, database_url, schema, db, suggestion
):
    # A provider (or anything in between) suggesting a range that does not start where we asked,
    # or reaches past the refused range, must not widen the range or send the reader elsewhere.
    relay.message = f"Log response size exceeded. Based on your parameters, this block range should work: {suggestion}"
    summary, head = _index_through(relay, anvil, deployed, register_execution, database_url, schema)

    assert summary.events == 1 + 6 * 2
    assert summary.last_block == head
    assert relay.refused[:4] == [64, 32, 16, 8]  # halved, as for a refusal without hints
    assert db.execute("SELECT count(*) FROM instance").fetchone()[0] == 6
