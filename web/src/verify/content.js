// What a state, end or instance document says, read as `tracker.verify.content` reads it: the
// parsed facts, {foreign} for a document not in this project's format (the published prototype's:
// its content is not checked) or {malformed} with the reason. A document in our format must be
// exactly its canonical JSON (RFC 8785: keys sorted, no whitespace; our documents hold only
// strings and integers, for which JSON.stringify writes what RFC 8785 writes).
import { head, pyRepr, pyStr } from "./report.js";

export const END_STATUSES = ["ABORTED", "FAILED", "SUCCEEDED", "TIMED_OUT"];
export const REDRIVABLE_STATUSES = new Set(["FAILED", "TIMED_OUT", "ABORTED"]);
const ID = /^[0-9a-f]{64}$/;
const MAX_DEPTH = 64;
// The largest integer both verifiers read exactly: the Python one reads any, this one within
// JavaScript's safe range (counts, seqs and milliseconds are all far below it).
const MAX_COUNT = Number.MAX_SAFE_INTEGER;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** RFC 8785 for the values our documents hold; throws on floats, as `canonical_json` refuses them. */
export function canonicalJson(value) {
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new Error(`canonical JSON has no floats (got ${value}); use integers`);
    return JSON.stringify(value);
  }
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const keys = Object.keys(value).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)); // UTF-16 code units
  return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`).join(",")}}`;
}

function depth(value, level = 1) {
  if (value === null || typeof value !== "object") return level - 1;
  let deepest = level;
  for (const item of Object.values(value)) deepest = Math.max(deepest, depth(item, level + 1));
  return deepest;
}

/** The parsed JSON value of bytes, or {refused, overLimit}. */
export function parseJson(bytes) {
  let text;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { refused: "is not UTF-8", overLimit: false };
  }
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { refused: `is not valid JSON: ${error.message}`, overLimit: false };
  }
  if (depth(value) > MAX_DEPTH) return { refused: `nests deeper than ${MAX_DEPTH} levels`, overLimit: true };
  return { value };
}

class Wrong extends Error {}

function identifier(data, key, emptyAllowed = false) {
  const value = data[key];
  if (typeof value === "string" && (ID.test(value) || (emptyAllowed && value === ""))) return value;
  if (!Object.hasOwn(data, key)) throw new Wrong(`lacks ${key}`);
  throw new Wrong(`has a malformed ${key}: ${pyRepr(head(pyStr(value), 80))}`);
}

function count(data, key) {
  const value = data[key];
  if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= MAX_COUNT) return value;
  if (!Object.hasOwn(data, key)) throw new Wrong(`lacks ${key}`);
  throw new Wrong(`has a malformed ${key}: ${pyRepr(head(pyStr(value), 80))}`);
}

function text(data, key) {
  const value = data[key];
  if (typeof value === "string" && value) return value;
  if (!Object.hasOwn(data, key)) throw new Wrong(`lacks ${key}`);
  throw new Wrong(`has a malformed ${key}: ${pyRepr(head(pyStr(value), 80))}`);
}

function ours(bytes, kind) {
  const parsed = parseJson(bytes);
  if (parsed.refused !== undefined) {
    if (parsed.overLimit) return { malformed: parsed.refused };
    return { foreign: `not in this project's format (${parsed.refused})` };
  }
  const value = parsed.value;
  if (value === null || typeof value !== "object" || Array.isArray(value) || !Object.hasOwn(value, "kind")) {
    return { foreign: 'not in this project\'s format (no "kind")' };
  }
  if (value.kind !== kind) {
    return { malformed: `is a document of kind ${pyRepr(head(pyStr(value.kind), 40))}, listed as the ${kind} document` };
  }
  let canonical;
  try {
    canonical = canonicalJson(value);
  } catch (error) {
    return { malformed: `is not canonical JSON: ${error.message}` };
  }
  if (canonical !== utf8.decode(bytes)) return { malformed: "is not in canonical JSON (re-encoding it gives other bytes)" };
  return { value };
}

function reading(bytes, kind, read) {
  const found = ours(bytes, kind);
  if (found.value === undefined) return found;
  try {
    return { kind, ...read(found.value) };
  } catch (error) {
    if (error instanceof Wrong) return { malformed: error.message };
    throw error;
  }
}

export function readState(bytes) {
  return reading(bytes, "state", (v) => ({
    instance_id: identifier(v, "instance_id"),
    seq: count(v, "seq"),
    previous_state_id: identifier(v, "previous_state_id", true),
    attempt: count(v, "attempt"),
    state_name: typeof v.state_name === "string" ? v.state_name : null,
    event_type: typeof v.event_type === "string" ? v.event_type : null,
    timestamp_ms: typeof v.timestamp_ms === "number" ? v.timestamp_ms : null,
    // a visit that started executions (a Distributed Map, a startExecution task) names their children document
    links: Object.hasOwn(v, "children") ? { event_id: count(v, "event_id"), state_name: text(v, "state_name"), children: identifier(v, "children") } : null,
  }));
}

const PARENT_FIELDS = ["parent_instance_id", "parent_execution_arn", "parent_event_id", "parent_state_name"];

/** The execution that started this one, as its instance document names it (null: none). */
function parentOf(v) {
  if (![...PARENT_FIELDS, "map_run_arn"].some((key) => Object.hasOwn(v, key))) return null;
  const missing = PARENT_FIELDS.filter((key) => !Object.hasOwn(v, key));
  if (missing.length) throw new Wrong(`names a parent but lacks ${missing.join(", ")}`);
  const eventId = count(v, "parent_event_id");
  if (eventId < 1) throw new Wrong("has a malformed parent_event_id: 0");
  return {
    instance_id: identifier(v, "parent_instance_id"),
    execution_arn: text(v, "parent_execution_arn"),
    event_id: eventId,
    state_name: text(v, "parent_state_name"),
    map_run_arn: Object.hasOwn(v, "map_run_arn") ? text(v, "map_run_arn") : null,
  };
}

/** A children document: the executions one visit started, as instance ids sorted and distinct. */
export function readChildren(bytes) {
  const found = ours(bytes, "children");
  if (found.value === undefined) return { malformed: found.malformed ?? found.foreign };
  const v = found.value;
  try {
    if (!Array.isArray(v.instances)) throw new Wrong(Object.hasOwn(v, "instances") ? "has a malformed instances: not a list" : "lacks instances");
    const instances = v.instances.map((item) => identifier({ instance: item }, "instance"));
    const sorted = [...new Set(instances)].sort();
    if (sorted.length !== instances.length || sorted.some((id, i) => id !== instances[i])) throw new Wrong("lists its instances out of order or twice");
    return {
      kind: "children",
      instance_id: identifier(v, "instance_id"),
      event_id: count(v, "event_id"),
      state_name: text(v, "state_name"),
      map_run_arn: Object.hasOwn(v, "map_run_arn") ? text(v, "map_run_arn") : null,
      instances,
    };
  } catch (error) {
    if (error instanceof Wrong) return { malformed: `children document ${error.message}` };
    throw error;
  }
}

export function readEnd(bytes) {
  return reading(bytes, "end", (v) => {
    const status = text(v, "status");
    if (!END_STATUSES.includes(status)) {
      throw new Wrong(`has status ${pyRepr(head(status, 40))}, not one of ${END_STATUSES.join(", ")}`);
    }
    return {
      instance_id: identifier(v, "instance_id"),
      attempt: count(v, "attempt"),
      status,
      state_count: count(v, "state_count"),
      last_state_id: identifier(v, "last_state_id", true),
      stop_date_ms: typeof v.stop_date_ms === "number" ? v.stop_date_ms : null,
    };
  });
}

export function readInstance(bytes) {
  return reading(bytes, "instance", (v) => ({
    model_id: identifier(v, "model_id"),
    execution_arn: text(v, "execution_arn"),
    start_date_ms: count(v, "start_date_ms"),
    state_machine_arn: typeof v.state_machine_arn === "string" ? v.state_machine_arn : null,
    name: typeof v.name === "string" ? v.name : null,
    parent: parentOf(v),
  }));
}
