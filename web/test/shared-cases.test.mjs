// The explorer's checks on the cases the Python verifier runs (tests/explorer/verify_cases.json):
// every verdict and reason must be the Python one, word for word. Documents go through the page's
// own download path (fetchDocument: SHA-256 by WebCrypto, the content readers) with a fetch that
// answers from the case; the chain view is the case's.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { protocolFromJson } from "../src/verify/protocol.js";
import { indexView } from "../src/verify/states.js";
import { fetchDocument, judgeDocuments } from "../src/verify/verifier.js";

const table = JSON.parse(readFileSync(new URL("../../tests/explorer/verify_cases.json", import.meta.url), "utf8"));
const CHAIN_ID = 31337;
const CONTRACT = "b0a4119952a68efe967123f9a98282542909bff7";

async function judge(testCase) {
  const fetcher = async (url) => {
    const text = testCase.documents[url];
    return text === undefined ? new Response("not found\n", { status: 404, statusText: "Not Found" }) : new Response(text, { status: 200 });
  };
  const protocol = protocolFromJson(structuredClone(testCase.protocol));
  const wanted = [[protocol.model_data, "model"], [protocol.instance_data, "instance"], ...protocol.instance_protocol.map((e) => [e.state_data, "state"]), ...protocol.attempts.map((a) => [a.end_data, "end"])];
  const downloads = new Map();
  for (const [url, kind] of wanted) downloads.set(`${kind} ${url}`, await fetchDocument(url, kind, undefined, fetcher));
  const fetched = (url, kind) => downloads.get(`${kind} ${url}`);
  const execution = protocol.execution_id ?? fetched(protocol.instance_data, "instance").content?.execution_id ?? null;
  const view = testCase.chain === null ? null : indexView(structuredClone(testCase.chain));
  const judged = judgeDocuments(protocol, fetched, execution, view, view ? CHAIN_ID : null, view ? CONTRACT : null, "no chain reachable");
  return {
    states: { ok: judged.statesCheck.ok, reason: judged.statesCheck.reason },
    model_instance: { ok: judged.modelCheck.ok, reason: judged.modelCheck.reason },
    rows: judged.states.map((r) => ({ position: r.position, ok: r.ok, reason: r.reason })),
    attempts: judged.attempts.map((a) => ({ attempt: a.attempt, ok: a.ok, reason: a.reason })),
    status: judged.status,
  };
}

/** The hand-written expectation of a case (the same rules as tests/explorer/test_shared_cases.py). */
function assertExpected(expect, results) {
  if (expect.rows === "all true") assert.ok(results.rows.every((r) => r.ok === true));
  for (const check of ["states", "model_instance"]) {
    if (check in expect) {
      assert.equal(results[check].ok, expect[check]);
      if (expect.contains && !("row" in expect) && !("attempt" in expect)) assert.match(results[check].reason, new RegExp(expect.contains.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    }
  }
  if ("row" in expect) {
    assert.equal(results.rows[expect.row].ok, expect.ok);
    assert.ok(results.rows[expect.row].reason.includes(expect.contains), results.rows[expect.row].reason);
  }
  if ("attempt" in expect) {
    const row = results.attempts.find((a) => a.attempt === expect.attempt);
    assert.equal(row.ok, expect.ok);
    assert.ok(row.reason.includes(expect.contains), row.reason);
  }
}

for (const testCase of table.cases) {
  test(`shared case: ${testCase.name}`, async () => {
    const results = await judge(testCase);
    assertExpected(testCase.expect, results);
    assert.deepEqual(results, testCase.results);
  });
}

test("the cases cover a pass, a failing row, a failing check and a not checked verdict", () => {
  const verdicts = new Set(table.cases.flatMap((c) => [c.results.states.ok, ...c.results.rows.map((r) => r.ok)]));
  assert.deepEqual([...verdicts].sort(), [false, null, true].sort());
});
