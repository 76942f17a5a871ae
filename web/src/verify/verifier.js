// The five checks in the browser, in the order `tracker.verify.verifier.verify_protocol` makes
// them: the protocol over TLS, every document downloaded (16 at a time) and hashed as it arrives
// while the chain is read, then each state, the model, instance and ends, ENS and the certificate.
// `onEvent` hears each step ({type: "protocol" | "document" | "chain" | "report"}), so a page can
// draw what is known while documents still download.
import { createPublicClient, http } from "viem";
import { certificateCheck, ensCheck, tlsCheck } from "./checks.js";
import { readChain } from "./chain.js";
import { readChildren, readEnd, readInstance, readState } from "./content.js";
import { modelCheck } from "./ends.js";
import { chainHeads, executionId, sha256Hex } from "./hashes.js";
import { DocumentError, ownerOf, protocolFromJson } from "./protocol.js";
import { CHECK_ENS, CHECK_MODEL, CHECK_STATES, CHECK_CERTIFICATE, checkResult, verdictOf } from "./report.js";
import { followLinks } from "./links.js";
import { indexView, judgeStates, makeTrace, statesCheck } from "./states.js";

export const LIMITS = { maxProtocolBytes: 32 * 1024 * 1024, maxDocumentBytes: 4 * 1024 * 1024, maxEntries: 25_000, concurrency: 16, timeoutMs: 10_000 };
const readers = { state: readState, end: readEnd, instance: readInstance, children: readChildren };

async function bodyOf(response, maxBytes, url) {
  const reader = response.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > maxBytes) {
      await reader.cancel();
      throw new Error(`${url} is larger than ${maxBytes.toLocaleString("en")} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}

/** One download: {url, ok, sha256, size, content, error}, worded as the Python downloader words it. */
export async function fetchDocument(url, kind, maxBytes = LIMITS.maxDocumentBytes, fetcher = fetch) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), LIMITS.timeoutMs);
  try {
    // A protocol grows, so it is revalidated; a document is immutable and hashed here whatever a
    // cache hands back, so the browser's cache may serve it as the server allows (a year).
    const cache = kind === "protocol" ? "no-cache" : "default";
    const response = await fetcher(url, { credentials: "omit", cache, signal: controller.signal, redirect: "error" });
    if (response.status !== 200) return { url, ok: false, sha256: null, error: `HTTP ${response.status} ${response.statusText} for ${url}`.replace("  ", " ") };
    const bytes = await bodyOf(response, maxBytes, url);
    const digest = await sha256Hex(bytes);
    let content = kind in readers ? readers[kind](bytes) : null;
    if (content?.kind === "instance") content = { ...content, execution_id: await executionId(content.execution_arn, content.start_date_ms) };
    return { url, ok: true, sha256: digest, size: bytes.length, content, bytes: kind === "model" || kind === "protocol" ? bytes : null, error: null };
  } catch (error) {
    const reason = controller.signal.aborted ? `timed out after ${LIMITS.timeoutMs / 1000} s fetching ${url}` : `cannot fetch ${url}: ${error.message}`;
    return { url, ok: false, sha256: null, error: reason };
  } finally {
    clearTimeout(timer);
  }
}

async function pool(jobs, concurrency, work) {
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, jobs.length) }, async () => {
    while (next < jobs.length) {
      const index = next++;
      await work(jobs[index], index);
    }
  });
  await Promise.all(workers);
}

const absolute = (link, base) => new URL(link, base).href;

/**
 * Verifies the protocol at `url`. `rpcUrl`: the JSON-RPC endpoint; `contract`: the InstanceTracker
 * address to read (the canonical one unless the reader chose another: `contractIsCanonical`).
 */
export async function verifyProtocol({ url, rpcUrl, contract, contractIsCanonical = true, abi, deploymentBlock = 0, onEvent = () => {}, fetcher = fetch }) {
  const started = performance.now();
  const timings = {};
  const mark = (name) => {
    timings[name] = Math.round(performance.now() - started);
  };
  const say = (type, detail) => onEvent({ type, ...detail });
  const report = { url, checks: [], states: [], attempts: [], verdict: "incomplete", contract: contract?.slice(2).toLowerCase() ?? null, contractIsCanonical };
  const finish = () => {
    report.verdict = verdictOf([...report.checks, ...report.states, ...report.attempts]);
    report.browserVerdict = browserVerdict(report);
    mark("done");
    report.timings = timings;
    report.seconds = (performance.now() - started) / 1000;
    say("report", { report });
    return report;
  };
  if (new URL(url).protocol !== "https:") {
    report.checks = [tlsCheck(url, false, `not an https URL: ${url}`), ...notCheckedAfterFetch("the protocol could not be read")];
    return finish();
  }
  const fetched = await fetchDocument(url, "protocol", LIMITS.maxProtocolBytes, fetcher);
  let protocol = null;
  let failure = fetched.error;
  if (fetched.ok) {
    try {
      const text = new TextDecoder("utf-8", { fatal: true }).decode(fetched.bytes);
      protocol = protocolFromJson(JSON.parse(text));
      if (protocol.instance_protocol.length > LIMITS.maxEntries) {
        failure = `the protocol lists ${protocol.instance_protocol.length.toLocaleString("en")} states, over the limit of ${LIMITS.maxEntries.toLocaleString("en")} (--max-entries)`;
        protocol = null;
      }
    } catch (error) {
      failure = error instanceof DocumentError ? error.message : `the protocol is not valid JSON: ${error.message}`;
    }
  }
  if (protocol === null) {
    report.checks = [tlsCheck(url, false, failure), ...notCheckedAfterFetch("the protocol could not be read")];
    return finish();
  }
  const entries = protocol.instance_protocol;
  report.checks.push(tlsCheck(url, true, `fetched over your browser's TLS from ${url} (${fetched.size} bytes, ${entries.length} states)`));
  report.protocol = protocol;
  const owner = ownerOf(protocol);
  report.owner = owner;
  mark("protocol");
  say("protocol", { protocol, owner, check: report.checks[0] });

  // Each distinct (URL, kind) once, the instance document first (it may give the execution id).
  const jobs = [];
  const index = new Map();
  const add = (link, kind) => {
    const key = `${kind} ${absolute(link, url)}`;
    if (!index.has(key)) {
      index.set(key, jobs.length);
      jobs.push({ url: absolute(link, url), kind });
    }
    return index.get(key);
  };
  const instanceJob = add(protocol.instance_data, "instance");
  const modelJob = add(protocol.model_data, "model");
  const stateJobs = entries.map((entry) => add(entry.state_data, "state"));
  for (const attempt of protocol.attempts) add(attempt.end_data, "end");
  const results = new Array(jobs.length);
  const positionsOf = new Map();
  stateJobs.forEach((job, position) => positionsOf.set(job, [...(positionsOf.get(job) ?? []), position]));

  const client = rpcUrl ? createPublicClient({ transport: http(rpcUrl, { batch: { batchSize: 1000, wait: 0 }, timeout: 30_000, retryCount: 1 }) }) : null;
  const downloads = pool(jobs, LIMITS.concurrency, async (job, i) => {
    results[i] = await fetchDocument(job.url, job.kind, LIMITS.maxDocumentBytes, fetcher);
    say("document", { job, result: results[i], positions: positionsOf.get(i) ?? [], role: i === instanceJob ? "instance" : i === modelJob ? "model" : job.kind });
  });

  let execution = protocol.execution_id;
  if (execution === null) {
    // The prototype's format names no execution id: the instance document gives it.
    while (results[instanceJob] === undefined) await new Promise((r) => setTimeout(r, 5));
    execution = results[instanceJob].content?.execution_id ?? null;
  }
  report.execution_id = execution;
  let view = null;
  let notRead = client === null ? "no chain reachable" : "no InstanceTracker contract on this chain";
  let chainId = null;
  if (client !== null) {
    try {
      chainId = await client.getChainId();
      const code = await client.getCode({ address: contract });
      if (!code || code === "0x") notRead = `no InstanceTracker ${contractIsCanonical ? "at the canonical address" : "at"} ${contract} on chain id ${chainId}`;
      else if (owner === null) notRead = "the owner is unknown (the protocol names none)";
      else if (execution === null) notRead = "the execution id is unknown (the protocol names none and the instance document is not ours)";
      else {
        const roots = entries.map((entry) => entry.merkle_root).filter(Boolean);
        view = indexView(await readChain(client, abi, contract, owner, execution, protocol.model_hash, roots, deploymentBlock));
      }
    } catch (error) {
      notRead = `the chain could not be read: ${error.shortMessage ?? error.message}`;
      view = null;
    }
  } else notRead = "no chain reachable (no JSON-RPC endpoint given)";
  report.chainId = chainId;
  report.view = view;
  mark("chain");
  say("chain", { view, notRead, chainId });
  await downloads;
  mark("documents");

  const judged = judgeDocuments(protocol, (link, kind) => results[index.get(`${kind} ${absolute(link, url)}`)], execution, view, chainId, report.contract, notRead);
  report.documents = judged.documents;
  report.states = judged.states;
  report.attempts = judged.attempts;
  report.status = judged.status;
  report.statusText = judged.statusText;
  report.checks.push(judged.statesCheck, judged.modelCheck);
  mark("checks_2_3");
  // Links to the execution that started this one and to those its states started: to open each
  // in the page (where it is verified in turn), never part of this verdict.
  // They download while ENS is read.
  const links = followLinks(url, protocol, judged.documents, (link) => fetchDocument(link, "children", LIMITS.maxDocumentBytes, fetcher));
  say("check", { checks: report.checks, states: report.states, attempts: report.attempts });
  const gateways = [];
  report.checks.push(client !== null ? await ensCheck(client, owner, url, undefined, gateways) : checkResult(CHECK_ENS, null, "not checked: no chain reachable"));
  mark("check_4");
  report.checks.push(await certificateCheck(view, owner, notRead));
  report.links = await links;
  say("links", { links: report.links });
  return finish();
}

/**
 * Checks 2 and 3 with every state and attempt row, from the downloads (`fetched(link, kind)`) and
 * the chain view: what the shared cases (tests/explorer/verify_cases.json) compare with Python.
 */
export function judgeDocuments(protocol, fetched, execution, view, chainId, contract, notRead) {
  const entries = protocol.instance_protocol;
  const heads = execution !== null ? chainHeads(execution, protocol.model_hash, protocol.instance_hash, entries.map((e) => e.state_hash)) : null;
  const trace = makeTrace(protocol, entries.map((entry) => fetched(entry.state_data, "state")), execution, heads);
  const states = judgeStates(trace, view);
  const check2 = statesCheck(trace, states, view, chainId, contract, notRead);
  const endDocuments = new Map(protocol.attempts.map((attempt) => [attempt.end_data, fetched(attempt.end_data, "end")]));
  const model = fetched(protocol.model_data, "model");
  const instance = fetched(protocol.instance_data, "instance");
  const check3 = modelCheck(trace, model, instance, endDocuments, view, notRead, check2.inProgress);
  return {
    documents: { model, instance, states: trace.documents },
    states,
    attempts: check3.attempts,
    status: check3.status,
    statusText: check3.statusText,
    statesCheck: check2.check,
    modelCheck: check3.check,
  };
}

function notCheckedAfterFetch(reason) {
  return [CHECK_STATES, CHECK_MODEL, CHECK_ENS, CHECK_CERTIFICATE].map((name) => checkResult(name, null, `not checked: ${reason}`));
}

/**
 * What the page can say: "failed" when anything failed; "passed in this browser" when everything
 * passed but check 5's comparison of the presented certificate, which only `ape run verify` can
 * make; else "incomplete". Never "passed": the browser cannot make every check.
 */
export function browserVerdict(report) {
  const items = [...report.checks, ...report.states, ...report.attempts];
  if (items.some((item) => item.ok === false)) return "failed";
  const open = items.filter((item) => item.ok !== true);
  if (open.length === 1 && open[0].check === CHECK_CERTIFICATE && open[0].reason.startsWith("sha256 ")) return "passed in this browser";
  return "incomplete";
}
