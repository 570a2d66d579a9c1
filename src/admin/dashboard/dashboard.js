// The live dashboard: polls /balance once a second and draws each cluster.
// No framework and no build step. Every value from the proxy (addresses,
// reasons, messages) goes into the page as text, never as markup.
'use strict';

const POLL_MS = 1000;
const TIMEOUT_MS = 2500;
const clustersEl = document.getElementById('clusters');
const noClustersEl = document.getElementById('no-clusters');
const changesEl = document.getElementById('changes');
const noChangesEl = document.getElementById('no-changes');
const connectionEl = document.getElementById('connection');
/** Cluster name → its card, so bars are updated in place (and their widths animate). */
const cards = new Map();

/** An element; string children become text nodes. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined) node.setAttribute(name, String(value));
  }
  node.append(...children);
  return node;
}

const fixed = (value, digits = 1) => (typeof value === 'number' ? value.toFixed(digits) : '–');
const ms = (value) => (typeof value === 'number' ? `${fixed(value, value < 10 ? 2 : 1)} ms` : '–');
const percent = (share) => `${(share * 100).toFixed(1)}%`;
const clock = (time) => new Date(time).toLocaleTimeString([], { hour12: false });

/** What the badge says: the state that matters most to an operator first. */
function endpointState(endpoint) {
  if (endpoint.ejected) return { state: 'ejected', label: 'ejected', detail: endpoint.ejectionReason };
  if (endpoint.health === 'unhealthy') return { state: 'unhealthy', label: 'unhealthy', detail: endpoint.healthCheckFailure };
  if (endpoint.inConnectBackoff) return { state: 'backoff', label: 'connect backoff' };
  if (endpoint.health === 'healthy') return { state: 'healthy', label: 'healthy' };
  if (endpoint.health === 'unknown') return { state: 'unknown', label: 'health unknown' };
  return endpoint.available ? { state: 'up', label: 'up' } : { state: 'down', label: 'unavailable' };
}

function clusterCard(name) {
  const stat = (key, label) => {
    const value = el('dd', { 'data-stat': key }, '–');
    return { value, item: el('div', {}, el('dt', {}, label), value) };
  };
  const rps = stat('rps', 'RPC/s');
  const p50 = stat('p50', 'p50');
  const p99 = stat('p99', 'p99');
  const card = {
    rows: new Map(),
    policy: el('span', { class: 'policy' }),
    rps: rps.value,
    p50: p50.value,
    p99: p99.value,
    mix: el('div', { class: 'mix', 'aria-hidden': 'true' }),
    codes: el('ul', { class: 'codes', 'aria-label': `Status codes of ${name}` }),
    list: el('ul', { class: 'endpoints', 'aria-label': `Endpoints of ${name}` }),
    none: el('p', { class: 'empty' }, 'No endpoints.'),
  };
  card.root = el('article', { class: 'cluster', 'data-cluster': name, 'aria-label': `Cluster ${name}` },
    el('header', {}, el('h2', {}, name), card.policy),
    el('dl', { class: 'stats' }, rps.item, p50.item, p99.item),
    el('h3', {}, 'Status codes'), card.mix, card.codes,
    el('h3', {}, 'Share of RPCs per endpoint'), card.none, card.list);
  return card;
}

function endpointRow(address) {
  const row = {
    badge: el('span', { class: 'badge' }),
    detail: el('span', { class: 'detail' }),
    numbers: el('span', { class: 'numbers' }),
    fill: el('div', { class: 'fill' }),
  };
  row.root = el('li', { class: 'endpoint', 'data-endpoint': address },
    el('div', { class: 'endpoint-head' }, el('code', { class: 'address' }, address), row.badge, row.detail, row.numbers),
    el('div', { class: 'bar', 'aria-hidden': 'true' }, row.fill));
  return row;
}

function updateEndpoint(row, endpoint, windowSeconds) {
  const { state, label, detail } = endpointState(endpoint);
  const share = Math.max(0, Math.min(1, endpoint.share || 0));
  row.root.dataset.state = state;
  row.root.dataset.share = String(share);
  row.badge.dataset.state = state;
  row.badge.textContent = label;
  const extras = [detail, endpoint.ejections > 0 ? `${endpoint.ejections} ejection${endpoint.ejections === 1 ? '' : 's'} so far` : undefined,
    endpoint.weight !== endpoint.configuredWeight ? `weight ${fixed(endpoint.weight, 2)} of ${endpoint.configuredWeight}` : undefined];
  row.detail.textContent = extras.filter(Boolean).join(' · ');
  row.numbers.textContent = `${percent(share)} · ${endpoint.recentRpcs} RPCs in ${windowSeconds} s · ${endpoint.activeRpcs} active · EWMA ${ms(endpoint.latencyEwmaMs)}`;
  row.fill.style.width = `${share * 100}%`;
}

function updateCodes(card, statusCodes) {
  const entries = Object.entries(statusCodes).sort(([a, x], [b, y]) => (a === 'OK' ? -1 : b === 'OK' ? 1 : y - x));
  const total = entries.reduce((sum, [, count]) => sum + count, 0);
  card.codes.replaceChildren(...(total === 0
    ? [el('li', { class: 'code none' }, 'no RPCs in the window')]
    : entries.map(([code, count]) => el('li', { class: code === 'OK' ? 'code ok' : 'code bad', 'data-code': code, 'data-count': count },
      `${code === 'OK' ? '' : '⚠ '}${code} ${count} (${percent(count / total)})`))));
  card.mix.replaceChildren(...entries.map(([code, count]) => {
    const part = el('span', { class: code === 'OK' ? 'ok' : 'bad' });
    part.style.width = `${(count / total) * 100}%`;
    return part;
  }));
}

function updateCluster(card, cluster, windowSeconds) {
  card.policy.textContent = cluster.policy;
  card.root.dataset.rps = String(cluster.rps);
  card.rps.textContent = fixed(cluster.rps);
  card.p50.textContent = ms(cluster.p50Ms);
  card.p99.textContent = ms(cluster.p99Ms);
  updateCodes(card, cluster.statusCodes);
  const addresses = new Set(cluster.endpoints.map((endpoint) => endpoint.address));
  for (const [address, row] of card.rows) {
    if (!addresses.has(address)) { row.root.remove(); card.rows.delete(address); }
  }
  cluster.endpoints.forEach((endpoint, index) => {
    let row = card.rows.get(endpoint.address);
    if (!row) card.rows.set(endpoint.address, (row = endpointRow(endpoint.address)));
    if (card.list.children[index] !== row.root) card.list.insertBefore(row.root, card.list.children[index] ?? null);
    updateEndpoint(row, endpoint, windowSeconds);
  });
  card.none.hidden = cluster.endpoints.length > 0;
}

function renderChanges(changes) {
  noChangesEl.hidden = changes.length > 0;
  changesEl.replaceChildren(...changes.map((change) => el('li', { 'data-kind': change.kind, 'data-endpoint': change.endpoint },
    el('time', { datetime: new Date(change.time).toISOString() }, clock(change.time)), ' ',
    el('span', { class: 'kind', 'data-kind': change.kind }, change.kind.replace('_', ' ')), ' ',
    ...(change.cluster ? [el('span', { class: 'where' }, change.cluster), ' '] : []),
    el('span', { class: 'message' }, change.message))));
}

function render(balance) {
  const names = new Set(balance.clusters.map((cluster) => cluster.name));
  for (const [name, card] of cards) {
    if (!names.has(name)) { card.root.remove(); cards.delete(name); }
  }
  for (const cluster of balance.clusters) {
    let card = cards.get(cluster.name);
    if (!card) {
      cards.set(cluster.name, (card = clusterCard(cluster.name)));
      clustersEl.append(card.root);
    }
    updateCluster(card, cluster, balance.windowSeconds);
  }
  noClustersEl.hidden = balance.clusters.length > 0;
  renderChanges(balance.changes);
}

function setConnection(state, message) {
  connectionEl.dataset.connection = state;
  document.body.dataset.connection = state;
  connectionEl.textContent = message;
}

async function poll() {
  try {
    const response = await fetch('/balance', { cache: 'no-store', signal: AbortSignal.timeout(TIMEOUT_MS) });
    if (!response.ok) throw new Error(`the admin API answered ${response.status}`);
    const balance = await response.json();
    render(balance);
    setConnection('connected', `Live: updated ${clock(balance.time)}, counting the last ${balance.windowSeconds} s`);
  } catch (error) {
    setConnection('disconnected', `Disconnected (${error.message}); retrying every ${POLL_MS / 1000} s. Figures below are stale.`);
  }
  setTimeout(poll, POLL_MS);
}

poll();
