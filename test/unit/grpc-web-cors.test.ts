/** CORS policies (src/web/cors.ts): which origins, methods and headers, and what the answers say. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/config/schema.ts';
import { CorsPolicy } from '../../src/web/cors.ts';

/** A policy as the config schema makes it, defaults included. */
function policy(cors: Record<string, unknown>): CorsPolicy {
  const config = configSchema.parse({ listeners: [{ name: 'l', port: 0, plaintext: true, web: { cors } }] });
  return new CorsPolicy(config.listeners[0]!.web.cors!);
}

describe('CORS policy', () => {
  it('origins: exact (case-insensitive), a subdomain wildcard that needs a subdomain, and nothing else', () => {
    const cors = policy({ allow_origins: ['https://App.example.com', 'https://*.shop.test'] });
    assert.equal(cors.allowsOrigin('https://app.example.com'), true);
    assert.equal(cors.allowsOrigin('http://app.example.com'), false, 'another scheme');
    assert.equal(cors.allowsOrigin('https://app.example.com:8443'), false, 'another port');
    assert.equal(cors.allowsOrigin('https://a.shop.test'), true);
    assert.equal(cors.allowsOrigin('https://a.b.shop.test'), true);
    assert.equal(cors.allowsOrigin('https://shop.test'), false, 'the wildcard needs a subdomain');
    assert.equal(cors.allowsOrigin('https://evilshop.test'), false);
    assert.equal(cors.allowsOrigin('http://a.shop.test'), false);
  });

  it('response headers: the origin itself (and Vary), the exposed headers, credentials when allowed', () => {
    const cors = policy({ allow_origins: ['https://app.example.com'], allow_credentials: true, expose_headers: ['grpc-status', 'x-cost'] });
    assert.deepEqual(cors.responseHeaders('https://app.example.com'), {
      'access-control-allow-origin': 'https://app.example.com',
      'access-control-expose-headers': 'grpc-status, x-cost',
      vary: 'origin',
      'access-control-allow-credentials': 'true',
    });
    assert.equal(cors.responseHeaders('https://other.example.com'), undefined);
    assert.equal(policy({ allow_origins: ['*'] }).responseHeaders('https://any.example')?.['access-control-allow-origin'], '*');
    assert.match(policy({ allow_origins: ['*'] }).responseHeaders('https://any.example')?.['access-control-expose-headers'] ?? '', /^grpc-status, grpc-message, grpc-status-details-bin$/);
  });

  it('preflights: allowed with the policy\'s methods, headers and max age; refused for another origin, method or header', () => {
    const cors = policy({ allow_origins: ['https://app.example.com'], max_age: '2m' });
    const allowed = cors.preflight('https://app.example.com', 'POST', 'Content-Type, X-Grpc-Web, connect-timeout-ms');
    assert.equal(allowed.status, 204);
    assert.equal(allowed.headers['access-control-allow-methods'], 'POST, GET');
    assert.equal(allowed.headers['access-control-max-age'], '120');
    assert.match(String(allowed.headers['access-control-allow-headers']), /^content-type, x-grpc-web, x-user-agent, grpc-timeout, connect-protocol-version, connect-timeout-ms$/);
    assert.equal(cors.preflight('https://other.example.com', 'POST', undefined).status, 403);
    assert.match(cors.preflight('https://app.example.com', 'PUT', undefined).refusal, /method PUT/);
    assert.match(cors.preflight('https://app.example.com', 'POST', 'content-type, authorization').refusal, /authorization/);
    assert.equal(policy({ allow_origins: ['https://app.example.com'], allow_headers: ['content-type', 'authorization'] }).preflight('https://app.example.com', 'POST', 'authorization').status, 204);
  });
});
