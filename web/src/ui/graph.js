// The state machine drawn from its ASL definition: the top-level states in layers from StartAt
// (breadth first), an arrow for each transition (Next, Default, Choices, Catch), the inner states
// of Map and Parallel listed in their node. States the instance entered and the transitions it
// took are highlighted. Plain SVG, no layout library.
const NS = "http://www.w3.org/2000/svg";

export function transitionsOf(state) {
  const targets = [];
  if (state.Next) targets.push([state.Next, ""]);
  if (state.Default) targets.push([state.Default, "default"]);
  for (const choice of state.Choices ?? []) if (choice.Next) targets.push([choice.Next, "choice"]);
  for (const handler of state.Catch ?? []) if (handler.Next) targets.push([handler.Next, "catch"]);
  return targets;
}

function innerStates(state) {
  const machines = [...(state.Branches ?? []), state.ItemProcessor, state.Iterator].filter(Boolean);
  return machines.flatMap((machine) => Object.keys(machine.States ?? {}));
}

/** Layers of state names from StartAt, then any unreachable states in a last layer. */
export function layers(definition) {
  const states = definition.States ?? {};
  const layerOf = new Map();
  const queue = [];
  if (definition.StartAt in states) {
    layerOf.set(definition.StartAt, 0);
    queue.push(definition.StartAt);
  }
  while (queue.length) {
    const name = queue.shift();
    for (const [target] of transitionsOf(states[name])) {
      if (target in states && !layerOf.has(target)) {
        layerOf.set(target, layerOf.get(name) + 1);
        queue.push(target);
      }
    }
  }
  const deepest = Math.max(-1, ...layerOf.values());
  for (const name of Object.keys(states)) if (!layerOf.has(name)) layerOf.set(name, deepest + 1);
  const rows = [];
  for (const [name, layer] of layerOf) (rows[layer] ??= []).push(name);
  return rows.filter(Boolean);
}

const element = (name, attributes = {}, text = null) => {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
};

/** An SVG of the definition; `visited`: state names entered, `path`: "from->to" pairs taken. */
export function drawGraph(definition, visited = new Set(), path = new Set()) {
  const states = definition.States ?? {};
  const rows = layers(definition);
  const width = 180;
  const gap = 24;
  const rowGap = 56;
  const heightOf = (name) => 40 + 14 * Math.min(innerStates(states[name]).length, 4);
  const widest = Math.max(1, ...rows.map((row) => row.length));
  const total = widest * width + (widest + 1) * gap;
  const place = new Map();
  let y = 16;
  for (const row of rows) {
    const rowWidth = row.length * width + (row.length - 1) * gap;
    const tallest = Math.max(...row.map(heightOf));
    row.forEach((name, i) => place.set(name, { x: (total - rowWidth) / 2 + i * (width + gap), y, h: heightOf(name) }));
    y += tallest + rowGap;
  }
  const svg = element("svg", { viewBox: `0 0 ${total} ${y}`, width: total, height: y, role: "img", "aria-label": "state machine graph", class: "graph" });
  const defs = element("defs");
  for (const [id, cls] of [["arrow", "edge"], ["arrow-taken", "edge taken"]]) {
    const marker = element("marker", { id, viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
    marker.append(element("path", { d: "M0,0 L10,5 L0,10 z", class: cls }));
    defs.append(marker);
  }
  svg.append(defs);
  for (const [name, state] of Object.entries(states)) {
    const from = place.get(name);
    for (const [target, kind] of transitionsOf(state)) {
      const to = place.get(target);
      if (!to) continue;
      const taken = path.has(`${name}->${target}`);
      const x1 = from.x + width / 2;
      const y1 = from.y + from.h;
      const x2 = to.x + width / 2;
      const y2 = to.y;
      const d = y2 > y1 ? `M${x1},${y1} C${x1},${y1 + 30} ${x2},${y2 - 30} ${x2},${y2}` : `M${from.x + width},${from.y + from.h / 2} C${total},${from.y} ${total},${to.y} ${to.x + width},${to.y + to.h / 2}`;
      const edge = element("path", { d, class: `edge${taken ? " taken" : ""}${kind ? ` ${kind}` : ""}`, "marker-end": `url(#arrow${taken ? "-taken" : ""})` });
      edge.append(element("title", {}, `${name} → ${target}${kind ? ` (${kind})` : ""}`));
      svg.append(edge);
    }
  }
  for (const [name, state] of Object.entries(states)) {
    const at = place.get(name);
    const group = element("g", { class: `node${visited.has(name) ? " visited" : ""}`, "data-state": name });
    group.append(element("rect", { x: at.x, y: at.y, width, height: at.h, rx: 8 }));
    group.append(element("text", { x: at.x + 10, y: at.y + 17, class: "name" }, name.length > 22 ? `${name.slice(0, 21)}…` : name));
    group.append(element("text", { x: at.x + 10, y: at.y + 32, class: "type" }, state.Type + (state.End ? " · end" : "")));
    innerStates(state).slice(0, 4).forEach((inner, i) => group.append(element("text", { x: at.x + 18, y: at.y + 47 + 14 * i, class: `inner${visited.has(inner) ? " visited" : ""}` }, `▸ ${inner}`)));
    group.append(element("title", {}, `${name} (${state.Type})${visited.has(name) ? ": entered" : ""}`));
    svg.append(group);
  }
  return svg;
}
