import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig, parseConfigObject } from '../../src/config/load.ts';
import { assertProblem, configError } from '../helpers/config-errors.ts';

const FILE = '/etc/switchyard/test.yaml';

const MINIMAL = `
listeners:
  - name: local
    port: 8080
    plaintext: true
`;

/** MINIMAL plus `extra`, which must be indented as top-level YAML. */
const withMinimal = (extra: string) => MINIMAL + extra;

const parse = (text: string) => () => parseConfig(text, FILE);

describe('parseConfig: defaults', () => {
  it('applies the defaults to a minimal file', () => {
    const config = parseConfig(MINIMAL, FILE);
    assert.deepEqual(config, {
      listeners: [{
        name: 'local',
        address: '127.0.0.1',
        port: 8080,
        plaintext: true,
        http2: {
          max_concurrent_streams: 100,
          initial_stream_window: 64 << 10,
          connection_window: 16 << 20,
          max_header_list_size: 16 << 10,
          max_request_message_bytes: 4 << 20,
          max_response_message_bytes: 4 << 20,
          idle_timeout: 300_000,
          handshake_timeout: 10_000,
          stream_idle_timeout: 'off',
          stalled_stream_timeout: 30_000,
          stream_reset_burst: 200,
          stream_reset_rate: 100,
          max_session_memory_mb: 64,
          control_frame_burst: 1000,
          control_frames_per_second: 100,
        },
        max_connection_age_grace: 30_000,
        expose_upstream: false,
        trusted_proxy_hops: 0,
        web: { protocols: [] },
        max_connections: 10_000,
        websocket: { over_http2: true },
      }],
      routes: [],
      clusters: [],
      access_log: { output: 'off' },
      drain: { delay: 5_000, timeout: 30_000 },
      overload: { max_memory_mb: 'auto' },
      watch_config: false,
      authorization: { rules: [] },
      certificates: { expiry_warning: 7 * 24 * 3_600_000 },
      tracing: { enabled: false, sample_new_traces: false, opentelemetry: false },
      metrics: { methods: [], max_methods: 200 },
      websocket: { routes: [] },
      web: { descriptor_sets: [] },
      log_level: 'info',
    });
  });

  it('applies cluster, endpoint, dns, route and header defaults', () => {
    const config = parseConfig(withMinimal(`
routes:
  - match:
      service: echo.Echo
      headers: [{ name: X-Tenant, exact: a }]
    cluster: static
  - match: { prefix: / }
    direct_response: { code: permission_denied }
clusters:
  - name: static
    endpoints: [{ address: 10.0.0.1, port: 50051 }]
  - name: dns
    dns: { name: echo.default.svc.cluster.local, port: 50051 }
`), FILE);
    const [staticCluster, dnsCluster] = config.clusters;
    assert.equal(staticCluster?.lb_policy, 'round_robin');
    assert.equal(staticCluster?.ring_size, 1024);
    assert.equal(staticCluster?.active_request_bias, 1);
    assert.equal(staticCluster?.ewma_decay, 10_000);
    assert.equal(staticCluster?.connect_timeout, 5_000);
    assert.deepEqual(staticCluster?.endpoints, [{ address: '10.0.0.1', port: 50051, weight: 1 }]);
    assert.deepEqual(dnsCluster?.dns, { name: 'echo.default.svc.cluster.local', port: 50051, families: ['ipv4', 'ipv6'], refresh_interval: 5_000 });
    assert.deepEqual(config.routes[0]?.match.headers, [{ name: 'x-tenant', exact: 'a', invert: false }]);
    assert.deepEqual(config.routes[1]?.direct_response, { code: 7, message: '' });
  });

  it('turns durations into milliseconds', () => {
    const config = parseConfig(withMinimal(`
routes: [{ match: { prefix: / }, cluster: c, timeout: 250ms, max_stream_duration: 1.5m }]
clusters: [{ name: c, endpoints: [{ address: a, port: 1 }], connect_timeout: 2h }]
`), FILE);
    assert.equal(config.routes[0]?.timeout, 250);
    assert.equal(config.routes[0]?.max_stream_duration, 90_000);
    assert.equal(config.clusters[0]?.connect_timeout, 7_200_000);
  });
});

describe('parseConfig: schema problems', () => {
  it('names an unknown top-level key, with a suggestion', async () => {
    const error = await configError(FILE, parse(withMinimal('acces_log: { output: stdout }\n')));
    assertProblem(error, '(root)', 'unknown key "acces_log" (did you mean "access_log"?)');
  });

  it('names an unknown nested key and the object that has it', async () => {
    const error = await configError(FILE, parse(`
listeners:
  - name: local
    prot: 8080
    plaintext: true
clusters:
  - name: a
    endpoints: [{ address: a, port: 1 }]
  - name: b
    endpoints: [{ address: b, port: 1 }]
    tls: { ca: ca.pem, ca_file: ca.pem, verify: true }
`));
    assertProblem(error, 'listeners[0]', 'unknown key "prot" (did you mean "port"?)');
    assertProblem(error, 'listeners[0].port', 'required (expected a number)');
    assertProblem(error, 'clusters[1].tls', 'unknown key "ca" (did you mean "ca_file"?)');
    assertProblem(error, 'clusters[1].tls', 'unknown key "verify" (did you mean "verify_subject_alt_names"?)');
  });

  it('reports a wrong type with what was expected and what was found', async () => {
    const error = await configError(FILE, parse(withMinimal(`
clusters:
  - name: c
    endpoints:
      - { address: a, port: 1 }
      - { address: b, port: "50051" }
`)));
    assertProblem(error, 'clusters[0].endpoints[1].port', 'expected number, got string');
    assert.match(error.message, /^ {2}clusters\[0\]\.endpoints\[1\]\.port: expected number, got string \(line 11\)$/m);
  });

  it('rejects a malformed, zero, unitless or too long duration', async () => {
    const error = await configError(FILE, parse(withMinimal(`
routes:
  - { match: { prefix: / }, cluster: c, timeout: 5 seconds }
  - { match: { prefix: / }, cluster: c, timeout: 0s }
  - { match: { prefix: / }, cluster: c, timeout: 30 }
  - { match: { prefix: / }, cluster: c, max_stream_duration: 1000h }
clusters: [{ name: c, endpoints: [{ address: a, port: 1 }] }]
`)));
    assertProblem(error, 'routes[0].timeout', /^expected a duration such as "250ms".*got "5 seconds"$/);
    assertProblem(error, 'routes[1].timeout', /^expected a duration from 1ms .*got "0s"$/);
    assertProblem(error, 'routes[2].timeout', /^expected a duration with a unit .*got number 30$/);
    assertProblem(error, 'routes[3].max_stream_duration', /got "1000h"$/);
  });

  it('rejects a method that is not /package.Service/Method', async () => {
    const error = await configError(FILE, parse(withMinimal(`
routes:
  - { match: { method: /echo.Echo/Say }, cluster: c }
  - { match: { service: echo.Echo }, cluster: c }
  - { match: { method: echo.Echo.Say }, cluster: c }
clusters: [{ name: c, endpoints: [{ address: a, port: 1 }] }]
`)));
    assert.equal(error.problems.length, 1);
    assertProblem(error, 'routes[2].match.method', 'expected "/package.Service/Method"');
  });

  it('rejects a route to a cluster that does not exist', async () => {
    const error = await configError(FILE, parse(withMinimal(`
routes: [{ match: { prefix: / }, cluster: ech }]
clusters: [{ name: echo, endpoints: [{ address: a, port: 1 }] }]
`)));
    assertProblem(error, 'routes[0].cluster', 'no cluster named "ech" (clusters: echo)');
  });

  it('reports a missing cluster even when other parts of the file are broken', async () => {
    const error = await configError(FILE, parse(withMinimal(`
routes: [{ match: { prefix: / }, cluster: nope }]
clusters: [{ name: echo, endpoints: [{ address: a, port: x }] }]
`)));
    assertProblem(error, 'clusters[0].endpoints[0].port', 'expected number, got string');
    assertProblem(error, 'routes[0].cluster', 'no cluster named "nope" (clusters: echo)');
  });

  it('requires hash_header for ring_hash, and only for ring_hash', async () => {
    const error = await configError(FILE, parse(withMinimal(`
clusters:
  - { name: a, lb_policy: ring_hash, endpoints: [{ address: a, port: 1 }] }
  - { name: b, hash_header: x-user, endpoints: [{ address: a, port: 1 }] }
`)));
    assertProblem(error, 'clusters[0].hash_header', 'ring_hash needs hash_header: the request header to hash');
    assertProblem(error, 'clusters[1].hash_header', 'hash_header only applies to lb_policy ring_hash (this cluster uses round_robin)');
  });

  it('requires a listener to be either tls or plaintext', async () => {
    const error = await configError(FILE, parse(`
listeners:
  - { name: neither, port: 1 }
  - { name: both, port: 2, plaintext: true, tls: { cert_file: c.pem, key_file: k.pem } }
`));
    assertProblem(error, 'listeners[0].tls', /^set tls \(cert_file, key_file\), or plaintext: true/);
    assertProblem(error, 'listeners[1].plaintext', 'a listener is either tls or plaintext, not both');
  });

  it('rejects duplicate names and two listeners on one address', async () => {
    const error = await configError(FILE, parse(`
listeners:
  - { name: a, port: 1, plaintext: true }
  - { name: a, port: 1, plaintext: true }
routes:
  - { name: r, match: { prefix: / }, cluster: c }
  - { name: r, match: { prefix: / }, cluster: c }
clusters:
  - { name: c, endpoints: [{ address: a, port: 1 }] }
  - { name: c, endpoints: [{ address: a, port: 1 }] }
`));
    assertProblem(error, 'listeners[1].name', 'duplicate listener name "a"');
    assertProblem(error, 'listeners[1].port', 'listeners[0] already listens on 127.0.0.1:1');
    assertProblem(error, 'routes[1].name', 'duplicate route name "r"');
    assertProblem(error, 'clusters[1].name', 'duplicate cluster name "c"');
  });

  it('checks route actions, endpoint sources, status names and values', async () => {
    const error = await configError(FILE, parse(withMinimal(`
routes:
  - { match: { prefix: / } }
  - { match: { prefix: / }, direct_response: { code: NOPE } }
  - { match: { prefix: / }, direct_response: { code: 17 } }
clusters:
  - { name: a }
  - { name: b, endpoints: [{ address: a, port: 0 }] }
  - { name: c, lb_policy: fastest, dns: { name: x, port: 1, servers: [8.8.8.8, "1.1.1.1:53", "[::1]:53", "dns:53"] } }
`)));
    assertProblem(error, 'routes[0]', 'a route needs exactly one action: cluster, weighted_clusters or direct_response');
    assertProblem(error, 'routes[1].direct_response.code', /^unknown gRPC status "NOPE"/);
    assertProblem(error, 'routes[2].direct_response.code', 'expected a number <= 16, got 17');
    assertProblem(error, 'clusters[0]', 'a cluster needs exactly one endpoint source: endpoints, dns or kubernetes');
    assertProblem(error, 'clusters[1].endpoints[0].port', 'expected a number >= 1, got 0');
    assertProblem(error, 'clusters[2].lb_policy', /^expected one of "round_robin", .*got "fastest"$/);
    assertProblem(error, 'clusters[2].dns.servers[3]', /got "dns:53"$/);
    assert.equal(error.problems.length, 7);
  });

  it('rejects a document that is not a mapping, at (root)', async () => {
    const error = await configError(FILE, parse('- listeners\n'));
    assertProblem(error, '(root)', 'expected object, got array');
  });

  it('reports several problems at once, in file order, with their lines', async () => {
    const error = await configError(FILE, parse(`listeners:
  - name: local
    port: 70000
    plaintext: yes
routes:
  - match: { method: Say }
    cluster: echo
clusters:
  - name: echo
    lb_policy: ring_hash
    endpoints: [{ address: a, port: 1 }]
`));
    assert.deepEqual(error.problems.map((p) => [p.path, p.line]), [
      ['listeners[0].port', 3],
      ['listeners[0].plaintext', 4],
      ['routes[0].match.method', 6],
      ['clusters[0].hash_header', 9],
    ]);
    assert.equal(error.message, [
      `${FILE}: invalid config`,
      '  listeners[0].port: expected a number <= 65535, got 70000 (line 3)',
      '  listeners[0].plaintext: expected boolean, got string (line 4)',
      '  routes[0].match.method: expected "/package.Service/Method" (line 6)',
      '  clusters[0].hash_header: ring_hash needs hash_header: the request header to hash (line 9)',
    ].join('\n'));
  });
});

describe('parseConfig: YAML problems', () => {
  it('reports a syntax error with its line and column', async () => {
    const error = await configError(FILE, parse('listeners:\n  - name: a\n    port: [1\n'));
    const [problem] = error.problems;
    assert.match(problem?.path ?? '', /^line \d+, column \d+$/);
    assert.equal(typeof problem?.line, 'number');
  });

  it('rejects a duplicate key, naming it', async () => {
    const error = await configError(FILE, parse('listeners:\n  - name: a\n    port: 1\n    port: 2\n    plaintext: true\n'));
    assertProblem(error, 'line 4, column 5', 'duplicate key "port"');
    const flow = await configError(FILE, parse('listeners: [{ name: a, port: 1, "name": b }]\n'));
    assertProblem(flow, 'line 1, column 33', 'duplicate key "name"');
  });

  it('rejects an empty file and a file of comments', async () => {
    for (const text of ['', '\n\n', '# nothing here\n']) {
      const error = await configError(FILE, parse(text));
      assertProblem(error, '(file)', /^the file is empty/);
    }
  });

  it('accepts anchors, aliases and merge keys', () => {
    const config = parseConfig(withMinimal(`
clusters:
  - name: a
    endpoints: [{ address: a, port: 1 }]
    tls: &tls { ca_file: ca.pem, server_name: backend.internal }
  - name: b
    endpoints: [{ address: b, port: 1 }]
    tls:
      <<: *tls
      server_name: other.internal
`), FILE);
    assert.deepEqual(config.clusters[1]?.tls, { ca_file: 'ca.pem', server_name: 'other.internal' });
  });
});

describe('parseConfig: YAML that expands without bound', () => {
  // Nine aliases per level, seven levels: 9^7 (4.8 million) strings from a 300-byte file.
  const ALIAS_BOMB = ['a: &a ["x","x","x","x","x","x","x","x","x"]', ...'bcdefg'.split('').map((name, i) => {
    const previous = 'abcdefg'[i]!;
    return `${name}: &${name} [${Array.from({ length: 9 }, () => `*${previous}`).join(',')}]`;
  }), 'listeners: [*g]', ''].join('\n');

  it('reports an alias bomb as a config problem, like any other, naming where the aliases are', async () => {
    const error = await configError(FILE, parse(ALIAS_BOMB));
    assert.equal(error.problems.length, 1);
    assertProblem(error, '(file)', /^the anchors and aliases expand to too much data/);
    assert.equal(error.problems[0]?.line, 2, 'the first alias is on line 2');
  });

  it('still accepts an anchor shared by many clusters', () => {
    const clusters = Array.from({ length: 60 }, (_, i) => `  - { name: c${i + 1}, endpoints: [{ address: a, port: 1 }], tls: *tls }`).join('\n');
    const config = parseConfig(withMinimal(`clusters:\n  - { name: c0, endpoints: [{ address: a, port: 1 }], tls: &tls { ca_file: ca.pem } }\n${clusters}\n`), FILE);
    assert.equal(config.clusters.length, 61);
    assert.equal(config.clusters[60]?.tls?.ca_file, 'ca.pem');
  });
});

describe('parseConfigObject', () => {
  it('validates like parseConfig and labels errors with the given name', async () => {
    const label = '(embedded demo config)';
    const error = await configError(label, () => parseConfigObject({
      listeners: [{ name: 'demo', port: 0, plaintext: true, prot: 1 }],
      routes: [{ match: { prefix: '/' }, cluster: 'missing' }],
    }, label));
    assertProblem(error, 'listeners[0]', 'unknown key "prot" (did you mean "port"?)');
    assert.equal(error.problems[0]?.line, undefined);
  });

  it('returns the config with defaults', () => {
    const config = parseConfigObject({ listeners: [{ name: 'demo', port: 0, plaintext: true }] }, '(test)');
    assert.equal(config.listeners[0]?.address, '127.0.0.1');
    assert.equal(config.log_level, 'info');
  });
});
