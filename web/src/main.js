// The explorer page: reads what to verify from the address (#<protocol url>, ?protocol=, or
// ?instance=&ens=), runs the checks in this browser and draws them as they progress.
import { createPublicClient, http } from "viem";
import { drawGraph } from "./ui/graph.js";
import { urlRecordOf } from "./verify/checks.js";
import { CHECK_TITLES } from "./verify/report.js";
import { verifyProtocol } from "./verify/verifier.js";

// eslint-disable-next-line no-undef
const TRACKER = __TRACKER__;
const DEFAULT_RPC = "http://127.0.0.1:8545";
const EXPLORERS = { 1: "https://etherscan.io", 11155111: "https://sepolia.etherscan.io", 17000: "https://holesky.etherscan.io" };
const $ = (id) => document.getElementById(id);
const SYMBOL = { true: "✓", false: "✗", null: "?" };
const WORD = { true: "passed", false: "failed", null: "not checked" };

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

const badge = (ok) => el("span", { class: `badge ${WORD[ok].replace(" ", "-")}` }, `${SYMBOL[ok]} ${WORD[ok]}`);
const hex = (value) => el("code", { class: "hex", title: value }, value);
const link = (href, text) => el("a", { href, rel: "noopener noreferrer", target: "_blank" }, text);
// Another instance's protocol, opened in this page (a new verification: see the hashchange listener).
const instanceLink = (url, id, text) => el("a", { href: `${location.pathname}${location.search}#${url}`, class: "instance-link", "data-instance": id }, text);
const shortId = (id) => `${id.slice(0, 12)}…`;
const when = (ms) => (ms === null || ms === undefined ? "not available" : new Date(ms).toISOString().replace("T", " ").replace(".000Z", "Z"));

function definitionList(target, rows) {
  const list = $(target);
  list.replaceChildren();
  for (const [term, value] of rows) list.append(el("dt", {}, term), el("dd", {}, value ?? el("span", { class: "na" }, "not available")));
}

function readAddress() {
  const params = new URLSearchParams(location.search);
  const fromHash = decodeURIComponent(location.hash.slice(1));
  return {
    protocol: fromHash || params.get("protocol") || "",
    instance: params.get("instance") || "",
    ens: params.get("ens") || "",
    rpc: params.get("rpc") || localStorage.getItem("explorer.rpc") || DEFAULT_RPC,
    contract: params.get("contract") || TRACKER.canonical,
  };
}

function setVerdict(state, text) {
  $("verdict").dataset.verdict = state;
  $("verdict-text").textContent = text;
}

function drawChecks(checks) {
  const list = $("checks");
  list.replaceChildren();
  for (const name of Object.keys(CHECK_TITLES)) {
    const check = checks.find((c) => c.check === name);
    list.append(
      el("li", { "data-check": name, "data-ok": check ? String(check.ok) : "pending" }, el("span", { class: "title" }, CHECK_TITLES[name]), " ", check ? badge(check.ok) : el("span", { class: "badge pending" }, "… checking"), el("div", { class: "reason" }, check?.reason ?? "")),
    );
  }
}

let timeline = [];

function drawTimeline(protocol, chainId) {
  const body = $("timeline").querySelector("tbody");
  body.replaceChildren();
  const explorer = EXPLORERS[chainId];
  timeline = protocol.instance_protocol.map((entry, position) => {
    const tx = explorer ? link(`${explorer}/tx/0x${entry.transaction_hash}`, `0x${entry.transaction_hash.slice(0, 10)}…`) : hex(`0x${entry.transaction_hash}`);
    const block = explorer ? link(`${explorer}/block/${entry.block_nr}`, String(entry.block_nr)) : String(entry.block_nr);
    const cells = { name: el("td", { class: "state-name" }, el("span", { class: "na" }, "downloading…")), time: el("td", {}, when(entry.timestamp * 1000)), duration: el("td", {}, ""), verdict: el("td", { class: "row-verdict" }, el("span", { class: "badge pending" }, "…")) };
    const row = el("tr", { "data-position": position, "data-state": entry.state_hash }, el("td", {}, String(position)), cells.name, cells.time, cells.duration, el("td", {}, block), el("td", {}, tx), cells.verdict);
    body.append(row);
    return { row, cells, content: null };
  });
}

function documentArrived(result, positions) {
  for (const position of positions) {
    const line = timeline[position];
    if (!line) continue;
    const content = result.ok && result.content?.kind === "state" ? result.content : null;
    line.content = content;
    line.cells.name.replaceChildren(content?.state_name ?? el("span", { class: "na" }, result.ok ? "not available" : "not downloaded"));
    if (content?.timestamp_ms) line.cells.time.textContent = when(content.timestamp_ms);
    line.cells.verdict.replaceChildren(el("span", { class: `badge ${result.ok ? "pending" : "failed"}` }, result.ok ? `sha256 ${result.sha256.slice(0, 8)}…` : "✗ not downloaded"));
    const previous = timeline[position - 1]?.content;
    if (previous?.timestamp_ms && content?.timestamp_ms) timeline[position - 1].cells.duration.textContent = `${((content.timestamp_ms - previous.timestamp_ms) / 1000).toFixed(3)} s`;
  }
}

function drawRows(states) {
  for (const state of states) {
    const line = timeline[state.position];
    line.row.dataset.ok = String(state.ok);
    line.cells.verdict.replaceChildren(badge(state.ok), el("div", { class: "reason" }, state.reason));
  }
}

function drawAttempts(attempts) {
  const body = $("attempts").querySelector("tbody");
  body.replaceChildren();
  for (const a of attempts) body.append(el("tr", { "data-ok": String(a.ok) }, el("td", {}, String(a.attempt)), el("td", {}, a.end ? hex(a.end) : "none"), el("td", {}, a.final ? "yes" : "no"), el("td", {}, badge(a.ok), el("div", { class: "reason" }, a.reason))));
}

function drawModel(protocol, modelDocument, states) {
  definitionList("model", [
    ["model id", hex(protocol.model_hash)],
    ["definition", link(new URL(protocol.model_data, protocol.url).href, "the model document")],
    ["sha256 here", modelDocument?.ok ? hex(modelDocument.sha256) : modelDocument?.error],
  ]);
  let definition = null;
  try {
    definition = JSON.parse(new TextDecoder().decode(modelDocument.bytes));
  } catch {
    $("graph").replaceChildren(el("p", { class: "na" }, "the definition could not be read as ASL"));
    return;
  }
  const names = states.map((s) => s?.state_name).filter(Boolean);
  const top = names.filter((n) => n in (definition.States ?? {}));
  const path = new Set(top.slice(1).map((n, i) => `${top[i]}->${n}`));
  $("graph").replaceChildren(drawGraph(definition, new Set(names), path));
}

function drawInstance(protocol, report) {
  const instance = report.documents?.instance?.content?.kind === "instance" ? report.documents.instance.content : null;
  const ends = report.documents ? protocol.attempts : [];
  const last = ends.at(-1);
  definitionList("instance", [
    ["instance id", hex(protocol.instance_hash)],
    ["execution ARN", instance?.execution_arn ?? null],
    ["execution id", report.execution_id ? hex(report.execution_id) : null],
    ["start", instance ? when(instance.start_date_ms) : null],
    ["end", last ? when(last.timestamp * 1000) : null],
    ["status", report.statusText ?? report.status ?? null],
    ["attempts", ends.length ? String(ends.length) : null],
    ["states", String(protocol.instance_protocol.length)],
    ["started by", startedBy(report.links?.parent)],
  ]);
}

function startedBy(parent) {
  if (!parent) return el("span", { class: "na" }, "no other execution (as its instance document says)");
  const where = `state ${parent.state_name}, event ${parent.event_id}${parent.map_run_arn ? `, Map Run ${parent.map_run_arn}` : ""}`;
  return el("span", { id: "parent-link" }, instanceLink(parent.url, parent.instance_id, `instance ${shortId(parent.instance_id)}`), ` (${where}) of ${parent.execution_arn}`);
}

function drawChildren(links) {
  const list = $("children");
  list.replaceChildren();
  const visits = links?.visits ?? [];
  if (!visits.length) {
    list.append(el("li", { class: "na" }, "none: no listed state started an execution"));
    return;
  }
  for (const visit of visits) {
    const item = el("li", { "data-position": visit.position, "data-ok": String(visit.ok) }, el("span", { class: "title" }, `${visit.state_name} (state ${visit.position}, event ${visit.event_id})`), " ", visit.ok ? "" : badge(false), el("div", { class: "reason" }, visit.reason + (visit.map_run_arn ? `; Map Run ${visit.map_run_arn}` : "")));
    if (visit.children.length) {
      const children = el("ul", { class: "child-links" });
      for (const child of visit.children) children.append(el("li", {}, instanceLink(child.url, child.instance_id, shortId(child.instance_id))));
      item.append(children);
    }
    list.append(item);
  }
}

function drawPublisher(report) {
  const view = report.view;
  const ens = report.checks.find((c) => c.check === "ens");
  definitionList("publisher", [
    ["address", report.owner ? hex(`0x${report.owner}`) : null],
    ["ENS name", ens?.name ?? null],
    ["url", ens?.url ?? null],
    ["client id", view?.client_id || null],
    ["certificate sha256 (on chain)", view?.certificate ? hex(view.certificate.fingerprint) : null],
    ["contract", el("span", {}, hex(`0x${report.contract}`), report.contractIsCanonical ? " (canonical)" : " (given)")],
    ["chain id", report.chainId !== null && report.chainId !== undefined ? String(report.chainId) : null],
  ]);
}

async function locate(ens, instance, rpc) {
  const client = createPublicClient({ transport: http(rpc) });
  const record = await urlRecordOf(client, ens);
  if (!record) throw new Error(`ENS name ${ens} has no url text record: give the protocol URL`);
  return `${record.trim().replace(/\/+$/, "")}/${instance.toLowerCase().replace(/^0x/, "")}.json`;
}

async function run(address) {
  delete document.body.dataset.done;
  delete document.body.dataset.timings;
  delete document.body.dataset.seconds;
  setVerdict("running", "Verifying…");
  drawChecks([]);
  $("children").replaceChildren();
  let url = address.protocol;
  try {
    if (!url && address.instance && address.ens) url = await locate(address.ens, address.instance, address.rpc);
  } catch (error) {
    setVerdict("failed", error.message);
    return;
  }
  if (!url) {
    setVerdict("idle", "Give a protocol URL, or an instance id and the publisher's ENS name.");
    return;
  }
  $("protocol-url").value = url;
  const contract = address.contract;
  const canonical = contract.toLowerCase() === TRACKER.canonical.toLowerCase();
  let downloaded = 0;
  let total = 0;
  const started = performance.now();
  const report = await verifyProtocol({
    url,
    rpcUrl: address.rpc,
    contract,
    contractIsCanonical: canonical,
    abi: TRACKER.abi,
    onEvent(event) {
      if (event.type === "protocol") {
        event.protocol.url = url;
        total = event.protocol.instance_protocol.length + 2 + event.protocol.attempts.length;
        drawChecks([event.check]);
        drawTimeline(event.protocol, null);
      } else if (event.type === "document") {
        downloaded += 1;
        $("progress").textContent = `${downloaded} of ${total} documents downloaded and hashed`;
        documentArrived(event.result, event.positions);
      } else if (event.type === "chain") {
        $("progress").textContent += event.view ? "; chain read" : `; chain not read: ${event.notRead}`;
      } else if (event.type === "check") {
        drawChecks(event.checks);
        drawRows(event.states);
        drawAttempts(event.attempts);
      }
    },
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  drawChecks(report.checks);
  if (report.protocol) {
    drawRows(report.states);
    drawAttempts(report.attempts);
    drawModel(report.protocol, report.documents?.model, report.documents?.states.map((d) => (d?.content?.kind === "state" ? d.content : null)) ?? []);
    drawInstance(report.protocol, report);
    drawChildren(report.links);
    drawPublisher(report);
  }
  const failed = [...report.checks, ...report.states, ...report.attempts].filter((i) => i.ok === false);
  const words = {
    "passed in this browser": "Passed in this browser: every check a browser can make passed (check 5 needs ape run verify)",
    failed: `Failed: ${failed.map((i) => (i.check === "state" ? `state ${i.position}` : i.check === "attempt" ? `attempt ${i.attempt}` : CHECK_TITLES[i.check])).slice(0, 6).join(", ")}`,
    incomplete: "Incomplete: some checks could not be made (see below)",
  };
  setVerdict(report.browserVerdict, words[report.browserVerdict]);
  $("progress").textContent = `${seconds} s`;
  document.body.dataset.done = report.browserVerdict;
  document.body.dataset.seconds = seconds;
  document.body.dataset.timings = JSON.stringify(report.timings ?? {});
  $("browser-note").textContent = `Chain: ${address.rpc}; contract ${contract}${canonical ? " (canonical)" : " (given, not the canonical one)"}.`;
}

const address = readAddress();
$("rpc-url").value = address.rpc;
$("contract").value = address.contract;
$("instance-id").value = address.instance;
$("ens-name").value = address.ens;
$("open").addEventListener("submit", (event) => {
  event.preventDefault();
  const rpc = $("rpc-url").value.trim() || DEFAULT_RPC;
  localStorage.setItem("explorer.rpc", rpc);
  const next = { protocol: $("protocol-url").value.trim(), instance: $("instance-id").value.trim(), ens: $("ens-name").value.trim(), rpc, contract: $("contract").value.trim() || TRACKER.canonical };
  if (next.protocol) history.replaceState(null, "", `${location.pathname}${location.search}#${next.protocol}`);
  run(next);
});
// A new protocol in the address (#<url>) is a new verification, without reloading the page.
window.addEventListener("hashchange", () => {
  const next = readAddress();
  if (next.protocol && next.protocol !== $("protocol-url").value) {
    window.scrollTo(0, 0);
    run(next);
  }
});
if (address.protocol || (address.instance && address.ens)) run(address);
