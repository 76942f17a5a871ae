// Check 2, as `tracker.verify.states` makes it: each listed state (its document, what it says,
// its registration) and the listed trace as a whole against the chain's count, head and pins.
// `view` is what `chain.js` read (or a fixture of it); null when the chain was not read.
import { stateLeaf, verifyProof } from "./hashes.js";
import { CHECK_STATES, checkResult, short } from "./report.js";

export const MAX_PROOF_LENGTH = 64;

const comparePosition = (a, b) => (a[0] - b[0]) || (a[1] - b[1]);
export const positionOf = (event) => [event.block, event.log_index];

export function describeEnd(end) {
  if (end.final) return `the termination (attempt ${end.attempt}, block ${end.block})`;
  return `the end of attempt ${end.attempt} (block ${end.block})`;
}

/** The view's lookups, derived once: states by seq, first seq of each state, owners by key. */
export function indexView(view) {
  if (view === null || view.indexed) return view;
  view.states_by_seq = new Map();
  view.duplicate_seqs = [];
  for (const state of view.states) {
    if (view.states_by_seq.has(state.seq)) view.duplicate_seqs.push(state.seq);
    else view.states_by_seq.set(state.seq, state);
  }
  view.seqs_by_state = new Map();
  for (const seq of [...view.states_by_seq.keys()].sort((a, b) => a - b)) {
    const id = view.states_by_seq.get(seq).state_id;
    if (!view.seqs_by_state.has(id)) view.seqs_by_state.set(id, seq);
  }
  view.ends.sort((a, b) => comparePosition(positionOf(a), positionOf(b)));
  view.indexed = true;
  return view;
}

function holderOfKey(view, key) {
  return view.holders.find((holder) => holder.key === key) ?? null;
}

function holderAt(view, position) {
  for (const holder of view.holders) {
    if (holder.until === null || comparePosition(position, positionOf(holder.until)) < 0) return holder;
  }
  return view.holders.at(-1);
}

/** Whether `operator` was approved by `owner` just before `position` (OperatorSet events). */
function approved(view, owner, operator, position) {
  const changes = view.operators
    .filter((change) => change.owner === owner && change.operator === operator)
    .sort((a, b) => comparePosition(positionOf(a), positionOf(b)));
  let state = false;
  for (const change of changes) {
    if (comparePosition(positionOf(change), position) >= 0) break;
    state = change.approved;
  }
  return state;
}

const actsFor = (view, holder, sender, position) => sender === holder.owner || approved(view, holder.owner, sender, position);

/** The trace as the protocol lists it, what its documents say, and the heads over it. */
export function makeTrace(protocol, documents, executionId, heads) {
  const ids = protocol.instance_protocol.map((entry) => entry.state_hash);
  const firstPosition = new Map();
  ids.forEach((id, position) => {
    if (!firstPosition.has(id)) firstPosition.set(id, position);
  });
  return { protocol, documents, executionId, ids, firstPosition, heads };
}

function contentAt(trace, position) {
  if (position < 0) return null;
  const fetched = trace.documents[position];
  const ok = fetched.ok && fetched.sha256 === trace.ids[position];
  return ok && fetched.content?.kind === "state" ? fetched.content : null;
}

function attemptRange(ends, seq) {
  const lows = ends.filter((end) => end.state_count <= seq).map((end) => end.attempt + 1);
  const highs = ends.filter((end) => end.state_count > seq).map((end) => end.attempt);
  return [lows.length ? Math.max(...lows) : 0, highs.length ? Math.min(...highs) : null];
}

function documentProblems(trace, chain, position, entry, problems, notes) {
  const fetched = trace.documents[position];
  if (!fetched.ok) {
    problems.push(`state document: ${fetched.error}`);
    return;
  }
  if (fetched.sha256 !== entry.state_hash) {
    problems.push(`state document hashes to ${short(fetched.sha256)}, not to its id ${short(entry.state_hash)}`);
    return;
  }
  const content = fetched.content;
  if (content?.foreign !== undefined) {
    notes.push(`content not checked: ${content.foreign}`);
    return;
  }
  if (content?.malformed !== undefined) {
    problems.push(`state document ${content.malformed}`);
    return;
  }
  if (content?.kind !== "state") {
    problems.push("state document could not be read");
    return;
  }
  const instance = trace.protocol.instance_hash;
  if (content.instance_id !== instance) {
    problems.push(`state document names instance ${short(content.instance_id)}, not the protocol's ${short(instance)}`);
  }
  if (content.seq !== position) problems.push(`state document says seq ${content.seq}, listed at position ${position}`);
  const expected = position ? trace.ids[position - 1] : "";
  if (content.previous_state_id !== expected) {
    if (position === 0) {
      problems.push(`state document names previous state ${short(content.previous_state_id)}, but it is listed first`);
    } else {
      problems.push(
        `state document names previous state ${short(content.previous_state_id || null)}, ` +
          `the state listed before it is ${short(expected)}`,
      );
    }
  }
  const previous = contentAt(trace, position - 1);
  if (previous !== null && content.attempt < previous.attempt) {
    problems.push(`state document says attempt ${content.attempt} after a state of attempt ${previous.attempt}`);
  }
  if (chain !== null) {
    const [low, high] = attemptRange(chain.ends, position);
    if (content.attempt < low || (high !== null && content.attempt > high)) {
      const belongs =
        high === low ? `attempt ${low}` : high !== null ? `attempts ${low} to ${high}` : `attempt ${low} or later`;
      problems.push(
        `state document says attempt ${content.attempt}, but by the chain's attempt ends ` +
          `seq ${position} belongs to ${belongs}`,
      );
    }
  }
}

function listedFields(chain, entry, block, transaction, problems) {
  if (entry.block_nr !== block) problems.push(`block_nr ${entry.block_nr} but registered in block ${block}`);
  if (entry.transaction_hash !== transaction) {
    problems.push(`transaction_hash ${short(entry.transaction_hash)} but registered by ${short(transaction)}`);
  }
  const chainTime = chain.block_times[block];
  if (chainTime !== undefined && entry.timestamp !== chainTime) {
    problems.push(`timestamp ${entry.timestamp} but block ${block} has ${chainTime}`);
  }
  const sender = chain.senders[transaction];
  if (sender !== undefined && entry.client_address !== sender) {
    problems.push(`client_address 0x${entry.client_address} is not 0x${sender}, who sent transaction ${short(transaction)}`);
  }
}

function by(owner, sender, transfer) {
  let text = sender === owner ? "" : `, by operator 0x${sender} of 0x${owner}`;
  if (transfer !== null) text += `, under the previous owner 0x${owner} (before the transfer in block ${transfer.block})`;
  return text;
}

function direct(chain, position, entry, problems) {
  if (entry.merkle_root) problems.push("listed with a Merkle root, but the instance records its states directly on chain");
  const event = chain.states_by_seq.get(position);
  if (event === undefined || event.state_id !== entry.state_hash) {
    const elsewhere = chain.seqs_by_state.get(entry.state_hash);
    if (elsewhere !== undefined) {
      problems.push(`registered at seq ${elsewhere}, listed at position ${position}: out of order`);
    } else if (event !== undefined) {
      problems.push(
        `not registered for this instance at seq ${position} (seq ${position} on chain is ${short(event.state_id)})`,
      );
    } else {
      problems.push(`not registered on chain for this instance of owner 0x${chain.owner}`);
    }
    return "";
  }
  listedFields(chain, entry, event.block, event.transaction, problems);
  const holder = holderOfKey(chain, event.key);
  const sender = chain.senders[event.transaction];
  if (holder === null || sender === undefined) {
    problems.push(`the sender of transaction ${short(event.transaction)} is unknown`);
    return "";
  }
  if (!actsFor(chain, holder, sender, positionOf(event))) {
    problems.push(
      `registered by 0x${sender}, neither the owner 0x${holder.owner} nor an operator it had approved ` +
        `at block ${event.block}`,
    );
  }
  return `seq ${position}, block ${event.block}` + by(holder.owner, sender, holder.until);
}

function anchored(chain, position, entry, problems) {
  const root = entry.merkle_root;
  const proof = entry.merkle_proof;
  if (!root || proof === null) {
    problems.push("no merkle_root and merkle_proof, but the instance's states are anchored on chain");
    return "";
  }
  if (proof.length > MAX_PROOF_LENGTH) {
    problems.push(`merkle_proof has ${proof.length} hashes, more than ${MAX_PROOF_LENGTH}`);
    return "";
  }
  const leaf = stateLeaf(chain.execution_id, entry.state_hash, position);
  if (!verifyProof(leaf, proof, root)) {
    problems.push(`Merkle proof does not lead from (execution, state, seq ${position}) to root ${short(root)}`);
  }
  const anchorings = chain.anchorings[root] ?? [];
  const chosen = anchorings.find((a) => a.transaction === entry.transaction_hash);
  if (!anchorings.length) {
    problems.push(`root ${short(root)} is not anchored on chain`);
    return "";
  }
  if (chosen === undefined) {
    const shown = anchorings
      .slice(0, 3)
      .map((a) => `${short(a.transaction)} by 0x${a.submitter}`)
      .join(", ");
    problems.push(`root ${short(root)} was not anchored in transaction ${short(entry.transaction_hash)} (anchored in ${shown})`);
    return "";
  }
  listedFields(chain, entry, chosen.block, chosen.transaction, problems);
  const holder = holderAt(chain, positionOf(chosen));
  if (!actsFor(chain, holder, chosen.submitter, positionOf(chosen))) {
    problems.push(
      `root ${short(root)} was anchored by 0x${chosen.submitter}, neither the owner 0x${holder.owner} ` +
        `nor an operator it had approved at block ${chosen.block}`,
    );
  } else if (!chain.anchor_records.some((r) => r.submitter === chosen.submitter && r.root === root && r.anchored_at)) {
    problems.push(`anchorOf(0x${chosen.submitter}, ${short(root)}) holds no anchor`);
  }
  const pin = chain.ends.find((end) => end.state_count > position);
  if (pin !== undefined && comparePosition(positionOf(chosen), positionOf(pin)) > 0) {
    problems.push(`anchored in block ${chosen.block}, after ${describeEnd(pin)}, which pinned seq ${position}`);
  }
  return `anchored under ${short(root)}, block ${chosen.block}` + by(holder.owner, chosen.submitter, holder.until);
}

/** The chain view when it can judge registrations (read, the instance there and not moved away). */
export function usableChain(view) {
  return view !== null && view.instance !== null && view.instance.status !== "MOVED" ? view : null;
}

/** One listed state's row: {position, seq, state, ok, reason}. */
export function judgeState(trace, view, position) {
  const chain = usableChain(view);
  const entry = trace.protocol.instance_protocol[position];
  const problems = [];
  const notes = [];
  documentProblems(trace, chain, position, entry, problems, notes);
  if (entry.seq !== null && entry.seq !== position) problems.push(`listed at position ${position} but its seq is ${entry.seq}`);
  const first = trace.firstPosition.get(entry.state_hash);
  if (first !== position) problems.push(`listed twice (also at position ${first})`);
  let where = "";
  if (chain !== null) where = chain.instance.mode === "direct" ? direct(chain, position, entry, problems) : anchored(chain, position, entry, problems);
  const row = (ok, reason) => ({ check: "state", position, seq: position, state: entry.state_hash, ok, reason });
  if (problems.length) return row(false, problems.join("; "));
  const reason = "document ok" + (where ? `, ${where}` : "");
  if (notes.length) return row(null, `${reason}; ${notes.join("; ")}`);
  if (chain === null) return row(null, `${reason}; on-chain registration not checked`);
  return row(true, reason);
}

export function judgeStates(trace, view) {
  return trace.ids.map((_, position) => judgeState(trace, view, position));
}

function summaryOfRows(rows) {
  const failed = rows.filter((row) => row.ok === false).map((row) => row.position);
  if (!failed.length) return null;
  const shown = failed.slice(0, 10).join(", ") + (failed.length > 10 ? " …" : "");
  return `${failed.length} of ${rows.length} states failed (positions ${shown})`;
}

/** Check 2 as a whole: {check, inProgress}. */
export function statesCheck(trace, rows, view, chainId, contract, notRead) {
  const protocol = trace.protocol;
  const problems = [summaryOfRows(rows)].filter(Boolean);
  if (chainId !== null && protocol.chain_id !== null && protocol.chain_id !== chainId) {
    problems.push(`protocol names chain id ${protocol.chain_id}, verified on chain id ${chainId}`);
  }
  if (contract !== null && protocol.contract_address !== null && protocol.contract_address !== contract) {
    problems.push(`protocol names contract 0x${protocol.contract_address}, verified against 0x${contract}`);
  }
  const verdict = (ok, reason, inProgress = false) => ({ check: checkResult(CHECK_STATES, ok, reason), inProgress });
  if (view === null) {
    if (problems.length) return verdict(false, problems.join("; "));
    return verdict(null, `not checked: ${notRead} (documents hash to their ids)`);
  }
  const instance = view.instance;
  if (view.moved_to !== null || (instance !== null && instance.status === "MOVED")) {
    const moved = view.moved_to;
    const target = moved ? `to 0x${moved.to_owner} in block ${moved.block}` : "away";
    problems.push(`0x${view.owner} transferred the instance ${target}: its record now lives under the new owner`);
    return verdict(false, problems.join("; "));
  }
  if (instance === null) {
    const others = view.other_owners.length
      ? ` (it is registered under ${view.other_owners.slice(0, 3).map((o) => `0x${o}`).join(", ")})`
      : "";
    problems.push(`execution ${short(view.execution_id)} is not registered under the owner 0x${view.owner}${others}`);
    return verdict(false, problems.join("; "));
  }
  const mode = instance.mode;
  if (protocol.mode !== null && protocol.mode !== mode) problems.push(`protocol says mode ${protocol.mode}, the instance is ${mode} on chain`);
  if (view.duplicate_seqs.length) problems.push(`the chain holds seq ${view.duplicate_seqs[0]} twice for this instance`);
  const listed = trace.ids.length;
  const heads = trace.heads;
  if (mode === "direct") {
    if (listed !== instance.state_count) problems.push(`chain has ${instance.state_count} registered states, the protocol lists ${listed}`);
    else if (heads[listed] !== instance.head) problems.push("the listed states do not hash to the contract's head (order or content differs)");
  }
  for (const end of view.ends) {
    if (end.state_count > listed) problems.push(`${describeEnd(end)} pinned ${end.state_count} states, the protocol lists ${listed}`);
    else if (heads[end.state_count] !== end.head) problems.push(`the first ${end.state_count} listed states do not chain to the head ${describeEnd(end)} pinned`);
  }
  const final = [...view.ends].reverse().find((end) => end.final) ?? null;
  const pinned = Math.max(0, ...view.ends.map((end) => end.state_count));
  if (mode === "anchored" && final !== null && listed > final.state_count) {
    problems.push(`the protocol lists ${listed - final.state_count} states after ${describeEnd(final)}`);
  }
  if (instance.status === "FINAL" && final === null) problems.push("the instance is final on chain but no termination event was found");
  if (problems.length) return verdict(false, problems.join("; "));
  const pins = view.ends.length ? `; ${view.ends.length} attempt end(s) pin their prefixes` : "";
  if (mode === "direct") return verdict(true, `${listed} states in order; count ${listed} and head ${short(heads[listed])} match the chain${pins}`);
  if (listed > pinned) {
    return verdict(
      null,
      `in progress: ${listed} anchored states, ${pinned} of them pinned by an attempt end; the last ` +
        `${listed - pinned} are anchored but no end pins them yet, so the owner could still pin another trace`,
      true,
    );
  }
  return verdict(true, `${listed} anchored states in order, all pinned: count ${pinned} and head ${short(heads[listed])}${pins}`);
}
