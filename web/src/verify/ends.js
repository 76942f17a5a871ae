// Check 3, as `tracker.verify.ends` makes it: the model and instance documents, the instance's
// registration, every attempt end, and the instance's status for the report.
import { REDRIVABLE_STATUSES } from "./content.js";
import {
  CHECK_MODEL,
  STATUS_ENDED,
  STATUS_FINAL,
  STATUS_MOVED,
  STATUS_RUNNING,
  STATUS_UNREGISTERED,
  checkResult,
  short,
} from "./report.js";
import { describeEnd } from "./states.js";

/** null when the document was fetched and hashes to its id, else why not. */
export function documentProblem(fetched, expectedId, what) {
  if (!fetched.ok) return `${what} document: ${fetched.error}`;
  if (fetched.sha256 !== expectedId) return `${what} document hashes to ${short(fetched.sha256)}, not to its id ${short(expectedId)}`;
  return null;
}

function endContentProblems(content, trace, end, listed) {
  if (content?.foreign !== undefined) return [];
  if (content?.malformed !== undefined) return [`end document ${content.malformed}`];
  if (content?.kind !== "end") return ["end document could not be read"];
  const problems = [];
  const instance = trace.protocol.instance_hash;
  if (content.instance_id !== instance) problems.push(`end document names instance ${short(content.instance_id)}, not the protocol's ${short(instance)}`);
  const attempt = end !== null ? end.attempt : listed.attempt;
  const count = end !== null ? end.state_count : listed.state_count;
  if (content.attempt !== attempt) problems.push(`end document says attempt ${content.attempt}, the end is of attempt ${attempt}`);
  if (content.state_count !== count) {
    problems.push(`end document says ${content.state_count} states, the end pinned ${count}`);
  } else if (count <= trace.ids.length) {
    const last = count ? trace.ids[count - 1] : "";
    if (content.last_state_id !== last) {
      problems.push(
        `end document names last state ${short(content.last_state_id || null)}, ` +
          `the ${count}th listed state is ${short(last || null)}`,
      );
    }
  }
  const final = end !== null ? end.final : listed.final;
  if (!final && !REDRIVABLE_STATUSES.has(content.status)) {
    problems.push(
      `end document says ${content.status}, but the chain records this end as not final (only a failed, ` +
        "timed out or aborted execution can be redriven)",
    );
  }
  return problems;
}

const shownValue = (value) => (typeof value === "string" ? short(value) : String(value).toLowerCase());

function attemptRow(end, listed, document, trace, view) {
  const row = (attempt, endId, final, ok, reason) => ({ check: "attempt", attempt, end: endId, final, ok, reason });
  if (listed === null) {
    const what = end.final ? "termination" : `end of attempt ${end.attempt}`;
    return row(
      end.attempt,
      end.end_id,
      end.final,
      false,
      `the chain recorded the ${what} in block ${end.block} with end document ${short(end.end_id)}; the protocol does not list it`,
    );
  }
  const problems = [];
  const notes = [];
  if (document !== null && document !== undefined) {
    const problem = documentProblem(document, listed.end_hash, "end");
    if (problem) problems.push(problem);
    else {
      problems.push(...endContentProblems(document.content, trace, end, listed));
      if (document.content?.foreign !== undefined) notes.push(`content not checked: ${document.content.foreign}`);
    }
  }
  if (view !== null && end === null) {
    problems.push(`the protocol lists the end of attempt ${listed.attempt}, which the chain never recorded`);
  } else if (end !== null) {
    const expected = [
      ["attempt", listed.attempt, end.attempt],
      ["end_hash", listed.end_hash, end.end_id],
      ["state_count", listed.state_count, end.state_count],
      ["accumulator_head", listed.accumulator_head, end.head],
      ["block_nr", listed.block_nr, end.block],
      ["transaction_hash", listed.transaction_hash, end.transaction],
      ["final", listed.final, end.final],
    ];
    const chainTime = view.block_times[end.block];
    if (chainTime !== undefined) expected.push(["timestamp", listed.timestamp, chainTime]);
    for (const [name, said, recorded] of expected) {
      if (said !== recorded) {
        const both = typeof said === "string" && typeof recorded === "string";
        const shown = both ? [short(said), short(recorded)] : [shownValue(said), shownValue(recorded)];
        problems.push(`${name} ${shown[0]}, but the chain recorded ${shown[1]}`);
      }
    }
  }
  const attempt = end !== null ? end.attempt : listed.attempt;
  const final = end !== null ? end.final : listed.final;
  if (problems.length) return row(attempt, listed.end_hash, final, false, problems.join("; "));
  const status = document?.content?.kind === "end" ? document.content.status : null;
  const ended = status ? `${status} ` : "";
  if (end === null) {
    return row(attempt, listed.end_hash, final, null, `attempt ${attempt} ended ${ended}after ${listed.state_count} states; on-chain record not checked`);
  }
  const where = describeEnd(end).split(" (")[0].replace(/^the /, "");
  const reason = `${final ? "final" : "not final"}: attempt ${attempt} ended ${ended}after ${end.state_count} states, ${where} in block ${end.block}`;
  if (notes.length) return row(attempt, listed.end_hash, final, null, `${reason}; ${notes.join("; ")}`);
  return row(attempt, listed.end_hash, final, true, reason);
}

/** One row per attempt end: the chain's ends with the protocol's entries, then the unmatched entries. */
export function attemptRows(trace, view, endDocuments) {
  const listed = trace.protocol.attempts;
  const ends = view !== null && view.instance !== null ? view.ends : [];
  const unmatched = listed.map((_, i) => i);
  const rows = [];
  for (const end of ends) {
    const index = unmatched.find((i) => listed[i].attempt === end.attempt && listed[i].final === end.final);
    const entry = index !== undefined ? listed[index] : null;
    if (index !== undefined) unmatched.splice(unmatched.indexOf(index), 1);
    const document = entry !== null ? endDocuments.get(entry.end_data) : null;
    rows.push(attemptRow(end, entry, document, trace, view));
  }
  for (const index of unmatched) rows.push(attemptRow(null, listed[index], endDocuments.get(listed[index].end_data), trace, view));
  return rows;
}

/** The instance's status on chain: final, ended (still redrivable), running, moved, unregistered. */
export function statusOf(trace, view, inProgress) {
  if (view === null) return [null, null];
  const instance = view.instance;
  if (view.moved_to !== null || (instance !== null && instance.status === "MOVED")) return [STATUS_MOVED, `transferred away from 0x${view.owner}`];
  if (instance === null) return [STATUS_UNREGISTERED, `not registered under 0x${view.owner}`];
  const last = view.ends.at(-1) ?? null;
  if (instance.status === "FINAL" && last !== null) return [STATUS_FINAL, `final (attempt ${last.attempt}, ${last.state_count} states)`];
  if (instance.status === "FINAL") return [STATUS_FINAL, "final"];
  const listed = trace.ids.length;
  if (last !== null && !inProgress && listed === last.state_count) {
    if (instance.mode === "direct" && instance.state_count !== last.state_count) return [STATUS_RUNNING, `running (attempt ${last.attempt + 1})`];
    return [STATUS_ENDED, `ended, attempt ${last.attempt}, still redrivable`];
  }
  const attempt = last !== null ? last.attempt + 1 : 0;
  return [STATUS_RUNNING, `running (attempt ${attempt}, ${listed} states so far)`];
}

/** Check 3, the attempt rows and the status: {check, attempts, status, statusText}. */
export function modelCheck(trace, modelDocument, instanceDocument, endDocuments, view, notRead, inProgress) {
  const protocol = trace.protocol;
  const problems = [
    documentProblem(modelDocument, protocol.model_hash, "model"),
    documentProblem(instanceDocument, protocol.instance_hash, "instance"),
  ].filter(Boolean);
  const notes = [];
  const content = instanceDocument.ok ? instanceDocument.content : null;
  if (content?.foreign !== undefined) notes.push(`instance document content not checked: ${content.foreign}`);
  else if (content?.malformed !== undefined) problems.push(`instance document ${content.malformed}`);
  else if (content?.kind === "instance" && instanceDocument.sha256 === protocol.instance_hash) {
    if (content.model_id !== protocol.model_hash) problems.push(`instance document names model ${short(content.model_id)}, the protocol ${short(protocol.model_hash)}`);
    if (protocol.execution_id !== null && protocol.execution_id !== content.execution_id) {
      problems.push(
        `protocol names execution ${short(protocol.execution_id)}, the instance document's ARN and start ` +
          `date give ${short(content.execution_id)}`,
      );
    }
  }
  if (protocol.end_hash !== null && !protocol.attempts.length) problems.push("the protocol names an end document but lists no attempts");
  else if (protocol.end_hash !== null && protocol.end_hash !== protocol.attempts.at(-1).end_hash) {
    problems.push(`end_hash ${short(protocol.end_hash)} is not the last attempt's end document`);
  }
  const rows = attemptRows(trace, view, endDocuments);
  const failed = rows.filter((row) => row.ok === false);
  if (failed.length) problems.push(`${failed.length} of ${rows.length} attempt ends failed`);
  const [status, statusText] = statusOf(trace, view, inProgress);
  const result = (ok, reason) => ({ check: checkResult(CHECK_MODEL, ok, reason), attempts: rows, status, statusText });
  if (view === null) {
    if (problems.length) return result(false, problems.join("; "));
    return result(null, `not checked on chain: ${notRead} (documents hash to their ids)`);
  }
  const instance = view.instance;
  const registration = view.registration;
  if (instance !== null && instance.status !== "MOVED") {
    if (registration === null) problems.push("no InstanceRegistered event of this instance was found");
    else {
      if (registration.model !== protocol.model_hash) problems.push(`the instance was registered with model ${short(registration.model)}, not ${short(protocol.model_hash)}`);
      if (registration.instance_document !== protocol.instance_hash) {
        problems.push(
          `the instance was registered with instance document ${short(registration.instance_document)}, ` +
            `not ${short(protocol.instance_hash)}`,
        );
      }
    }
    if (!Object.values(view.model_registered_at).some(Boolean)) problems.push(`model ${short(protocol.model_hash)} is not registered under 0x${view.owner}`);
    const finalEnd = [...view.ends].reverse().find((end) => end.final) ?? null;
    if (instance.status === "FINAL" && !protocol.attempts.some((a) => a.final)) {
      const where = finalEnd ? ` (terminated in block ${finalEnd.block} with end document ${short(finalEnd.end_id)})` : "";
      problems.push(`the instance is final on chain${where}, but the protocol lists no final end document`);
    }
    if (protocol.final === true && instance.status !== "FINAL") problems.push("the protocol says the instance is final, but it is open on chain");
  } else {
    problems.push(`the instance is not on chain under 0x${view.owner} (see check 2)`);
  }
  if (problems.length) return result(false, problems.join("; "));
  const reason = `model and instance documents hash to their ids; registered together under 0x${view.owner}; ${statusText}`;
  if (notes.length) return result(null, `${reason}; ${notes.join("; ")}`);
  return result(true, reason);
}
