// The checks' names, titles and verdict rules, worded as `ape run verify` words them
// (src/tracker/verify/report.py): a reader comparing the page with the command sees the same lines.

export const CHECK_TLS = "protocol_tls";
export const CHECK_STATES = "states";
export const CHECK_MODEL = "model_instance";
export const CHECK_ENS = "ens";
export const CHECK_CERTIFICATE = "certificate";

export const CHECK_TITLES = {
  [CHECK_TLS]: "1. protocol fetched over TLS",
  [CHECK_STATES]: "2. states registered in order",
  [CHECK_MODEL]: "3. model, instance and ends",
  [CHECK_ENS]: "4. ENS name and url",
  [CHECK_CERTIFICATE]: "5. certificate fingerprint",
};

export const STATUS_FINAL = "final";
export const STATUS_ENDED = "ended";
export const STATUS_RUNNING = "running";
export const STATUS_MOVED = "moved";
export const STATUS_UNREGISTERED = "unregistered";

/** One of the five checks: ok true (passed), false (failed) or null (not checked), and why. */
export function checkResult(check, ok, reason) {
  return { check, ok, reason, title: CHECK_TITLES[check] ?? check };
}

/** An id as reports show it: its first ten hex characters. */
export function short(identifier) {
  return identifier ? `${identifier.slice(0, 10)}…` : "none";
}

/** "passed" only when every check, state and attempt passed; "failed" when any failed. */
export function verdictOf(items) {
  if (items.every((item) => item.ok === true)) return "passed";
  if (items.some((item) => item.ok === false)) return "failed";
  return "incomplete";
}

/** Python's str() of a JSON value, for messages that quote a bad value the way the verifier does. */
export function pyStr(value) {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(", ")}]`;
  return `{${Object.entries(value)
    .map(([k, v]) => `${pyRepr(k)}: ${pyRepr(v)}`)
    .join(", ")}}`;
}

/** Python's repr() of a string (or str() of anything else). */
export function pyRepr(value) {
  if (typeof value !== "string") return pyStr(value);
  const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
  let out = "";
  for (const ch of value) {
    const code = ch.codePointAt(0);
    if (ch === "\\") out += "\\\\";
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return quote + out + quote;
}

/** Python's `text[:n]` on code points. */
export function head(text, n) {
  return Array.from(text).slice(0, n).join("");
}
