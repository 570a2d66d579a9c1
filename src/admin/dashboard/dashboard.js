// The live dashboard: polls /balance once a second and draws each cluster, with its last
// 15 minutes as small SVG charts.
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
  const connections = stat('connections', 'WebSocket connections');
  connections.item.hidden = true;
  const card = {
    rows: new Map(),
    sessionRows: new Map(),
    connections: connections.value,
    connectionsItem: connections.item,
    sessionsTitle: el('h3', { hidden: '' }, 'WebSocket connections per endpoint'),
    sessions: el('ul', { class: 'endpoints sessions', hidden: '', 'aria-label': `WebSocket connections per endpoint of ${name}` }),
    policy: el('span', { class: 'policy' }),
    rps: rps.value,
    p50: p50.value,
    p99: p99.value,
    mix: el('div', { class: 'mix', 'aria-hidden': 'true' }),
    codes: el('ul', { class: 'codes', 'aria-label': `Status codes of ${name}` }),
    list: el('ul', { class: 'endpoints', 'aria-label': `Endpoints of ${name}` }),
    none: el('p', { class: 'empty' }, 'No endpoints.'),
    history: historySection(name),
  };
  card.root = el('article', { class: 'cluster', 'data-cluster': name, 'aria-label': `Cluster ${name}` },
    el('header', {}, el('h2', {}, name), card.policy),
    el('dl', { class: 'stats' }, rps.item, p50.item, p99.item, connections.item),
    card.sessionsTitle, card.sessions,
    el('h3', {}, 'Status codes'), card.mix, card.codes,
    el('h3', {}, 'Share of RPCs per endpoint'), card.none, card.list,
    card.history.root);
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

/** A cluster WebSocket routes use: its open sessions per endpoint, as bars (the gauge KEDA scales on). */
function updateSessions(card, cluster) {
  const websocket = cluster.websocket;
  card.root.dataset.websocket = websocket ? 'true' : 'false';
  card.connectionsItem.hidden = !websocket;
  card.sessionsTitle.hidden = !websocket;
  card.sessions.hidden = !websocket;
  if (!websocket) return;
  card.connections.textContent = String(websocket.connections);
  const addresses = new Set(cluster.endpoints.map((endpoint) => endpoint.address));
  for (const [address, row] of card.sessionRows) {
    if (!addresses.has(address)) { row.root.remove(); card.sessionRows.delete(address); }
  }
  cluster.endpoints.forEach((endpoint, index) => {
    let row = card.sessionRows.get(endpoint.address);
    if (!row) {
      row = { numbers: el('span', { class: 'numbers' }), fill: el('div', { class: 'fill' }) };
      row.root = el('li', { class: 'endpoint', 'data-websocket-endpoint': endpoint.address },
        el('div', { class: 'endpoint-head' }, el('code', { class: 'address' }, endpoint.address), row.numbers),
        el('div', { class: 'bar', 'aria-hidden': 'true' }, row.fill));
      card.sessionRows.set(endpoint.address, row);
    }
    if (card.sessions.children[index] !== row.root) card.sessions.insertBefore(row.root, card.sessions.children[index] ?? null);
    const open = endpoint.websocketConnections ?? 0;
    row.root.dataset.connections = String(open);
    row.numbers.textContent = `${open} open · ${percent(endpoint.websocketShare ?? 0)}`;
    row.fill.style.width = `${(endpoint.websocketShare ?? 0) * 100}%`;
  });
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

function updateCluster(card, cluster, windowSeconds, now) {
  card.policy.textContent = cluster.policy;
  card.root.dataset.rps = String(cluster.rps);
  card.rps.textContent = fixed(cluster.rps);
  card.p50.textContent = ms(cluster.p50Ms);
  card.p99.textContent = ms(cluster.p99Ms);
  updateCodes(card, cluster.statusCodes);
  updateSessions(card, cluster);
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
  if (cluster.history) drawHistory(card.history, cluster.history, now);
}

// --- History: the last 15 minutes as small SVG charts, with endpoint changes as marks -----------
// Chart elements name their endpoint in data-for (data-endpoint stays unique to the endpoint rows).

const SVG_NS = 'http://www.w3.org/2000/svg';
const HISTORY_MS = 15 * 60 * 1000;
const CHART = { width: 360, height: 110, left: 4, right: 4, top: 16, bottom: 16 };
const SERIES_COLOURS = 8;
/** What each mark says, in words; its colour only repeats it. */
const MARK_WORDS = { ejected: 'ejected', returned: 'back', added: 'joined', removed: 'left', unhealthy: 'unhealthy', healthy: 'healthy' };

/** An SVG element; string children become text nodes. */
function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined) node.setAttribute(name, String(value));
  }
  node.append(...children);
  return node;
}

function historySection(name) {
  const chart = (key, title) => {
    const plot = svg('svg', { viewBox: `0 0 ${CHART.width} ${CHART.height}`, role: 'img', 'aria-label': `${title} of ${name} over the last 15 minutes` });
    const figure = el('figure', { class: 'chart', 'data-chart': key }, el('figcaption', {}, title), plot);
    return { figure, plot };
  };
  const section = {
    share: chart('share', 'Share of attempts per endpoint'),
    rps: chart('rps', 'RPC/s'),
    p99: chart('p99', 'p99 latency'),
    errors: chart('errors', 'Failed RPCs/s (not OK)'),
    legend: el('ul', { class: 'legend', 'aria-label': `Endpoints in the history of ${name}` }),
    marks: el('p', { class: 'marks-note' }),
  };
  section.root = el('section', { class: 'history', 'aria-label': `History of ${name}` },
    el('h3', {}, 'History: the last 15 minutes'),
    el('div', { class: 'charts' }, section.share.figure, section.rps.figure, section.p99.figure, section.errors.figure),
    section.legend, section.marks);
  return section;
}

/** An SVG path through the values; a missing value (no traffic in that step) lifts the pen. */
function linePath(values, xs, y) {
  let path = '';
  let drawing = false;
  values.forEach((value, i) => {
    if (typeof value !== 'number') { drawing = false; return; }
    path += `${drawing ? 'L' : 'M'}${xs[i].toFixed(1)} ${y(value).toFixed(1)} `;
    drawing = true;
  });
  return path.trim();
}

const markText = (mark) => `${clock(mark.time)} ${MARK_WORDS[mark.kind] ?? mark.kind} ${mark.endpoint ?? ''}`.trim();

/** "−15 min", "−40 s": how far back the left edge of the charts is. */
const ago = (ms) => (ms >= 120_000 ? `−${Math.round(ms / 60_000)} min` : `−${Math.round(ms / 1000)} s`);

function drawChart(chart, { series, max, format, xs, xAt, marks, words, span }) {
  const values = series.flatMap((line) => line.values.filter((value) => typeof value === 'number'));
  const top = max ?? Math.max(0, ...values);
  const bottom = CHART.height - CHART.bottom;
  const y = (value) => bottom - (value / (top > 0 ? top : 1)) * (bottom - CHART.top);
  const right = CHART.width - CHART.right;
  const children = [
    svg('line', { class: 'grid', x1: CHART.left, x2: right, y1: CHART.top, y2: CHART.top }),
    svg('line', { class: 'axis', x1: CHART.left, x2: right, y1: bottom, y2: bottom }),
    svg('text', { class: 'label', x: CHART.left, y: CHART.top - 5 }, values.length === 0 ? 'no traffic yet' : `max ${format(top)}`),
    svg('text', { class: 'label', x: CHART.left, y: CHART.height - 3 }, ago(span)),
    svg('text', { class: 'label', x: right, y: CHART.height - 3, 'text-anchor': 'end' }, 'now'),
  ];
  const labelled = [];
  for (const mark of marks) {
    const at = xAt(mark.time);
    const group = svg('g', { class: `mark mark-${mark.kind}`, 'data-kind': mark.kind, 'data-for': mark.endpoint, 'data-time': mark.time },
      svg('title', {}, markText(mark)),
      svg('line', { x1: at, x2: at, y1: CHART.top, y2: bottom }));
    // A word where it does not cover another one (the note under the charts lists every mark);
    // endpoints joining at start would only crowd the left edge.
    if (words && mark.kind !== 'added' && labelled.every((x) => Math.abs(x - at) > 30)) {
      group.append(svg('text', { x: at + 2, y: CHART.top + 9 }, MARK_WORDS[mark.kind] ?? mark.kind));
      labelled.push(at);
    }
    children.push(group);
  }
  for (const line of series) {
    children.push(svg('path', {
      class: line.className, d: linePath(line.values, xs, y), 'data-for': line.endpoint,
      'data-values': line.values.map((value) => (typeof value === 'number' ? value.toFixed(3) : '')).join(','),
    }));
  }
  chart.plot.replaceChildren(...children);
  chart.figure.dataset.points = String(xs.length);
}

function drawHistory(section, history, now) {
  const stepMs = history.stepSeconds * 1000;
  // The last 15 minutes, or the time since the proxy started if shorter (at least six steps), so
  // a young proxy's history fills the chart instead of a sliver at its right edge.
  const span = Math.min(HISTORY_MS, Math.max(6 * stepMs, now - (history.points[0]?.time ?? now)));
  const from = now - span;
  const xAt = (time) => CHART.left + ((Math.max(from, Math.min(now, time)) - from) / span) * (CHART.width - CHART.left - CHART.right);
  // Each point stands for a step: draw it at the step's middle (the step being filled, at now).
  const xs = history.points.map((point) => xAt(point.time + stepMs / 2));
  const totals = history.points.map((point) => point.attempts.reduce((sum, count) => sum + count, 0));
  const shares = history.endpoints.map((endpoint, index) => ({
    endpoint,
    className: `series series-${index % SERIES_COLOURS}`,
    values: history.points.map((point, i) => (totals[i] === 0 ? undefined : point.attempts[index] / totals[i])),
  }));
  const marks = history.marks.filter((mark) => mark.time >= from);
  const common = { xs, xAt, marks, span };
  drawChart(section.share, { ...common, series: shares, max: 1, format: percent, words: true });
  drawChart(section.rps, { ...common, series: [{ className: 'series total', values: history.points.map((point) => point.rps) }], format: (value) => fixed(value) });
  drawChart(section.p99, { ...common, series: [{ className: 'series total', values: history.points.map((point) => point.p99Ms) }], format: ms });
  drawChart(section.errors, { ...common, series: [{ className: 'series failed', values: history.points.map((point) => point.errorsPerSecond) }], format: (value) => fixed(value) });
  section.legend.replaceChildren(...shares.map((line) => el('li', { 'data-for': line.endpoint },
    el('span', { class: `swatch ${line.className}`, 'aria-hidden': 'true' }), line.endpoint)));
  section.marks.textContent = marks.length === 0
    ? 'No endpoint changes in this history.'
    : `Marks, newest last: ${marks.slice(-8).map(markText).join('; ')}`;
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
    updateCluster(card, cluster, balance.windowSeconds, balance.time);
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
