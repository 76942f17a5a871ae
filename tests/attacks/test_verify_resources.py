"""A hostile host against the verifier: slowloris on the protocol host and on a document host,
JSON built to overflow the C stack or the number parsers, a protocol that multiplies one large
document, protocols past the entry and value limits, and document URLs pointing inwards.

Everything runs against servers of our own on loopback (tests/verify/hostile.py), bounded in count
and time; time limits are generous (the verifier's own limits are a few seconds, the assertions
allow several times that). The crash-class cases run `ape run verify` in its own process, so that
a regression shows as a failed test and a signal, not as a dead test run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

VERIFY_SUITE = Path(__file__).resolve().parent.parent / "verify"
if str(VERIFY_SUITE) not in sys.path:
    sys.path.insert(0, str(VERIFY_SUITE))

from hostile import HostileServer, Route  # noqa: E402
from publishing import state_document  # noqa: E402
from verify_fixtures import *  # noqa: E402, F403  (the fixtures: pytest finds them by name)

from tracker.documents.facts import Document  # noqa: E402
from tracker.verify.report import CHECK_TLS, VerifyOptions  # noqa: E402
from tracker.verify.verifier import verify_protocol  # noqa: E402

PROJECT = Path(__file__).resolve().parents[2]
EXIT_FAILED, EXIT_INCOMPLETE = 1, 2
INSTANCE = "ab" * 32
NOWHERE = "https://127.0.0.1:9/missing.json"


@pytest.fixture
def hostile(tmp_path):
    with HostileServer(tmp_path / "hostile") as server:
        yield server


def protocol_listing(document_urls, model_url=NOWHERE, instance_url=NOWHERE, **extra):
    """A protocol (prototype fields plus an owner) listing one entry per URL."""
    entry = {
        "state_hash": "cd" * 32,
        "timestamp": 1,
        "block_nr": 1,
        "client_address": "11" * 20,
        "transaction_hash": "ef" * 32,
    }
    return json.dumps(
        {
            "model_hash": "12" * 32,
            "instance_hash": INSTANCE,
            "model_data": model_url,
            "instance_data": instance_url,
            "owner": "11" * 20,
            "instance_protocol": [{**entry, "state_data": url} for url in document_urls],
            **extra,
        }
    ).encode()


MEASURE = """
import json, resource, subprocess, sys
child = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"status": child.returncode, "peak_mb": peak / 1024, "stdout": child.stdout, "stderr": child.stderr}))
"""


def run_process(*arguments: str, timeout: float = 180) -> tuple[int, dict, float]:
    """`ape run verify ... --json` in its own process (no contract there: ape's local test chain):
    its exit status (negative for a signal), its JSON and its peak RSS in MB."""
    command = [str(Path(sys.executable).parent / "ape"), "run", "verify", *arguments, "--json"]
    environment = {**os.environ, "TRACKER_PROJECT": str(PROJECT / ".build" / "verify-resource-tests")}
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *command],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )
    measured = json.loads(result.stdout)
    data = json.loads(measured["stdout"]) if measured["stdout"].strip() else {"stderr": measured["stderr"]}
    return measured["status"], data, measured["peak_mb"]


# ------------------------------------------------------------------ slowloris


@pytest.mark.parametrize("where", ["headers", "body"])
def test_slowloris_on_the_protocol_host_is_cut_off_at_the_timeout(verify_command, hostile, where):
    """One byte a second, in the headers or in the body: each read succeeds in time, only the deadline stops it."""
    hostile.routes["/slow.json"] = Route(
        b"{" + b" " * 200 + b"}", drip_headers=where == "headers", drip_body=where == "body", content_length=202
    )
    url = hostile.url("slow.json")
    started = time.monotonic()
    outcome = verify_command(url, "--timeout", "3")
    elapsed = time.monotonic() - started
    assert outcome.exit_code == EXIT_FAILED and outcome.failed_checks == [CHECK_TLS]
    assert outcome.check(CHECK_TLS)["reason"] == f"timed out after 3 s fetching {url}"
    assert elapsed < 60, f"took {elapsed:.1f} s with --timeout 3"  # before: still running at 90 s


def test_slowloris_on_a_document_host_is_cut_off_per_document(published, hostile):
    """The protocol host is honest, the state documents drip from another host."""
    for position, entry in enumerate(published.protocol.instance_protocol):
        path = f"/documents/{position}.json"
        hostile.routes[path] = Route(b"x" * 100, drip_body=True)
        entry.state_data = hostile.url(path)
    published.write_protocol()
    started = time.monotonic()
    options = VerifyOptions(timeout=3.0, allow_private_hosts=True)
    report = verify_protocol(published.url, published.tracker, options)
    elapsed = time.monotonic() - started
    assert [row.reason for row in report.states] == [
        f"state document: timed out after 3 s fetching {hostile.url(f'/documents/{p}.json')}" for p in range(4)
    ]
    assert elapsed < 60, f"took {elapsed:.1f} s with a 3 s timeout"


def test_many_slow_documents_end_at_the_runs_time_limit(publish_execution, victim, hostile):
    """40 dripping documents, 2 s each, 16 at a time, but only 5 s for the run: the rest are not fetched."""
    published = publish_execution(victim, states=40)
    for position, entry in enumerate(published.protocol.instance_protocol):
        path = f"/documents/{position}.json"
        hostile.routes[path] = Route(b"x" * 100, drip_body=True)
        entry.state_data = hostile.url(path)
    published.write_protocol()
    started = time.monotonic()
    options = VerifyOptions(timeout=2.0, total_timeout=5.0, allow_private_hosts=True)
    report = verify_protocol(published.url, published.tracker, options)
    elapsed = time.monotonic() - started
    reasons = [row.reason for row in report.states]
    assert all(
        r.startswith(("state document: timed out after 2 s", "state document: not fetched: the run's")) for r in reasons
    )
    assert sum("the run's time limit of 5 s passed" in r for r in reasons) >= 8
    assert elapsed < 60, f"took {elapsed:.1f} s with a 5 s run limit"


# ------------------------------------------------------------------ JSON built to crash the parser


def test_deeply_nested_protocol_is_refused_without_a_crash(hostile):
    """200 KB of `[` overflowed the C stack once py_ecc had raised the recursion limit (SIGSEGV)."""
    hostile.routes["/nested.json"] = Route(b"[" * 200_000)
    hostile.routes["/closed.json"] = Route(b"[" * 100_000 + b"]" * 100_000)
    status, data, _ = run_process(hostile.url("nested.json"), "--timeout", "5")
    assert status == EXIT_FAILED, data  # a signal would be negative
    assert data["results"][0]["reason"] == "the protocol has unbalanced brackets"
    status, data, _ = run_process(hostile.url("closed.json"), "--timeout", "5")
    assert status == EXIT_FAILED, data
    assert data["results"][0]["reason"] == "the protocol nests deeper than 64 levels"


@pytest.mark.parametrize(
    ("field", "raw", "reason"),
    [
        ("timestamp", "9" * 5000, "the protocol has an integer of 5000 digits (at most 40 are read)"),
        ("timestamp", "1e400", "instance protocol: instance_protocol[0]: timestamp must be an integer, got 'inf'"),
        ("seq", "-1", "instance protocol: instance_protocol[0]: seq is out of range: -1"),
        ("block_nr", "NaN", "instance protocol: instance_protocol[0]: block_nr must be an integer, got 'nan'"),
        (
            "seq",
            "18446744073709551616",
            "instance protocol: instance_protocol[0]: seq is out of range: 18446744073709551616",
        ),
        (
            "timestamp",
            '"1678443257"',
            "instance protocol: instance_protocol[0]: timestamp must be an integer, got '1678443257'",
        ),
    ],
)
def test_malformed_numbers_in_the_protocol_are_a_failed_check(verify_command, hostile, field, raw, reason):
    """A 5,000-digit integer, 1e400 and seq -1 gave ValueError, OverflowError and ValueOutOfBounds tracebacks."""
    text = protocol_listing([hostile.url("/s.json")]).decode()
    marker = f'"{field}": '
    if marker in text:
        start = text.index(marker) + len(marker)
        end = text.index(",", start)
        text = text[:start] + raw + text[end:]
    else:
        text = text.replace('"state_data"', f'{marker}{raw}, "state_data"', 1)
    hostile.routes["/p.json"] = Route(text.encode())
    outcome = verify_command(hostile.url("p.json"), "--timeout", "3")
    assert outcome.exit_code == EXIT_FAILED and "Traceback" not in outcome.stderr
    assert outcome.check(CHECK_TLS)["reason"] == reason


def test_malformed_numbers_and_nesting_in_registered_documents_fail_their_state(
    verify_command, publish_execution, victim
):
    """Documents that hash right and are registered, built to break the parsers: each row fails with why."""
    published = publish_execution(victim, states=0)
    instance = published.execution.instance_id
    good = json.loads(state_document(instance, 0, "").content)
    huge = json.dumps({**good, "event_id": 0}).replace('"event_id": 0', '"event_id": ' + "9" * 5000)
    published.add_documents(
        [
            Document(huge.encode()),
            Document(json.dumps({**good, "seq": 1}).replace('"seq": 1', '"seq": 1e400').encode()),
            Document(b'{"kind": "state", "deep": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"),
        ]
    )
    outcome = verify_command(published.url, "--contract", published.tracker.address, "--timeout", "3")
    assert outcome.exit_code == EXIT_FAILED and "Traceback" not in outcome.stderr
    reasons = [reason for _, reason in outcome.failing()]
    assert reasons[0].startswith("state document has an integer of 5000 digits (at most 40 are read)")
    assert reasons[1].startswith("state document is not canonical JSON: canonical JSON has no floats (got inf)")
    assert reasons[2].startswith("state document nests deeper than 64 levels")


# ------------------------------------------------------------------ memory and size


def test_one_large_document_listed_many_times_is_fetched_once_per_use_and_never_held(hostile):
    """A 98 KB protocol listing one 4 MiB document 200 times took the verifier to 1.1 GB RSS: now
    each distinct (URL, use) is fetched once, a model document only streams through the hash, and
    a state document over the content limit is refused by its Content-Length. Peak RSS measured."""
    big = b"x" * (4 * 1024 * 1024)
    hostile.routes["/big.json"] = Route(big)
    listing = protocol_listing([hostile.url("big.json")] * 200, model_url=hostile.url("big.json"))
    assert len(listing) < 100_000
    hostile.routes["/p.json"] = Route(listing)
    status, data, peak_mb = run_process(hostile.url("p.json"), "--timeout", "10")
    assert status == EXIT_FAILED, data
    states = [item for item in data["results"] if item["check"] == "state"]
    assert len(states) == 200
    assert states[0]["reason"] == (
        f"state document: {hostile.url('big.json')} is {len(big)} bytes, over the limit for documents whose "
        "content is read of 1048576"
    )
    model = next(item for item in data["results"] if item["check"] == "model_instance")
    assert model["reason"].startswith("model document hashes to ")
    assert hostile.hits["/big.json"] == 2  # hashed once as the model, refused once as a state document
    assert peak_mb < 400, f"peak RSS {peak_mb:.0f} MB"


def test_a_protocol_over_the_entry_limit_is_refused_before_it_is_parsed(verify_command, hostile):
    hostile.routes["/p.json"] = Route(protocol_listing([hostile.url(f"/{i}.json") for i in range(101)]))
    outcome = verify_command(hostile.url("p.json"), "--max-entries", "100")
    assert outcome.exit_code == EXIT_FAILED
    assert (
        outcome.check(CHECK_TLS)["reason"]
        == "the protocol lists about 101 states, over the limit of 100 (--max-entries)"
    )


def test_a_protocol_of_too_many_values_is_refused_before_it_is_parsed(verify_command, hostile):
    """A million tiny values in a field nobody reads: bounded by the value count, not by the entries."""
    hostile.routes["/p.json"] = Route(protocol_listing([], junk=[{}] * 1_000_000))
    outcome = verify_command(hostile.url("p.json"), "--timeout", "10")
    assert outcome.exit_code == EXIT_FAILED
    reason = outcome.check(CHECK_TLS)["reason"]
    assert reason.startswith("the protocol has about ") and reason.endswith(" values, over the limit of 1,604,096")


# ------------------------------------------------------------------ where documents may come from


def test_documents_on_another_private_host_are_refused_unless_allowed(published, hostile):
    """Policy: the origin of the URL the user gave may be anything; every other host must be public."""
    published.protocol.instance_protocol[0].state_data = hostile.url("/internal/secret.json")
    published.write_protocol()
    report = verify_protocol(published.url, published.tracker, VerifyOptions(timeout=3.0))
    assert report.states[0].reason == (
        "state document: refused: 127.0.0.1 is not a public address (--allow-private-hosts lets the verifier "
        f"fetch from it) ({hostile.url('/internal/secret.json')})"
    )
    assert hostile.hits["/internal/secret.json"] == 0
    verify_protocol(published.url, published.tracker, VerifyOptions(timeout=3.0, allow_private_hosts=True))
    assert hostile.hits["/internal/secret.json"] == 1


def test_a_host_name_resolving_to_a_private_address_is_refused(published):
    url = published.url.replace("127.0.0.1", "localhost")
    published.protocol.instance_protocol[0].state_data = url
    published.write_protocol()
    report = verify_protocol(published.url, published.tracker, VerifyOptions(timeout=3.0))
    assert report.states[0].reason.startswith("state document: refused: localhost resolves to ")
    assert "which is not a public address" in report.states[0].reason


def test_a_protocol_url_found_through_ens_must_be_public(published):
    """Only a URL the user typed is trusted whatever its address; one from a `url` record is not."""
    report = verify_protocol(published.url, published.tracker, VerifyOptions(timeout=3.0), url_given_by_user=False)
    assert report.check(CHECK_TLS).reason == (
        "refused: 127.0.0.1 is not a public address (--allow-private-hosts lets the verifier fetch from it) "
        f"({published.url})"
    )


def test_a_host_is_resolved_once_so_a_later_answer_cannot_move_it(published, monkeypatch):
    """A DNS answer that changes after the first lookup (rebinding) is never asked for: the host
    is resolved once per run and every connection goes to that address."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def resolver(host, port, *args, **kwargs):
        if host != "documents.test":
            return real(host, port, *args, **kwargs)
        asked.append(host)
        address = "127.0.0.1" if len(asked) == 1 else "10.255.255.1"  # the second answer would hang
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    for entry in published.protocol.instance_protocol:
        entry.state_data = entry.state_data.replace("127.0.0.1", "documents.test")
    published.write_protocol()
    report = verify_protocol(published.url, published.tracker, VerifyOptions(timeout=3.0, allow_private_hosts=True))
    assert [row.ok for row in report.states] == [True] * 4
    assert asked == ["documents.test"]
