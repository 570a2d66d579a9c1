import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigObject } from '../../src/config/load.ts';
import { Authorizer } from '../../src/security/authorization.ts';
import { ANONYMOUS, parseSubjectAltNames, type CallerIdentity } from '../../src/security/identity.ts';
import { subjectAltNameChecker } from '../../src/security/san.ts';
import type { PeerCertificate } from 'node:tls';

const caller = (spiffeId: string, dns: string[] = [], cn?: string): CallerIdentity => ({
  authenticated: true, spiffeId, uris: [spiffeId], dnsNames: dns, commonName: cn, certificateSha256: '00', label: spiffeId,
});
const authorizer = (rules: unknown[]) => new Authorizer(parseConfigObject({ listeners: [{ name: 'l', port: 0, plaintext: true }], authorization: { rules } }, 't').authorization);

describe('Authorizer', () => {
  it('allows everything without rules, and denies by default with any', () => {
    assert.equal(authorizer([]).check(ANONYMOUS, '/a.B/C').allowed, true);
    const az = authorizer([{ principals: ['spiffe://t/a'], methods: ['/a.B/C'] }]);
    assert.equal(az.check(caller('spiffe://t/a'), '/a.B/C').allowed, true);
    assert.deepEqual(az.check(caller('spiffe://t/a'), '/a.B/D'), { allowed: false, rule: undefined });
    assert.equal(az.check(ANONYMOUS, '/a.B/C').allowed, false);
  });

  it('lets a matching deny rule win over any allow rule, wherever it is', () => {
    const az = authorizer([
      { name: 'all', principals: ['*'], methods: ['*'] },
      { name: 'no-admin', principals: ['dns:evil.test'], methods: ['a.Admin/*'], action: 'deny' },
    ]);
    assert.deepEqual(az.check(caller('spiffe://t/x', ['EVIL.test']), '/a.Admin/Drop'), { allowed: false, rule: 'no-admin' });
    assert.deepEqual(az.check(caller('spiffe://t/x', ['evil.test']), '/a.Other/Get'), { allowed: true, rule: 'all' });
  });

  it('matches service wildcards, SPIFFE prefixes, cn, anonymous and authenticated', () => {
    const az = authorizer([
      { principals: ['spiffe://t/ns/prod/*'], methods: ['a.B/*'] },
      { principals: ['cn:ops'], methods: ['/a.Ops/Run'] },
      { principals: ['anonymous'], methods: ['/grpc.health.v1.Health/Check'] },
      { principals: ['authenticated'], methods: ['/a.Any/Thing'] },
    ]);
    assert.equal(az.check(caller('spiffe://t/ns/prod/sa/x'), '/a.B/Anything').allowed, true);
    assert.equal(az.check(caller('spiffe://t/ns/dev/sa/x'), '/a.B/Anything').allowed, false);
    assert.equal(az.check(caller('spiffe://t/ns/prod/sa/x'), '/a.BC/Anything').allowed, false, 'a service wildcard is not a prefix of another service');
    assert.equal(az.check(caller('spiffe://t/x', [], 'ops'), '/a.Ops/Run').allowed, true);
    assert.equal(az.check(ANONYMOUS, '/grpc.health.v1.Health/Check').allowed, true);
    assert.equal(az.check(ANONYMOUS, '/a.Any/Thing').allowed, false);
    assert.equal(az.check(caller('spiffe://t/x'), '/a.Any/Thing').allowed, true);
  });

  it('rejects malformed principals and methods at load', () => {
    assert.throws(() => authorizer([{ principals: ['client.test'], methods: ['*'] }]), /principals\[0\]/);
    assert.throws(() => authorizer([{ principals: ['*'], methods: ['/a.B/C/D'] }]), /methods\[0\]/);
  });
});

describe('subject alternative names', () => {
  it('parses Node\'s subjectaltname, quoted values included', () => {
    assert.deepEqual(parseSubjectAltNames('URI:spiffe://t/a, DNS:a.test, IP Address:127.0.0.1, DNS:"x,y"'), [
      { type: 'URI', value: 'spiffe://t/a' }, { type: 'DNS', value: 'a.test' }, { type: 'IP Address', value: '127.0.0.1' }, { type: 'DNS', value: 'x,y' },
    ]);
  });

  it('accepts a backend certificate with any one of the configured SANs', () => {
    const check = subjectAltNameChecker(['spiffe://cluster.local/ns/x/sa/y', 'dns:Payments.internal', 'ip:10.0.0.1']);
    const cert = (subjectaltname: string) => ({ subjectaltname }) as PeerCertificate;
    assert.equal(check('10.0.0.9', cert('URI:spiffe://cluster.local/ns/x/sa/y')), undefined);
    assert.equal(check('10.0.0.9', cert('DNS:payments.INTERNAL')), undefined);
    assert.equal(check('10.0.0.9', cert('IP Address:10.0.0.1')), undefined);
    assert.match(String(check('10.0.0.9', cert('URI:spiffe://cluster.local/ns/x/sa/z, DNS:localhost'))), /match none of verify_subject_alt_names/);
  });
});
