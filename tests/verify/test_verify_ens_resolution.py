"""Check 4 resolving as wallets do, on anvil with ENS installed as Sepolia has it: a wildcard
resolver answering for a subname (ENSIP-10), and an offchain name served by a CCIP-Read gateway
(EIP-3668) on loopback over real TLS, whose answers the resolver checks by signature. Gateways
that answer wrongly, slowly, hugely or over plain http are refused within the verifier's bounds.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from eth_abi import decode, encode
from eth_keys import keys
from eth_utils import function_signature_to_4byte_selector, keccak

from tracker.dev import ens as dev_ens
from tracker.identity import ens
from tracker.publish.certificates import generate_self_signed
from tracker.verify.download import HostPolicy
from tracker.verify.locate import locate_protocol
from tracker.verify.report import CHECK_ENS, VerifyOptions
from tracker.verify.verifier import verify_protocol

FAST = VerifyOptions(timeout=3.0, allow_private_hosts=True)  # the gateways run on loopback
GATEWAY_KEY = keys.PrivateKey(b"\x11" * 32)
OTHER_KEY = keys.PrivateKey(b"\x22" * 32)
EXPIRES = 2**40
ADDR = function_signature_to_4byte_selector("addr(bytes32)")
TEXT = function_signature_to_4byte_selector("text(bytes32,string)")
pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module", autouse=True)
def local_ens(chain, accounts):
    if chain.provider.name != "foundry":
        pytest.skip("needs anvil: ape test tests/verify --network ethereum:local:foundry")
    return dev_ens.install_local_ens(accounts[0])


@pytest.fixture
def client(accounts):
    return accounts[5]


def dns(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"


def set_reverse(account, name: str) -> None:
    dev_ens.standin("StandInReverseRegistrar", ens.SEPOLIA.reverse_registrar).setName(name, sender=account)


@dataclass
class Gateway:
    """An EIP-3668 gateway on 127.0.0.1 over TLS; `mode` picks how it answers."""

    url: str
    answers: dict[str, object] = field(default_factory=dict)  # "addr" / "url" -> value
    mode: str = "good"  # good, wrong-key, slow, huge
    resolver: str = ""
    requests: int = 0


def _gateway_handler(gateway: Gateway):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            gateway.requests += 1
            request = bytes.fromhex(self.path.rsplit("/", 1)[1].removesuffix(".json").removeprefix("0x"))
            if gateway.mode == "slow":
                time.sleep(6)
            if gateway.mode == "huge":
                body = b"x" * (1024 * 1024)
            else:
                body = json.dumps({"data": "0x" + self._answer(request).hex()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass  # the verifier hung up at its limit, as it should

        def _answer(self, request: bytes) -> bytes:
            _name, call = decode(["bytes", "bytes"], request[4:])
            if call[:4] == ADDR:
                result = encode(["address"], [gateway.answers["addr"]])
            elif call[:4] == TEXT:
                _node, key = decode(["bytes32", "string"], call[4:])
                result = encode(["string"], [gateway.answers.get(key, "")])
            else:
                result = b""
            signer = OTHER_KEY if gateway.mode == "wrong-key" else GATEWAY_KEY
            digest = keccak(
                b"\x19\x00"
                + bytes.fromhex(gateway.resolver[2:])
                + EXPIRES.to_bytes(8, "big")
                + keccak(request)
                + keccak(result)
            )
            signature = signer.sign_msg_hash(digest)
            packed = signature.r.to_bytes(32, "big") + signature.s.to_bytes(32, "big") + bytes([signature.v + 27])
            return encode(["bytes", "uint64", "bytes"], [result, EXPIRES, packed])

    return Handler


@pytest.fixture
def gateway(tmp_path) -> Iterator[Gateway]:
    cert_pem, key_pem = generate_self_signed(["127.0.0.1"])
    (tmp_path / "gw.pem").write_bytes(cert_pem)
    (tmp_path / "gw.key").write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "gw.pem", tmp_path / "gw.key")
    state = Gateway(url="")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _gateway_handler(state))
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.url = f"https://127.0.0.1:{server.server_address[1]}/gateway/{{sender}}/{{data}}.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def offchain_name(gateway, publish_execution, client, accounts):
    """offchain.eth, held by the client, resolved by a CCIP-Read resolver trusting GATEWAY_KEY."""

    def make(url: str | None = None, mode: str = "good"):
        resolver = dev_ens.deploy_standin(
            accounts[0], "TestOffchainResolver", url or gateway.url, GATEWAY_KEY.public_key.to_checksum_address()
        )
        published = publish_execution(client)
        gateway.resolver, gateway.mode = str(resolver.address), mode
        gateway.answers = {"addr": str(client.address), "url": published.server.origin}
        dev_ens.register_name(client, "offchain.eth", resolver=str(resolver.address))
        set_reverse(client, "offchain.eth")
        return published

    return make


def test_a_wildcard_resolver_answers_for_a_subname(publish_execution, client, accounts):
    published = publish_execution(client)
    resolver = dev_ens.deploy_standin(accounts[0], "TestWildcardResolver", accounts[0].address)
    dev_ens.register_name(accounts[6], "wild.eth", resolver=str(resolver.address))
    resolver.setAnswer(dns("alice.wild.eth"), client.address, published.server.origin, sender=accounts[0])
    set_reverse(client, "alice.wild.eth")
    assert ens.resolver_of("alice.wild.eth") is None  # nothing in the registry for the subname itself

    report = verify_protocol(published.url, published.tracker, FAST)

    assert report.passed, [c.to_json() for c in report.checks]
    assert report.check(CHECK_ENS).reason == (
        f"{str(client.address).lower()} <-> alice.wild.eth (name wildcard (resolver of wild.eth); reverse onchain), "
        f"url {published.server.origin}"
    )


def test_an_offchain_name_resolves_through_its_gateway(offchain_name, gateway, client):
    published = offchain_name()
    origin = gateway.url.split("/gateway")[0]

    report = verify_protocol(published.url, published.tracker, FAST)

    assert report.passed, [c.to_json() for c in report.checks]
    assert report.check(CHECK_ENS).reason == (
        f"{str(client.address).lower()} <-> offchain.eth (name offchain gateway {origin}; reverse onchain), "
        f"url {published.server.origin}"
    )
    found = locate_protocol(
        published.tracker, published.execution.instance_id, published.owner_address, 3, HostPolicy(True)
    )
    assert found == published.url


def test_a_gateway_on_a_private_address_is_not_asked_without_allow_private_hosts(offchain_name, gateway):
    """A resolver's OffchainLookup names the gateway, so a name's owner could aim the verifier at
    hosts on its network: only the public internet is asked unless the user allows private hosts."""
    published = offchain_name()
    before = gateway.requests

    report = verify_protocol(published.url, published.tracker, dataclasses.replace(FAST, allow_private_hosts=False))

    assert report.failed_checks == [CHECK_ENS]
    assert "refused: 127.0.0.1 is not a public address (--allow-private-hosts" in report.check(CHECK_ENS).reason
    assert gateway.requests == before


def test_a_gateway_answer_signed_by_another_key_is_rejected_by_the_resolver(offchain_name, gateway):
    published = offchain_name(mode="wrong-key")
    origin = gateway.url.split("/gateway")[0]

    report = verify_protocol(published.url, published.tracker, FAST)

    assert report.failed_checks == [CHECK_ENS]
    unknown_signer = function_signature_to_4byte_selector("UnknownSigner(address)").hex()
    assert report.check(CHECK_ENS).reason == (
        f"the resolver of offchain.eth rejected the answer of {origin}: error 0x{unknown_signer} (36 bytes)"
    )


def test_a_slow_gateway_is_abandoned_at_the_timeout(offchain_name, gateway):
    published = offchain_name(mode="slow")
    started = time.monotonic()

    report = verify_protocol(published.url, published.tracker, FAST)

    elapsed = time.monotonic() - started
    assert report.failed_checks == [CHECK_ENS]
    reason = report.check(CHECK_ENS).reason
    assert reason.startswith("offchain lookup for offchain.eth failed: timed out after 3 s fetching https://127.0.0.1:")
    assert elapsed < 5.9  # gave up before the gateway's 6 s answer


def test_a_huge_gateway_answer_is_refused_at_the_size_limit(offchain_name, gateway):
    published = offchain_name(mode="huge")

    report = verify_protocol(published.url, published.tracker, FAST)

    assert report.failed_checks == [CHECK_ENS]
    reason = report.check(CHECK_ENS).reason
    assert reason.startswith("offchain lookup for offchain.eth failed: https://127.0.0.1:")
    assert reason.endswith(" is 1048576 bytes, over the size limit of 65536")


def test_a_plain_http_gateway_is_not_followed(offchain_name, gateway):
    http_url = gateway.url.replace("https://", "http://")
    published = offchain_name(url=http_url)

    report = verify_protocol(published.url, published.tracker, FAST)

    assert report.failed_checks == [CHECK_ENS]
    assert report.check(CHECK_ENS).reason == f"offchain lookup for offchain.eth failed: {http_url} is not https"
