// The explorer's links between executions (web/src/verify/links.js): a child's parent from its
// instance document, a visit's children from the children document its state document names,
// each shown only from documents that hash to their ids and agree with the visit. Documents are
// written as the tracker writes them (canonical JSON) and served by a fetch that answers from a map.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { canonicalJson, readInstance, readState } from "../src/verify/content.js";
import { followLinks } from "../src/verify/links.js";
import { fetchDocument } from "../src/verify/verifier.js";

const ORIGIN = "https://publisher.example/protocols/";
const sha256 = (text) => createHash("sha256").update(text).digest("hex");
const id = (n) => sha256(`id ${n}`);
const PARENT = id("parent");
const MAP_RUN = "arn:aws:states:us-east-1:123456789012:mapRun:fan/fan:run-1";

function published(documents) {
  const served = new Map();
  const add = (value) => {
    const text = typeof value === "string" ? value : canonicalJson(value);
    served.set(`${ORIGIN}documents/${sha256(text)}.json`, text);
    return sha256(text);
  };
  const fetcher = async (url) => (served.has(url) ? new Response(served.get(url), { status: 200 }) : new Response("no\n", { status: 404, statusText: "Not Found" }));
  return { add, served, fetcher, ...documents };
}

function stateDocument(instance, seq, name, extra = {}) {
  return { kind: "state", instance_id: instance, seq, previous_state_id: seq ? id(`prev ${seq}`) : "", attempt: 0, event_id: 3 + seq, event_type: "MapStateEntered", state_name: name, timestamp_ms: 1_700_000_000_000 + seq, version: 2, ...extra };
}

/** A parent whose state "Fan" started `children`, published: `change` edits the children
 * document before it is hashed and named, `tamper(site, url)` its published bytes after. */
async function parentWith(children, change = (listing) => listing, tamper = () => {}) {
  const site = published({});
  const listing = change({ kind: "children", instance_id: PARENT, event_id: 4, state_name: "Fan", instances: [...children].sort(), map_run_arn: MAP_RUN });
  const listingId = site.add(listing);
  const states = [stateDocument(PARENT, 0, "Prepare"), stateDocument(PARENT, 1, "Fan", { children: listingId })];
  const stateIds = states.map((state) => site.add(state));
  tamper(site, `${ORIGIN}documents/${listingId}.json`);
  const protocol = { instance_hash: PARENT, instance_protocol: stateIds.map((state) => ({ state_hash: state, state_data: `documents/${state}.json` })) };
  const downloads = [];
  for (const state of stateIds) downloads.push(await fetchDocument(`${ORIGIN}documents/${state}.json`, "state", undefined, site.fetcher));
  const links = await followLinks(`${ORIGIN}${PARENT}.json`, protocol, { instance: null, states: downloads }, (url) => fetchDocument(url, "children", undefined, site.fetcher));
  return { links, listingId, site };
}

test("a visit's children are links to their protocols beside the parent's", async () => {
  const children = [id("a"), id("b"), id("c")];
  const { links } = await parentWith(children);
  assert.equal(links.parent, null);
  assert.equal(links.visits.length, 1);
  const [visit] = links.visits;
  assert.deepEqual([visit.position, visit.state_name, visit.event_id, visit.ok, visit.count, visit.map_run_arn], [1, "Fan", 4, true, 3, MAP_RUN]);
  assert.equal(visit.reason, "started 3 executions");
  assert.deepEqual(
    visit.children,
    [...children].sort().map((child) => ({ instance_id: child, url: `${ORIGIN}${child}.json` })),
  );
});

test("a children document that does not hash to its id gives no links", async () => {
  const swap = (site, url) => site.served.set(url, site.served.get(url).replace(id("a"), id("z")));
  const { links, listingId } = await parentWith([id("a")], undefined, swap);
  const [visit] = links.visits;
  assert.equal(visit.ok, false);
  assert.deepEqual(visit.children, []);
  assert.equal(visit.reason, `children document ${listingId.slice(0, 12)}… is missing or does not hash to its id`);
});

test("a children document of another visit or instance gives no links", async () => {
  for (const change of [(l) => ({ ...l, event_id: 9 }), (l) => ({ ...l, instance_id: id("other") }), (l) => ({ ...l, state_name: "Other" })]) {
    const { links } = await parentWith([id("a")], change);
    assert.equal(links.visits[0].ok, false);
    assert.equal(links.visits[0].reason, "the children document names another instance or visit");
    assert.deepEqual(links.visits[0].children, []);
  }
});

test("a children document listing its instances out of order is refused", async () => {
  const { links } = await parentWith([id("a"), id("b")], (l) => ({ ...l, instances: [...l.instances].reverse() }));
  assert.equal(links.visits[0].ok, false);
  assert.equal(links.visits[0].reason, "children document lists its instances out of order or twice");
});

test("a Map Run of thousands shows the first 200 links and says how many there are", async () => {
  const children = Array.from({ length: 1000 }, (_, n) => id(n));
  const { links } = await parentWith(children);
  const [visit] = links.visits;
  assert.deepEqual([visit.ok, visit.count, visit.children.length], [true, 1000, 200]);
  assert.equal(visit.reason, "started 1000 executions, the first 200 shown");
});

test("a child's parent is a link to the parent's protocol, with the visit and the Map Run", async () => {
  const child = { kind: "instance", execution_arn: "arn:aws:states:us-east-1:123456789012:execution:fan/fan:c1", state_machine_arn: "arn:aws:states:us-east-1:123456789012:stateMachine:fan/fan", name: "c1", start_date_ms: 1_700_000_000_000, model_id: id("model"), input_sha256: id("input"), parent_instance_id: PARENT, parent_execution_arn: "arn:aws:states:us-east-1:123456789012:execution:fan:batch-1", parent_event_id: 4, parent_state_name: "Fan", map_run_arn: MAP_RUN };
  const site = published({});
  const childId = site.add(child);
  const instance = await fetchDocument(`${ORIGIN}documents/${childId}.json`, "instance", undefined, site.fetcher);
  const protocol = { instance_hash: childId, instance_protocol: [] };
  const links = await followLinks(`${ORIGIN}${childId}.json`, protocol, { instance, states: [] }, () => assert.fail("no children to fetch"));
  assert.deepEqual(links.parent, { instance_id: PARENT, execution_arn: child.parent_execution_arn, event_id: 4, state_name: "Fan", map_run_arn: MAP_RUN, url: `${ORIGIN}${PARENT}.json` });
  assert.deepEqual(links.visits, []);
  // the same document listed under another id (its bytes do not hash to it): no parent is shown
  const elsewhere = await followLinks(`${ORIGIN}x.json`, { instance_hash: id("x"), instance_protocol: [] }, { instance, states: [] }, () => null);
  assert.equal(elsewhere.parent, null);
});

test("a parent named in part, or a state's children id malformed, makes the document malformed", () => {
  const encoder = new TextEncoder();
  const partial = { kind: "instance", execution_arn: "arn:aws:states:us-east-1:123456789012:execution:x:y", start_date_ms: 1, model_id: id("m"), parent_instance_id: PARENT };
  assert.equal(readInstance(encoder.encode(canonicalJson(partial))).malformed, "names a parent but lacks parent_execution_arn, parent_event_id, parent_state_name");
  const state = stateDocument(PARENT, 0, "Fan", { children: "not an id" });
  assert.equal(readState(encoder.encode(canonicalJson(state))).malformed, "has a malformed children: 'not an id'");
});

test("each visit is judged on its own, in the protocol's order", async () => {
  const site = published({});
  const states = [];
  for (let visit = 0; visit < 12; visit++) {
    const listing = site.add({ kind: "children", instance_id: PARENT, event_id: 3 + visit, state_name: `Call${visit}`, instances: [id(`child ${visit}`)] });
    states.push(stateDocument(PARENT, visit, `Call${visit}`, { children: listing }));
  }
  const stateIds = states.map((state) => site.add(state));
  const broken = `${ORIGIN}documents/${states[5].children}.json`;
  site.served.delete(broken);
  const protocol = { instance_hash: PARENT, instance_protocol: stateIds.map((state) => ({ state_hash: state, state_data: `documents/${state}.json` })) };
  const downloads = await Promise.all(stateIds.map((state) => fetchDocument(`${ORIGIN}documents/${state}.json`, "state", undefined, site.fetcher)));
  const links = await followLinks(`${ORIGIN}${PARENT}.json`, protocol, { instance: null, states: downloads }, (url) => fetchDocument(url, "children", undefined, site.fetcher));
  assert.deepEqual(links.visits.map((v) => v.position), [...Array(12).keys()]);
  assert.deepEqual(links.visits.map((v) => v.ok), [...Array(12).keys()].map((n) => n !== 5));
  assert.deepEqual(links.visits[7].children, [{ instance_id: id("child 7"), url: `${ORIGIN}${id("child 7")}.json` }]);
  assert.ok(links.visits.every((v) => !("children_id" in v)));
});
