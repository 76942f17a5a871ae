// Checks 1, 4 and 5 in the browser. Check 1 is the fetch itself (the browser refuses a protocol
// whose TLS it does not trust). Check 4 resolves as `tracker.verify.ens_resolution` does: the
// chain's UniversalResolver `resolve(name, data)` for the reverse name, the address and the
// `url` text, with EIP-3668 (CCIP-Read) followed by viem. Check 5 needs the certificate the
// server presented, which no web page can see: the page reads and checks what is on chain (the
// registered fingerprint and its signature) and says so, never calling the check passed.
import { decodeAbiParameters, decodeErrorResult, encodeFunctionData, parseAbi, recoverMessageAddress } from "viem";
import { namehash, normalize } from "viem/ens";
import { CHECK_CERTIFICATE, CHECK_ENS, CHECK_TLS, checkResult, short } from "./report.js";

export const BROWSER_CANNOT = "checked by your browser's TLS, fingerprint not comparable here: run `ape run verify` for check 5";
export const UNIVERSAL_RESOLVER = "0xeEeEEEeE14D718C2B47D9923Deab1335E144EeEe";

const universal = parseAbi([
  "function resolve(bytes name, bytes data) view returns (bytes, address)",
  "function findResolver(bytes name) view returns (address, bytes32, uint256)",
  "error ResolverNotFound(bytes name)",
  "error ResolverNotContract(bytes name, address resolver)",
  "error UnsupportedResolverProfile(bytes4 selector)",
  "error ResolverError(bytes errorData)",
  "error HttpError(uint16 status, string message)",
]);
const profiles = parseAbi([
  "function addr(bytes32 node) view returns (address)",
  "function text(bytes32 node, string key) view returns (string)",
  "function name(bytes32 node) view returns (string)",
]);

/** scheme://host:port, lowercased, the default port made explicit (`checks._origin`). */
export function originOf(text) {
  try {
    const url = new URL(text.trim());
    const scheme = url.protocol.slice(0, -1);
    const port = url.port || { https: "443", http: "80" }[scheme] || "0";
    return `${scheme}://${url.hostname}:${port}`;
  } catch {
    return "://:0";
  }
}

/** Whether a `url` record is the protocol's origin, or a base path the protocol lies under. */
export function originMatches(record, protocolUrl) {
  if (originOf(record) !== originOf(protocolUrl)) return false;
  const base = new URL(record.trim()).pathname.replace(/\/+$/, "");
  return new URL(protocolUrl).pathname.startsWith(`${base}/`);
}

function dnsEncode(name) {
  const parts = [];
  for (const label of name.split(".")) {
    const bytes = new TextEncoder().encode(label);
    parts.push(bytes.length, ...bytes);
  }
  parts.push(0);
  return `0x${parts.map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function dnsSuffix(encoded, offset) {
  const bytes = Uint8Array.from(encoded.slice(2).match(/../g), (b) => Number.parseInt(b, 16));
  const labels = [];
  while (offset < bytes.length && bytes[offset]) {
    labels.push(new TextDecoder().decode(bytes.slice(offset + 1, offset + 1 + bytes[offset])));
    offset += 1 + bytes[offset];
  }
  return labels.join(".");
}

class Resolution extends Error {}

function revertData(error) {
  let cause = error;
  while (cause) {
    if (typeof cause.data === "string" && cause.data.startsWith("0x")) return cause.data;
    if (typeof cause.data?.data === "string") return cause.data.data;
    cause = cause.cause;
  }
  return null;
}

/** UniversalResolver.resolve(name, calldata); null for "no such record", {value, how} otherwise. */
async function resolve(client, resolverAddress, name, calldata, gateways) {
  const dnsName = dnsEncode(name);
  const [resolver, , offset] = await client.readContract({ address: resolverAddress, abi: universal, functionName: "findResolver", args: [dnsName] });
  let route = "onchain";
  let via = "";
  if (offset) {
    route = "wildcard";
    via = `(resolver of ${dnsSuffix(dnsName, Number(offset))})`;
  }
  const before = gateways.length;
  let data;
  try {
    const answer = await client.call({ to: resolverAddress, data: encodeFunctionData({ abi: universal, functionName: "resolve", args: [dnsName, calldata] }) });
    data = answer.data;
  } catch (error) {
    const raw = revertData(error);
    if (raw === null) throw new Resolution(`resolving ${name} failed: ${error.shortMessage ?? error.message}`);
    let decoded;
    try {
      decoded = decodeErrorResult({ abi: universal, data: raw });
    } catch {
      throw new Resolution(`resolving ${name} failed: error ${raw.slice(0, 10)} (${(raw.length - 2) / 2} bytes)`);
    }
    if (decoded.errorName === "ResolverNotFound" || decoded.errorName === "UnsupportedResolverProfile") return null;
    if (decoded.errorName === "ResolverNotContract") throw new Resolution(`the resolver of ${name} (${resolver}) is not a contract`);
    throw new Resolution(`the resolver of ${name} (${resolver}) reverted: ${decoded.errorName}`);
  }
  const [result] = decodeAbiParameters([{ type: "bytes" }, { type: "address" }], data);
  if (gateways.length > before) {
    route = "offchain gateway";
    via = [...new Set(gateways.slice(before))].sort().join(", ");
  }
  return { value: result, how: `${route} ${via}`.trim() };
}

/** Check 4: the owner's reverse name resolves back to it, and its `url` record is the origin. */
export async function ensCheck(client, owner, protocolUrl, resolverAddress = UNIVERSAL_RESOLVER, gateways = []) {
  if (owner === null) return checkResult(CHECK_ENS, null, "not checked: the owner is unknown (the protocol names none)");
  const address = `0x${owner}`;
  try {
    const code = await client.getCode({ address: resolverAddress });
    if (!code || code === "0x") return checkResult(CHECK_ENS, null, `not checked: no UniversalResolver at ${resolverAddress} on this network`);
    const reverseName = `${owner}.addr.reverse`;
    const reverse = await resolve(client, resolverAddress, reverseName, encodeFunctionData({ abi: profiles, functionName: "name", args: [namehash(reverseName)] }), gateways);
    const name = reverse && reverse.value !== "0x" ? decodeAbiParameters([{ type: "string" }], reverse.value)[0] : "";
    if (!name) return checkResult(CHECK_ENS, false, `${address} has no ENS reverse record`);
    let normalised;
    try {
      normalised = normalize(name);
    } catch {
      normalised = null;
    }
    if (normalised !== name) return checkResult(CHECK_ENS, false, `the reverse record of ${address} is '${name}', not a normalised name`);
    const node = namehash(name);
    const forward = await resolve(client, resolverAddress, name, encodeFunctionData({ abi: profiles, functionName: "addr", args: [node] }), gateways);
    const resolved = forward && forward.value.length >= 66 ? decodeAbiParameters([{ type: "address" }], forward.value)[0] : null;
    const zero = resolved === null || /^0x0{40}$/.test(resolved);
    if (zero || resolved.slice(2).toLowerCase() !== owner) {
      const shown = zero ? "resolves to no address" : `resolves to ${resolved}`;
      return checkResult(CHECK_ENS, false, `forward and reverse disagree: the reverse record of ${address} names ${name}, but ${name} ${shown}`);
    }
    const textAnswer = await resolve(client, resolverAddress, name, encodeFunctionData({ abi: profiles, functionName: "text", args: [node, "url"] }), gateways);
    const record = textAnswer && textAnswer.value !== "0x" ? decodeAbiParameters([{ type: "string" }], textAnswer.value)[0] : "";
    if (!record) return checkResult(CHECK_ENS, false, `${name} has no url text record`);
    if (!originMatches(record, protocolUrl)) {
      return checkResult(CHECK_ENS, false, `${name} url record is ${record}, not the protocol's origin ${originOf(protocolUrl)}`);
    }
    const how = forward.how === textAnswer.how ? forward.how : `${forward.how}, url ${textAnswer.how}`;
    return { ...checkResult(CHECK_ENS, true, `${address} <-> ${name} (name ${how}; reverse ${reverse.how}), url ${record}`), name, url: record };
  } catch (error) {
    return checkResult(CHECK_ENS, false, error instanceof Resolution ? error.message : `resolving ENS failed: ${error.shortMessage ?? error.message}`);
  }
}

/** A name's `url` text record (null when unset), to find a protocol from an instance id and a name. */
export async function urlRecordOf(client, name, resolverAddress = UNIVERSAL_RESOLVER) {
  const normalised = normalize(name);
  const data = encodeFunctionData({ abi: profiles, functionName: "text", args: [namehash(normalised), "url"] });
  const answer = await resolve(client, resolverAddress, normalised, data, []);
  const record = answer && answer.value !== "0x" ? decodeAbiParameters([{ type: "string" }], answer.value)[0] : "";
  return record || null;
}

/** Check 5 as far as a browser can make it: the registered fingerprint and its signature. */
export async function certificateCheck(view, owner, notRead) {
  if (view === null) return checkResult(CHECK_CERTIFICATE, null, `not checked: ${notRead}; ${BROWSER_CANNOT}`);
  const record = view.certificate;
  if (record === null) return checkResult(CHECK_CERTIFICATE, false, `0x${owner} has registered no certificate fingerprint`);
  let signer;
  try {
    signer = await recoverMessageAddress({ message: { raw: `0x${record.fingerprint}` }, signature: record.signature });
  } catch (error) {
    return checkResult(CHECK_CERTIFICATE, false, `registered signature: the fingerprint signature does not recover: ${error.shortMessage ?? error.message}`);
  }
  if (signer.slice(2).toLowerCase() !== owner) return checkResult(CHECK_CERTIFICATE, false, `registered signature recovers to ${signer}, not to 0x${owner}`);
  return checkResult(CHECK_CERTIFICATE, null, `sha256 ${short(record.fingerprint)} registered and signed by 0x${owner}; ${BROWSER_CANNOT}`);
}

/** Check 1 from what the browser's fetch gave. */
export function tlsCheck(url, ok, detail) {
  return checkResult(CHECK_TLS, ok, detail);
}
