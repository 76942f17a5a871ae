// The identifiers the checks recompute: SHA-256 through WebCrypto, keccak256 and ABI encoding
// through viem; each the same function as its Python counterpart (named beside it).
import { encodeAbiParameters, keccak256 } from "viem";
import { canonicalJson } from "./content.js";

const encoder = new TextEncoder();

export const hexOf = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
export const bytesOf = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
const b32 = (id) => `0x${id}`;

/** tracker.documents.ids.sha256_hex */
export async function sha256Hex(bytes) {
  return hexOf(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/** tracker.documents.facts.execution_id */
export function executionId(executionArn, startDateMs) {
  const identity = { execution_arn: executionArn, kind: "execution", start_date_ms: startDateMs };
  return sha256Hex(encoder.encode(canonicalJson(identity)));
}

const keccakHex = (hex) => keccak256(hex).slice(2);

/** tracker.documents.facts.start_head */
export function startHead(execution, modelId, instanceId) {
  return keccakHex(`0x${execution}${modelId}${instanceId}`);
}

/** The heads after each listed state, from the start head on (`Trace.heads`). */
export function chainHeads(execution, modelId, instanceId, stateIds) {
  let headHex = startHead(execution, modelId, instanceId);
  const heads = [headHex];
  for (const id of stateIds) {
    headHex = keccakHex(`0x${headHex}${id}`);
    heads.push(headHex);
  }
  return heads;
}

/** tracker.chain.contract.instance_key: keccak256(abi.encode(owner, execution)) */
export function instanceKey(owner, execution) {
  return keccakHex(encodeAbiParameters([{ type: "address" }, { type: "bytes32" }], [`0x${owner}`, b32(execution)]));
}

/** tracker.chain.merkle.state_leaf */
export function stateLeaf(execution, stateId, seq) {
  const inner = keccak256(
    encodeAbiParameters(
      [{ type: "bytes32" }, { type: "bytes32" }, { type: "uint256" }],
      [b32(execution), b32(stateId), BigInt(seq)],
    ),
  );
  return keccakHex(inner);
}

/** tracker.chain.merkle.verify_proof: sorted pairs, as OpenZeppelin's MerkleProof. */
export function verifyProof(leaf, proof, root) {
  let node = leaf;
  for (const sibling of proof) node = node < sibling ? keccakHex(`0x${node}${sibling}`) : keccakHex(`0x${sibling}${node}`);
  return node === root;
}
