"""Block ranges adapt to a provider that refuses wide eth_getLogs ranges (as hosted nodes do).

The provider is anvil behind a small HTTP relay that answers a getLogs wider than a few blocks
with the JSON-RPC error hosted providers give, and forwards everything else unchanged.
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
                            "error": {"code": -32005, "message": f"query exceeds max block range {MAX_RANGE}"},
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


def test_refused_ranges_shrink_and_stay_below_the_limit(
    relay, anvil, deployed, register_execution, database_url, schema, db
):
    for number in range(6):
        register_execution(deployed, f"range-{number}", 1)
    anvil.mine(100)
    head = anvil.web3.eth.block_number
    config = IndexConfig(
        contract_address=deployed.address,
        database_url=database_url,
        schema=schema,
        from_block=deployed.deploy_block,
        batch_blocks=64,
    )

    summary = index(config, JsonRpc.from_uri(relay.url))

    assert summary.events == 1 + 6 * 2
    assert summary.last_block == head
    # 64 -> 32 -> 16 -> 8 -> 4: refused four times on the way down, then never widened again.
    assert relay.refused == [64, 32, 16, 8]
    assert max(relay.served) <= MAX_RANGE
    assert db.execute("SELECT count(*) FROM instance").fetchone()[0] == 6
