import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { startHealthEndpoint, type HealthEndpoint, type Readiness } from '../../src/admin/health-endpoint.ts';
import { probe } from '../helpers/http-probe.ts';

const HealthClient = grpc.makeGenericClientConstructor(healthService as grpc.ServiceDefinition, 'Health');
type CheckClient = grpc.Client & { check(request: { service: string }, callback: (error: grpc.ServiceError | null, response?: { status: string | number }) => void): void };

function check(client: CheckClient, service: string): Promise<{ status: string | number }> {
  return new Promise((resolve, reject) => client.check({ service }, (error, response) => (error ? reject(error) : resolve(response!))));
}

describe("Switchyard's own gRPC health service, on the health port", () => {
  let state: Readiness = 'ready';
  let endpoint: HealthEndpoint;
  let client: CheckClient;

  before(async () => {
    endpoint = await startHealthEndpoint({ address: '127.0.0.1', port: 0 }, () => state);
    client = new HealthClient(`127.0.0.1:${endpoint.address.port}`, grpc.credentials.createInsecure()) as unknown as CheckClient;
  });

  after(async () => {
    client.close();
    await endpoint.close();
  });

  it('answers SERVING while ready and NOT_SERVING while draining, over the same port as HTTP /ready', async () => {
    state = 'ready';
    assert.match(String((await check(client, '')).status), /^(SERVING|1)$/);
    assert.equal((await probe(endpoint.address.port, '/ready')).status, 200);
    state = 'draining';
    assert.match(String((await check(client, '')).status), /^(NOT_SERVING|2)$/);
    assert.equal((await probe(endpoint.address.port, '/ready')).status, 503);
    state = 'ready';
  });

  it('gives the same answer whatever service is named, so it reveals nothing about what is behind it', async () => {
    for (const name of ['', 'payments.v1.Ledger', 'no.such.Service']) {
      assert.match(String((await check(client, name)).status), /^(SERVING|1)$/);
    }
  });

  it('offers nothing else: any other method is UNIMPLEMENTED', async () => {
    const error = await new Promise<grpc.ServiceError>((resolve) => {
      client.makeUnaryRequest('/grpc.health.v1.Health/List', (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), (e) => resolve(e!));
    });
    assert.equal(error.code, grpc.status.UNIMPLEMENTED);
  });
});
