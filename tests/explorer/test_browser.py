"""The explorer in a real browser: Debian's Chromium, headless, opens the page served by
`ape run serve`'s server over TLS on loopback, reads anvil (ENS installed as Sepolia has it) and
the protocol server, and must reach the verdict `ape run verify` reaches; a tampered document is
named by its state and its check.

Needs anvil (ENS via anvil_setCode): `ape test tests/explorer --network ethereum:local:foundry`.
"""

from __future__ import annotations

from pathlib import Path

import browser
import pytest

from tracker.dev import ens as dev_ens
from tracker.dev import explorer as page
from tracker.identity import ens
from tracker.publish.server import serve_in_thread
from tracker.verify.report import VerifyOptions
from tracker.verify.verifier import verify_protocol

NAME = "explorer-client.eth"
pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module", autouse=True)
def on_anvil(chain):
    if chain.provider.name != "foundry":
        pytest.skip("needs anvil (ENS via anvil_setCode): ape test tests/explorer --network ethereum:local:foundry")
    reason = page.missing(browser.PROJECT_ROOT)
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def local_ens(on_anvil, accounts):
    return dev_ens.install_local_ens(accounts[0])


@pytest.fixture(scope="module")
def driver(on_anvil):
    started = page.start_browser()
    yield started
    started.quit()


@pytest.fixture
def explorer(tmp_path):
    """The explorer served by a server of its own (another origin than the protocol's: the page
    may be hosted anywhere)."""
    empty = tmp_path / "explorer-root"
    empty.mkdir()
    server = serve_in_thread(
        empty, "127.0.0.1", 0, tls_dir=tmp_path / "explorer-tls", explorer=page.built_explorer(browser.PROJECT_ROOT)
    )
    yield server
    server.stop()


@pytest.fixture
def linked(publish_execution, accounts, local_ens):
    client = accounts[6]
    published = publish_execution(client, states=6)
    if ens.name_holding(NAME).holder is None:
        dev_ens.register_name(client, NAME)
    ens.link_identity(client, NAME, published.server.origin)
    return published


def page_url(explorer, chain, published) -> str:
    return f"{explorer.url('explorer/')}?rpc={chain.provider.uri}&contract={published.tracker.address}#{published.url}"


def test_the_page_verifies_what_ape_run_verify_verifies(driver, explorer, linked, chain, tmp_path):
    python = verify_protocol(linked.url, linked.tracker, VerifyOptions(timeout=3.0))
    assert python.verdict == "passed"
    driver.get(page_url(explorer, chain, linked))
    assert page.wait_for_verdict(driver).verdict == "passed in this browser"
    checks = browser.checks(driver)
    for name in ("protocol_tls", "states", "model_instance", "ens"):
        assert checks[name]["ok"] == "true", checks[name]
    # Checks 2 to 4 in the same words as the command.
    assert checks["states"]["reason"] == python.check("states").reason
    assert checks["model_instance"]["reason"] == python.check("model_instance").reason
    assert checks["ens"]["reason"] == python.check("ens").reason
    # Check 5: what the chain says is checked, the presented certificate is not, and it says so.
    assert checks["certificate"]["ok"] == "null"
    assert "fingerprint not comparable here: run `ape run verify` for check 5" in checks["certificate"]["reason"]
    states = browser.rows(driver, "#timeline tbody tr")
    assert [row["ok"] for row in states] == ["true"] * 6
    for row, result in zip(states, python.states):
        assert result.reason in row["text"]
    driver.save_screenshot(str(tmp_path / "explorer.png"))


def test_a_tampered_state_document_is_named_by_state_and_check(driver, explorer, linked, chain):
    documents = Path(linked.root) / "documents"
    target = documents / f"{linked.execution.state_ids[3]}.json"
    target.write_bytes(target.read_bytes().replace(b'"seq":3', b'"seq":3 '))
    python = verify_protocol(linked.url, linked.tracker, VerifyOptions(timeout=3.0))
    driver.get(page_url(explorer, chain, linked))
    assert page.wait_for_verdict(driver).verdict == "failed"
    verdict = driver.find_element("id", "verdict").text
    assert "state 3" in verdict and "2. states registered in order" in verdict
    states = browser.rows(driver, "#timeline tbody tr")
    assert [row["ok"] for row in states] == ["true", "true", "true", "false", "true", "true"]
    assert python.states[3].reason in states[3]["text"]
    assert browser.checks(driver)["states"]["reason"] == python.check("states").reason


def test_an_instance_id_and_the_publishers_ens_name_find_the_protocol(driver, explorer, linked, chain):
    query = (
        f"instance={linked.execution.instance_id}&ens={NAME}&rpc={chain.provider.uri}&contract={linked.tracker.address}"
    )
    driver.get(f"{explorer.url('explorer/')}?{query}")
    assert page.wait_for_verdict(driver).verdict == "passed in this browser"
    assert driver.find_element("id", "protocol-url").get_attribute("value") == linked.url


def test_the_page_fits_a_phone_width(driver, explorer, linked, chain, tmp_path):
    # A phone as Chromium's device emulation makes one: a 390 px wide layout viewport.
    metrics = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        driver.get(page_url(explorer, chain, linked))
        assert page.wait_for_verdict(driver).verdict == "passed in this browser"
        # Only the tables and the graph scroll sideways, inside their own boxes; the page does not.
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        wide = driver.execute_script(
            "return Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > "
            "window.innerWidth + 1 && !e.parentElement.closest('.table, .graph-box')).slice(0, 5)"
            ".map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"
        )
        driver.save_screenshot(str(tmp_path / "phone.png"))
        assert overflow <= 0, f"the page is {overflow} px wider than the window: {wide}"
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


CHILDREN_NAME = "explorer-tree.eth"


@pytest.fixture
def tree(aws, project, chain, accounts, local_ens, serve, register_certificate, tmp_path):
    """A Distributed Map parent and its three Standard children, tracked by the tracker (moto and
    the emulation run the children, see tests/tracking/test_tracking_children.py), published and
    served, the publisher's ENS name linked to the server."""
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tracking"))
    from test_tracking_children import create, fan_out, run

    from tracker.aws.executions import Selection
    from tracker.aws.history import HistorySource
    from tracker.chain.contract import TrackerContract
    from tracker.publish.targets import DirectoryPublisher
    from tracker.tracking.config import TrackConfig
    from tracker.tracking.engine import track

    client = accounts[7]
    tracker = TrackerContract(client.deploy(project.InstanceTracker), client)
    root = tmp_path / "tree"
    root.mkdir()
    server = serve(root, tls_name="tree-tls")
    register_certificate(tracker, client, server.fingerprint)
    if ens.name_holding(CHILDREN_NAME).holder is None:
        dev_ens.register_name(client, CHILDREN_NAME)
    ens.link_identity(client, CHILDREN_NAME, server.origin)
    machine = create(aws, "fan", fan_out("STANDARD"))
    parent_arn = run(aws, machine, "batch-1", {"items": [1, 2, 3]})
    publisher = DirectoryPublisher(root, server.origin)
    track(TrackConfig(state_dir=tmp_path / "state"), HistorySource(aws, Selection((machine,))), tracker, publisher)
    parent = next(
        path.stem
        for path in root.glob("*.json")
        if json.loads((root / "documents" / path.name).read_text())["execution_arn"] == parent_arn
    )
    return tracker, server, root, parent


def open_protocol(driver, explorer, chain, tracker, url: str) -> str:
    driver.get(f"{explorer.url('explorer/')}?rpc={chain.provider.uri}&contract={tracker.address}#{url}")
    return page.wait_for_verdict(driver).verdict


def followed(driver, selector: str) -> str:
    """Clicks a link to another instance and waits for the page's verdict on it."""
    target = driver.find_element("css selector", selector)
    driver.execute_script("delete document.body.dataset.done")
    target.click()
    return page.wait_for_verdict(driver).verdict


def test_the_page_follows_a_parent_to_its_children_and_back(driver, explorer, tree, chain):
    tracker, server, _root, parent = tree
    parent_url = server.url(f"{parent}.json")
    assert open_protocol(driver, explorer, chain, tracker, parent_url) == "passed in this browser"
    assert "no other execution" in driver.find_element("id", "instance").text
    [visit] = driver.find_elements("css selector", "#children > li")
    assert visit.get_attribute("data-ok") == "true"
    assert visit.find_element("css selector", ".reason").text.startswith(
        "started 3 executions; Map Run arn:aws:states:"
    )
    children = [a.get_attribute("data-instance") for a in visit.find_elements("css selector", "a.instance-link")]
    # the children the Python verifier walks, and each passes there
    python = verify_protocol(parent_url, tracker, VerifyOptions(timeout=5.0))
    assert python.check("children").ok is True and len(children) == 3

    assert followed(driver, f"#children a[data-instance='{children[1]}']") == "passed in this browser"
    assert driver.find_element("id", "protocol-url").get_attribute("value") == server.url(f"{children[1]}.json")
    link = driver.find_element("css selector", "#parent-link a")
    assert link.get_attribute("data-instance") == parent
    assert "(state Fan, event " in driver.find_element("id", "parent-link").text
    assert "none: no listed state started an execution" in driver.find_element("id", "children").text

    assert followed(driver, "#parent-link a") == "passed in this browser"
    assert driver.find_element("id", "protocol-url").get_attribute("value") == parent_url


def test_a_tampered_children_document_shows_no_links(driver, explorer, tree, chain):
    tracker, server, root, parent = tree
    listing = next(p for p in (root / "documents").glob("*.json") if '"kind":"children"' in p.read_text())
    listing.write_text(listing.read_text().replace('"state_name":"Fan"', '"state_name":"Fax"'))
    parent_url = server.url(f"{parent}.json")
    open_protocol(driver, explorer, chain, tracker, parent_url)
    [visit] = driver.find_elements("css selector", "#children > li")
    assert visit.get_attribute("data-ok") == "false"
    assert "is missing or does not hash to its id" in visit.text
    assert visit.find_elements("css selector", "a.instance-link") == []
    python = verify_protocol(parent_url, tracker, VerifyOptions(timeout=5.0))
    assert python.check("children").ok is False
