import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { DnsDiscoverySource, type DnsDiscoveryConfig, type DnsSourceOptions } from '../../src/discovery/dns.ts';
import type { DiscoveryUpdate } from '../../src/discovery/source.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { findPortFreeOnAll } from '../helpers/ports.ts';

const PORT = 50051;
const LONG = 60_000;
/** Short c-ares timeouts so drop/timeout tests take well under a second. */
const FAST: DnsSourceOptions = { minRefreshIntervalMs: 0, queryTimeoutMs: 100, tries: 1 };

const servers: TestDnsServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function dnsServer(): Promise<TestDnsServer> {
  const server = await startDnsServer();
  servers.push(server);
  return server;
}

interface Started {
  source: DnsDiscoverySource;
  updates: DiscoveryUpdate[];
}

function start(server: TestDnsServer, config: Partial<DnsDiscoveryConfig>, options: DnsSourceOptions = FAST): Started {
  const source = new DnsDiscoverySource({
    name: 'echo.test',
    port: PORT,
    families: ['ipv4', 'ipv6'],
    refresh_interval: LONG,
    servers: [server.address],
    ...config,
  }, options);
  const updates: DiscoveryUpdate[] = [];
  source.start((update) => updates.push(update));
  return { source, updates };
}

/** Poll `check` until it returns a value, failing after `timeoutMs`. */
async function waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs = 5_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function hostsOf(update: DiscoveryUpdate | undefined): string[] | undefined {
  return update?.type === 'reset' ? update.endpoints.map((e) => e.host) : undefined;
}

/** Wait for the `index`-th update (0-based) and return it. */
function nth(updates: DiscoveryUpdate[], index: number): Promise<DiscoveryUpdate> {
  return waitFor(`update #${index}`, () => updates[index]);
}

test('first resolution emits every address, sorted and de-duplicated, weight 1', async () => {
  const dns = await dnsServer();
  dns.setRecords('echo.test', { a: ['127.0.0.10', '127.0.0.2', '127.0.0.1', '127.0.0.2'], aaaa: ['::2', '::1'] });
  const { source, updates } = start(dns, {});
  try {
    const first = await nth(updates, 0);
    assert.deepEqual(first, {
      type: 'reset',
      endpoints: ['127.0.0.1', '127.0.0.2', '127.0.0.10', '::1', '::2'].map((host) => ({ host, port: PORT, weight: 1 })),
    });
  } finally {
    source.close();
  }
});

test('families limit the record types asked for', async () => {
  const dns = await dnsServer();
  dns.setRecords('echo.test', { a: ['127.0.0.1'], aaaa: ['::1'] });
  const v4 = start(dns, { families: ['ipv4'] });
  const v6 = start(dns, { families: ['ipv6'] });
  try {
    assert.deepEqual(hostsOf(await nth(v4.updates, 0)), ['127.0.0.1']);
    assert.deepEqual(hostsOf(await nth(v6.updates, 0)), ['::1']);
    assert.equal(dns.queryCount, 2);
  } finally {
    v4.source.close();
    v6.source.close();
  }
});

test('an added record is seen after refresh()', async () => {
  const dns = await dnsServer();
  dns.setRecords('echo.test', { a: ['127.0.0.1'] });
  const { source, updates } = start(dns, {});
  try {
    assert.deepEqual(hostsOf(await nth(updates, 0)), ['127.0.0.1']);
    dns.setRecords('echo.test', { a: ['127.0.0.1', '127.0.0.2'] });
    source.refresh();
    assert.deepEqual(hostsOf(await nth(updates, 1)), ['127.0.0.1', '127.0.0.2']);
  } finally {
    source.close();
  }
});

test('changes are seen after the refresh interval, and an unchanged set emits nothing', async () => {
  const dns = await dnsServer();
  dns.setRecords('echo.test', { a: ['127.0.0.1', '127.0.0.2'] });
  const { source, updates } = start(dns, { families: ['ipv4'], refresh_interval: 20 });
  try {
    assert.deepEqual(hostsOf(await nth(updates, 0)), ['127.0.0.1', '127.0.0.2']);
    const seen = dns.queryCount;
    await waitFor('several re-resolutions', () => dns.queryCount >= seen + 4);
    dns.setRecords('echo.test', { a: ['127.0.0.1', '127.0.0.2', '127.0.0.3'] });
    // The answers to the queries counted above carried the same set: nothing was emitted for them.
    assert.equal(updates.length, 1);
    assert.deepEqual(hostsOf(await nth(updates, 1)), ['127.0.0.1', '127.0.0.2', '127.0.0.3']);
    dns.setRecords('echo.test', { a: ['127.0.0.3'] });
    assert.deepEqual(hostsOf(await nth(updates, 2)), ['127.0.0.3']);
    assert.ok(updates.every((u) => u.type === 'reset'));
  } finally {
    source.close();
  }
});

test('SERVFAIL emits error and keeps the last good set', async () => {
  const dns = await dnsServer();
  dns.setRecords('echo.test', { a: ['127.0.0.1'] });
  const { source, updates } = start(dns, {});
  try {
    await nth(updates, 0);
    dns.setFailure('servfail');
    source.refresh();
    const failure = await nth(updates, 1);
    assert.equal(failure.type, 'error');
    assert.match(failure.type === 'error' ? failure.error.message : '', /A ESERVFAIL, AAAA ESERVFAIL/);
    dns.setFailure(null);
    const seen = dns.queryCount;
    source.refresh();
    await waitFor('recovery queries', () => dns.queryCount >= seen + 2);
    dns.setRecords('echo.test', { a: ['127.0.0.2'] });
    // The recovery answer may still be on its way, and a refresh() meanwhile
    // is folded into it: keep asking until the change shows.
    assert.deepEqual(hostsOf(await waitFor('the changed set', () => (source.refresh(), updates[2]))), ['127.0.0.2']);
    // The recovery itself returned the pre-failure set, so it emitted nothing.
    assert.equal(updates.filter((u) => u.type === 'reset').length, 2);
  } finally {
    source.close();
  }
});

test('a dropped query times out into error; no reset before any success', async () => {
  const dns = await dnsServer();
  dns.setRecords('echo.test', { a: ['127.0.0.1'] });
  dns.setFailure('drop');
  const { source, updates } = start(dns, {});
  try {
    const failure = await nth(updates, 0);
    assert.equal(failure.type, 'error');
    assert.match(failure.type === 'error' ? failure.error.message : '', /ETIMEOUT/);
    dns.setFailure(null);
    source.refresh();
    assert.deepEqual(hostsOf(await nth(updates, 1)), ['127.0.0.1']);
  } finally {
    source.close();
  }
});

test('an unreachable server is an error, not an empty set', async () => {
  const dns = await startDnsServer();
  const address = dns.address;
  await dns.close();
  const source = new DnsDiscoverySource(
    { name: 'echo.test', port: PORT, families: ['ipv4'], refresh_interval: LONG, servers: [address] }, FAST);
  const updates: DiscoveryUpdate[] = [];
  source.start((update) => updates.push(update));
  try {
    const failure = await nth(updates, 0);
    assert.equal(failure.type, 'error');
  } finally {
    source.close();
  }
});

test('one failing family keeps its last known addresses next to the fresh ones', async () => {
  const dns = await dnsServer();
  dns.setRecords('echo.test', { a: ['127.0.0.1'], aaaa: ['::1'] });
  const { source, updates } = start(dns, {});
  try {
    assert.deepEqual(hostsOf(await nth(updates, 0)), ['127.0.0.1', '::1']);
    dns.setRecords('echo.test', { a: ['127.0.0.2'], aaaa: [] });
    dns.setFailure('servfail', 'AAAA');
    source.refresh();
    assert.deepEqual(hostsOf(await nth(updates, 1)), ['127.0.0.2', '::1']);
    const failure = await nth(updates, 2);
    assert.equal(failure.type, 'error');
    assert.match(failure.type === 'error' ? failure.error.message : '', /partly failed \(AAAA ESERVFAIL\)/);
  } finally {
    source.close();
  }
});

test('NODATA for one family is just an empty family', async () => {
  const dns = await dnsServer();
  dns.setRecords('echo.test', { a: ['127.0.0.1'], aaaa: [] });
  const { source, updates } = start(dns, {});
  try {
    assert.deepEqual(hostsOf(await nth(updates, 0)), ['127.0.0.1']);
    dns.setRecords('echo.test', { a: [], aaaa: ['::1'] });
    source.refresh();
    assert.deepEqual(hostsOf(await nth(updates, 1)), ['::1']);
    assert.ok(updates.every((u) => u.type === 'reset'));
  } finally {
    source.close();
  }
});

test('NXDOMAIN is an authoritative empty set (the Service is gone), first time or later', async () => {
  const dns = await dnsServer();
  const { source, updates } = start(dns, {});
  try {
    assert.deepEqual(await nth(updates, 0), { type: 'reset', endpoints: [] });
    dns.setRecords('echo.test', { a: ['127.0.0.1'] });
    source.refresh();
    assert.deepEqual(hostsOf(await nth(updates, 1)), ['127.0.0.1']);
    dns.deleteRecords('echo.test');
    source.refresh();
    assert.deepEqual(await nth(updates, 2), { type: 'reset', endpoints: [] });
  } finally {
    source.close();
  }
});

test('refresh() is rate-limited and coalesced, never lost', async () => {
  const dns = await dnsServer();
  dns.setRecords('echo.test', { a: ['127.0.0.1'] });
  const startedAt = performance.now();
  const { source, updates } = start(dns, { families: ['ipv4'] }, { ...FAST, minRefreshIntervalMs: 300 });
  try {
    await nth(updates, 0);
    dns.setRecords('echo.test', { a: ['127.0.0.2'] });
    for (let i = 0; i < 10; i++) source.refresh();
    assert.deepEqual(hostsOf(await nth(updates, 1)), ['127.0.0.2']);
    assert.ok(performance.now() - startedAt >= 290, 'the refresh waited out the minimum interval');
    assert.equal(dns.queryCount, 2, 'ten refresh() calls made one query');
  } finally {
    source.close();
  }
});

test('refresh() during an in-flight query does not start an overlapping one', async () => {
  const dns = await dnsServer();
  dns.setFailure('drop');
  const { source, updates } = start(dns, { families: ['ipv4'] });
  try {
    await waitFor('the first query', () => dns.queryCount === 1);
    for (let i = 0; i < 5; i++) source.refresh();
    await nth(updates, 0);
    assert.equal(dns.queryCount, 1);
  } finally {
    source.close();
  }
});

test('close() stops emitting and drops in-flight answers', async () => {
  const dns = await dnsServer();
  dns.setRecords('echo.test', { a: ['127.0.0.1'] });
  const closed = start(dns, { families: ['ipv4'], refresh_interval: 20 });
  await nth(closed.updates, 0);
  closed.source.close();
  closed.source.refresh();

  dns.setFailure('drop');
  const before = dns.queryCount;
  const inFlight = start(dns, { families: ['ipv4'] });
  await waitFor('the dropped query', () => dns.queryCount > before);
  inFlight.source.close();

  // A control source on the same server shows time has passed for both of the above to have emitted.
  const control = start(dns, { families: ['ipv4'], refresh_interval: 20 });
  try {
    assert.equal((await nth(control.updates, 0)).type, 'error');
    dns.setFailure(null);
    dns.setRecords('echo.test', { a: ['127.0.0.2'] });
    assert.deepEqual(hostsOf(await nth(control.updates, 1)), ['127.0.0.2']);
    assert.equal(closed.updates.length, 1);
    assert.equal(inFlight.updates.length, 0);
  } finally {
    control.source.close();
  }
});

test('an IP-literal name is a single static endpoint, no DNS asked', async () => {
  const dns = await dnsServer();
  for (const [name, host] of [['127.0.0.9', '127.0.0.9'], ['::1', '::1'], ['[::1]', '::1']] as const) {
    const { source, updates } = start(dns, { name });
    source.refresh();
    source.close();
    assert.deepEqual(updates, [{ type: 'reset', endpoints: [{ host, port: PORT, weight: 1 }] }]);
  }
  assert.equal(dns.queryCount, 0);
});

test('servers accept ip, ip:port and [v6]:port; garbage throws', () => {
  const config = { name: 'echo.test', port: PORT, families: ['ipv4'] as const, refresh_interval: LONG };
  for (const servers of [['127.0.0.1'], ['127.0.0.1:5353'], ['::1'], ['[::1]:5353']]) {
    new DnsDiscoverySource({ ...config, families: [...config.families], servers }).close();
  }
  assert.throws(() => new DnsDiscoverySource({ ...config, families: ['ipv4'], servers: ['dns.example'] }), /dns\.servers/);
});

test('findPortFreeOnAll gives a port bindable on several loopback addresses', async () => {
  const hosts = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
  const port = await findPortFreeOnAll(hosts);
  const bound = await Promise.all(hosts.map((host) => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  })));
  await Promise.all(bound.map((server) => new Promise((resolve) => server.close(resolve))));
});
