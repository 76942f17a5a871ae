// Where an execution sits in a tree of executions: the parent its instance document names (a
// Distributed Map's child, a startExecution task's child), and for each state visit that started
// executions, the children document its state document names, downloaded, hashed and read. Each
// link is a protocol URL beside this one (`<instance id>.json`), as the tracker publishes them and
// `ape run verify` walks them; the page opens it as a verification of its own. A link is shown
// only from a document that hashed to its id; a children document that does not, or that names
// another instance or visit, is shown as such, with no links.

const LINK_LIMIT = 200; // children shown per visit; a Map Run may have thousands
const CONCURRENCY = 8;

/** The protocol URL of instance `id`, beside the protocol at `protocolUrl`. */
export const protocolOf = (id, protocolUrl) => new URL(`${id}.json`, protocolUrl).href;

/**
 * `documents`: {instance, states} as judgeDocuments returns them (downloads with their content);
 * `fetchChildren(url)`: downloads a children document (fetchDocument with kind "children").
 * Returns {parent, visits}: parent {instance_id, url, execution_arn, event_id, state_name,
 * map_run_arn} or null; visits [{position, state_name, event_id, ok, reason, map_run_arn,
 * count, children: [{instance_id, url}]}].
 */
export async function followLinks(protocolUrl, protocol, documents, fetchChildren) {
  const instance = documents.instance;
  const named = instance?.ok && instance.sha256 === protocol.instance_hash && instance.content?.kind === "instance" ? instance.content.parent : null;
  const parent = named ? { ...named, url: protocolOf(named.instance_id, protocolUrl) } : null;
  const entries = protocol.instance_protocol;
  const visits = [];
  for (const [position, state] of (documents.states ?? []).entries()) {
    const links = state?.ok && state.sha256 === entries[position].state_hash && state.content?.kind === "state" ? state.content.links : null;
    if (links) visits.push({ position, state_name: links.state_name, event_id: links.event_id, children_id: links.children, ok: false, reason: "", map_run_arn: null, count: 0, children: [] });
  }
  // Children documents download a few at a time (an inline Map of startExecution tasks has a visit per item).
  let next = 0;
  const worker = async () => {
    while (next < visits.length) {
      const visit = visits[next++];
      const listingUrl = new URL(`${visit.children_id}.json`, new URL(entries[visit.position].state_data, protocolUrl)).href;
      judgeListing(visit, await fetchChildren(listingUrl), protocol, protocolUrl);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, visits.length) }, worker));
  for (const visit of visits) delete visit.children_id;
  return { parent, visits };
}

function judgeListing(visit, listing, protocol, protocolUrl) {
  if (!listing.ok || listing.sha256 !== visit.children_id) {
    visit.reason = `children document ${visit.children_id.slice(0, 12)}… is missing or does not hash to its id`;
    return;
  }
  const content = listing.content;
  if (content?.kind !== "children") {
    visit.reason = content?.malformed ?? "children document unreadable";
    return;
  }
  if (content.instance_id !== protocol.instance_hash || content.event_id !== visit.event_id || content.state_name !== visit.state_name) {
    visit.reason = "the children document names another instance or visit";
    return;
  }
  visit.ok = true;
  visit.map_run_arn = content.map_run_arn;
  visit.count = content.instances.length;
  visit.children = content.instances.slice(0, LINK_LIMIT).map((id) => ({ instance_id: id, url: protocolOf(id, protocolUrl) }));
  visit.reason = `started ${visit.count} execution${visit.count === 1 ? "" : "s"}` + (visit.count > LINK_LIMIT ? `, the first ${LINK_LIMIT} shown` : "");
}
