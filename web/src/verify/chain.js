// What the chain says about one owner's instance of one execution, read once for all checks,
// as `tracker.verify.chain.read_chain` reads it: everything under the owner the protocol names
// (whom checks 4 and 5 authenticate), at the instance key of the execution id recomputed from
// the instance document, following transfers back to earlier owners. Four eth_getLogs, one
// `multicall` eth_call, and the transactions' senders and blocks' times in JSON-RPC batches
// (viem's http transport batches the requests made together).
import { decodeAbiParameters, decodeEventLog, decodeFunctionResult, encodeEventTopics, encodeFunctionData, pad } from "viem";
import { instanceKey } from "./hashes.js";

export const MAX_TRANSFERS = 64;
const STATUS = ["NONE", "OPEN", "FINAL", "MOVED"];
const MODE = ["direct", "anchored"];

const strip = (hex) => hex.slice(2).toLowerCase();
const address32 = (owner) => pad(`0x${owner}`, { size: 32 });

function topicOf(abi, name) {
  return encodeEventTopics({ abi, eventName: name })[0];
}

async function logs(client, abi, address, topics, fromBlock) {
  const found = await client.request({
    method: "eth_getLogs",
    params: [{ address, fromBlock: `0x${BigInt(fromBlock).toString(16)}`, toBlock: "latest", topics }],
  });
  return found.map((log) => {
    const decoded = decodeEventLog({ abi, data: log.data, topics: log.topics });
    return {
      name: decoded.eventName,
      args: decoded.args,
      block: Number(BigInt(log.blockNumber)),
      log_index: Number(BigInt(log.logIndex)),
      transaction: strip(log.transactionHash),
    };
  });
}

function lineage(owner, executionId, transfers) {
  const key = instanceKey(owner, executionId);
  const byTarget = new Map(transfers.map((t) => [t.to_key, t]));
  const movedTo = transfers.find((t) => t.from_key === key) ?? null;
  const holders = [{ owner, key, until: null }];
  let current = key;
  while (byTarget.has(current) && holders.length <= MAX_TRANSFERS) {
    const transfer = byTarget.get(current);
    if (holders.some((h) => h.key === transfer.from_key)) break;
    holders.unshift({ owner: transfer.from_owner, key: transfer.from_key, until: transfer });
    current = transfer.from_key;
  }
  return [holders, movedTo];
}

/** The view `states.js` and `ends.js` judge against (the same shape as the shared fixtures' `chain`). */
export async function readChain(client, abi, address, owner, executionId, modelId, roots, since = 0) {
  const byExecution = await logs(
    client,
    abi,
    address,
    [[topicOf(abi, "InstanceRegistered"), topicOf(abi, "InstanceTransferred")], null, null, `0x${executionId}`],
    since,
  );
  const transfers = byExecution
    .filter((e) => e.name === "InstanceTransferred")
    .map((e) => ({
      from_key: strip(e.args.fromKey),
      to_key: strip(e.args.toKey),
      from_owner: strip(e.args.from),
      to_owner: strip(e.args.to),
      block: e.block,
      log_index: e.log_index,
      transaction: e.transaction,
    }));
  const [holders, movedTo] = lineage(owner, executionId, transfers);
  const keys = holders.map((h) => h.key);
  const registrations = byExecution
    .filter((e) => e.name === "InstanceRegistered")
    .map((e) => ({
      key: strip(e.args.key),
      owner: strip(e.args.owner),
      model: strip(e.args.model),
      instance_document: strip(e.args.instanceDocument),
      mode: MODE[Number(e.args.mode)],
      block: e.block,
      log_index: e.log_index,
      transaction: e.transaction,
    }));
  const registration = registrations.find((r) => r.key === keys[0]) ?? null;
  const owners = [...new Set(holders.map((h) => h.owner))].sort();
  const otherOwners = [...new Set(registrations.map((r) => r.owner))].filter((o) => !owners.includes(o)).sort();
  const registeredFrom = registration !== null ? registration.block : since;

  const kinds = ["StateRegistered", "AttemptEnded", "InstanceTerminated"].map((name) => topicOf(abi, name));
  const wantedRoots = [...new Set(roots)].sort();
  const [keyed, operatorEvents, anchorEvents] = await Promise.all([
    logs(client, abi, address, [kinds, keys.map((k) => `0x${k}`)], registeredFrom),
    logs(client, abi, address, [topicOf(abi, "OperatorSet"), owners.map(address32)], since),
    wantedRoots.length
      ? logs(client, abi, address, [topicOf(abi, "StatesAnchored"), null, wantedRoots.map((r) => `0x${r}`)], since)
      : [],
  ]);
  const states = [];
  const ends = [];
  for (const e of keyed) {
    if (e.name === "StateRegistered") {
      states.push({ key: strip(e.args.key), state_id: strip(e.args.state), seq: Number(e.args.seq), block: e.block, log_index: e.log_index, transaction: e.transaction });
    } else {
      ends.push({
        key: strip(e.args.key),
        end_id: strip(e.args.endDocument),
        attempt: Number(e.args.attempt),
        state_count: Number(e.args.stateCount),
        head: strip(e.args.head),
        final: e.name === "InstanceTerminated",
        block: e.block,
        log_index: e.log_index,
        transaction: e.transaction,
      });
    }
  }
  const operators = operatorEvents.map((e) => ({
    owner: strip(e.args.owner),
    operator: strip(e.args.operator),
    approved: Boolean(e.args.approved),
    block: e.block,
    log_index: e.log_index,
  }));
  const anchorings = {};
  for (const e of anchorEvents) {
    const anchoring = { submitter: strip(e.args.submitter), root: strip(e.args.root), leaf_count: Number(e.args.leafCount), block: e.block, log_index: e.log_index, transaction: e.transaction };
    (anchorings[anchoring.root] ??= []).push(anchoring);
  }

  // One multicall: the instance, the model under each owner, each anchor, the owner's certificate and client id.
  const pairs = [...new Set(Object.values(anchorings).flat().map((a) => `${a.submitter}:${a.root}`))].sort().map((p) => p.split(":"));
  const call = (functionName, args) => encodeFunctionData({ abi, functionName, args });
  const calls = [
    call("instanceOf", [`0x${owner}`, `0x${executionId}`]),
    ...holders.map((h) => call("modelOf", [`0x${h.owner}`, `0x${modelId}`])),
    ...pairs.map(([s, r]) => call("anchorOf", [`0x${s}`, `0x${r}`])),
    call("certificateOf", [`0x${owner}`]),
    call("clientIdOf", [`0x${owner}`]),
  ];
  const answer = await client.request({ method: "eth_call", params: [{ to: address, data: call("multicall", [calls]) }, "latest"] });
  const results = decodeFunctionResult({ abi, functionName: "multicall", data: answer });
  const [count, attempts, status, mode, headValue] = decodeAbiParameters(
    [{ type: "uint64" }, { type: "uint32" }, { type: "uint8" }, { type: "uint8" }, { type: "bytes32" }],
    results[0],
  );
  const instance =
    status === 0
      ? null
      : { state_count: Number(count), attempts: Number(attempts), status: STATUS[status], mode: MODE[mode], head: mode === 0 ? strip(headValue) : null };
  const modelRegisteredAt = {};
  holders.forEach((h, i) => {
    const [at] = decodeAbiParameters([{ type: "uint64" }], results[1 + i]);
    modelRegisteredAt[h.owner] = Number(at) || null;
  });
  const anchorRecords = pairs.map(([submitter, root], i) => {
    const [at, leaves] = decodeAbiParameters([{ type: "uint64" }, { type: "uint32" }], results[1 + holders.length + i]);
    return { submitter, root, anchored_at: Number(at), leaf_count: Number(leaves) };
  });
  const [fingerprint, signature, certificateAt] = decodeAbiParameters(
    [{ type: "bytes32" }, { type: "bytes" }, { type: "uint64" }],
    results.at(-2),
  );
  const [clientId] = decodeAbiParameters([{ type: "string" }], results.at(-1));

  const transactions = [...new Set([...states.map((s) => s.transaction), ...Object.values(anchorings).flat().map((a) => a.transaction)])];
  const blocks = [...new Set([...states, ...ends, ...Object.values(anchorings).flat()].map((x) => x.block))];
  const [senderList, timeList, chainIdHex] = await Promise.all([
    Promise.all(transactions.map((tx) => client.request({ method: "eth_getTransactionByHash", params: [`0x${tx}`] }))),
    Promise.all(blocks.map((n) => client.request({ method: "eth_getBlockByNumber", params: [`0x${n.toString(16)}`, false] }))),
    client.request({ method: "eth_chainId" }),
  ]);
  const senders = {};
  transactions.forEach((tx, i) => {
    if (senderList[i]) senders[tx] = strip(senderList[i].from);
  });
  const blockTimes = {};
  blocks.forEach((n, i) => {
    if (timeList[i]) blockTimes[n] = Number(BigInt(timeList[i].timestamp));
  });
  return {
    chain_id: Number(BigInt(chainIdHex)),
    contract_address: strip(address),
    owner,
    execution_id: executionId,
    key: keys.at(-1),
    instance,
    holders,
    moved_to: movedTo,
    registration,
    other_owners: otherOwners,
    model_registered_at: modelRegisteredAt,
    states,
    ends,
    anchorings,
    anchor_records: anchorRecords,
    operators,
    senders,
    block_times: blockTimes,
    certificate: Number(certificateAt) ? { fingerprint: strip(fingerprint), signature, registered_at: Number(certificateAt) } : null,
    client_id: clientId,
  };
}
