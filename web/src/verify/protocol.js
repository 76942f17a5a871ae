// The instance protocol as `tracker.documents.protocol` reads it, the published prototype's
// format included (its entries lack seq, owner and the rest: those are null here). Errors carry
// the same text as the Python reader's DocumentError.
import { head, pyRepr, pyStr } from "./report.js";

const ID = /^[0-9a-f]{64}$/;
const ADDRESS = /^[0-9a-f]{40}$/;
const UINT64 = 2n ** 64n;

export class DocumentError extends Error {}

function normalizeId(value, what) {
  let text = String(value).trim().toLowerCase();
  if (text.startsWith("0x")) text = text.slice(2);
  if (!ID.test(text)) throw new DocumentError(`${what} must be 64 hex characters, got ${pyRepr(value)}`);
  return text;
}

function normalizeAddress(value) {
  let text = String(value).trim().toLowerCase();
  if (text.startsWith("0x")) text = text.slice(2);
  if (!ADDRESS.test(text)) throw new DocumentError(`address must be 40 hex characters, got ${pyRepr(value)}`);
  return text;
}

function integer(value, what) {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new DocumentError(`${what} must be an integer, got ${pyRepr(head(pyStr(value), 40))}`);
  }
  if (value < 0 || BigInt(value) >= UINT64) throw new DocumentError(`${what} is out of range: ${head(pyStr(value), 40)}`);
  return value;
}

function string(value, what) {
  if (typeof value !== "string") throw new DocumentError(`${what} must be a string, got ${pyRepr(head(pyStr(value), 40))}`);
  return value;
}

function boolean(value, what) {
  if (typeof value !== "boolean") throw new DocumentError(`${what} must be true or false, got ${pyRepr(head(pyStr(value), 40))}`);
  return value;
}

class Missing extends Error {
  constructor(key) {
    super(key);
    this.key = key;
  }
}

function field(data, key) {
  if (!Object.hasOwn(data, key)) throw new Missing(key);
  return data[key];
}

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
const optional = (data, key) => (Object.hasOwn(data, key) ? data[key] : null);

function entryFromJson(item) {
  if (!isObject(item)) throw new DocumentError("an instance_protocol entry must be a JSON object");
  const proof = optional(item, "merkle_proof");
  if (proof !== null && !Array.isArray(proof)) throw new DocumentError("merkle_proof must be a list");
  const seq = optional(item, "seq");
  const root = optional(item, "merkle_root");
  return {
    state_hash: normalizeId(string(field(item, "state_hash"), "state_hash"), "state_hash"),
    timestamp: integer(field(item, "timestamp"), "timestamp"),
    block_nr: integer(field(item, "block_nr"), "block_nr"),
    client_address: normalizeAddress(string(field(item, "client_address"), "client_address")),
    transaction_hash: normalizeId(string(field(item, "transaction_hash"), "transaction_hash"), "transaction_hash"),
    state_data: string(field(item, "state_data"), "state_data"),
    event_type: string(Object.hasOwn(item, "event_type") ? item.event_type : "Register State", "event_type"),
    seq: seq !== null ? integer(seq, "seq") : null,
    merkle_root: root ? normalizeId(string(root, "merkle_root"), "merkle_root") : null,
    merkle_proof: proof !== null ? proof.map((p) => normalizeId(string(p, "merkle_proof"), "merkle_proof")) : null,
  };
}

function attemptFromJson(item) {
  if (!isObject(item)) throw new DocumentError("an attempts entry must be a JSON object");
  return {
    attempt: integer(field(item, "attempt"), "attempt"),
    end_hash: normalizeId(string(field(item, "end_hash"), "end_hash"), "end_hash"),
    end_data: string(field(item, "end_data"), "end_data"),
    state_count: integer(field(item, "state_count"), "state_count"),
    accumulator_head: normalizeId(string(field(item, "accumulator_head"), "accumulator_head"), "accumulator_head"),
    block_nr: integer(field(item, "block_nr"), "block_nr"),
    transaction_hash: normalizeId(string(field(item, "transaction_hash"), "transaction_hash"), "transaction_hash"),
    timestamp: integer(field(item, "timestamp"), "timestamp"),
    final: boolean(Object.hasOwn(item, "final") ? item.final : false, "final"),
  };
}

/** The protocol in a parsed JSON value; throws DocumentError with the Python reader's message. */
export function protocolFromJson(data) {
  if (!isObject(data)) throw new DocumentError("instance protocol must be a JSON object");
  if (Object.hasOwn(data, "instance_protocol") && !Array.isArray(data.instance_protocol)) {
    throw new DocumentError("instance_protocol must be a list");
  }
  const [chainId, stateCount, mode, final] = ["chain_id", "state_count", "mode", "final"].map((k) => optional(data, k));
  const attempts = optional(data, "attempts") || [];
  if (!Array.isArray(attempts)) throw new DocumentError("attempts must be a list");
  let position = "the protocol";
  try {
    const listed = [];
    field(data, "instance_protocol").forEach((item, index) => {
      position = `instance_protocol[${index}]`;
      listed.push(entryFromJson(item));
    });
    const ended = [];
    attempts.forEach((item, index) => {
      position = `attempts[${index}]`;
      ended.push(attemptFromJson(item));
    });
    position = "the protocol";
    const text = {};
    for (const key of ["contract_address", "accumulator_head", "end_hash", "end_data", "execution_id", "owner"]) {
      text[key] = optional(data, key);
      if (text[key] !== null) string(text[key], key);
    }
    if (mode !== null && mode !== "direct" && mode !== "anchored") {
      throw new DocumentError(`mode must be "direct" or "anchored", got ${pyRepr(head(pyStr(mode), 40))}`);
    }
    return {
      model_hash: normalizeId(string(field(data, "model_hash"), "model_hash"), "model_hash"),
      instance_hash: normalizeId(string(field(data, "instance_hash"), "instance_hash"), "instance_hash"),
      model_data: string(field(data, "model_data"), "model_data"),
      instance_data: string(field(data, "instance_data"), "instance_data"),
      instance_protocol: listed,
      chain_id: chainId !== null ? integer(chainId, "chain_id") : null,
      contract_address: text.contract_address ? normalizeAddress(text.contract_address) : null,
      state_count: stateCount !== null ? integer(stateCount, "state_count") : null,
      accumulator_head: text.accumulator_head ? normalizeId(text.accumulator_head, "accumulator_head") : null,
      end_hash: text.end_hash ? normalizeId(text.end_hash, "end_hash") : null,
      end_data: text.end_data || null,
      execution_id: text.execution_id ? normalizeId(text.execution_id, "execution_id") : null,
      owner: text.owner ? normalizeAddress(text.owner) : null,
      mode,
      final: final !== null ? boolean(final, "final") : null,
      attempts: ended,
    };
  } catch (error) {
    if (error instanceof Missing) {
      const where = position === "the protocol" ? "" : ` in ${position}`;
      throw new DocumentError(`instance protocol lacks the field ${pyRepr(error.key)}${where}`);
    }
    if (error instanceof DocumentError) {
      const where = position === "the protocol" ? "" : `${position}: `;
      throw new DocumentError(`instance protocol: ${where}${error.message}`);
    }
    throw error;
  }
}

/** The owner the protocol names; for the prototype's format, the one address its entries name. */
export function ownerOf(protocol) {
  if (protocol.owner !== null) return protocol.owner;
  const clients = new Set(protocol.instance_protocol.map((entry) => entry.client_address));
  return clients.size === 1 ? [...clients][0] : null;
}
