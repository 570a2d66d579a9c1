/** The opening handshake's checks (RFC 6455 §4, RFC 8441 §5), both sides, as pure functions. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { acceptFor, checkBackendAccept, checkHttp1Handshake, checkHttp2Handshake, newKey } from '../../src/websocket/handshake.ts';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const VALID = { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': KEY, 'sec-websocket-version': '13' };

describe('the client\'s handshake over HTTP/1.1', () => {
  it('takes a valid one, tokens in any case and among others', () => {
    assert.deepEqual(checkHttp1Handshake('GET', VALID), { key: KEY });
    assert.deepEqual(checkHttp1Handshake('GET', { ...VALID, upgrade: 'WebSocket', connection: 'keep-alive, upgrade' }), { key: KEY });
  });

  const refusals: [string, string, Record<string, string | undefined>, number, string][] = [
    ['POST', 'a method other than GET', {}, 405, 'method_not_allowed'],
    ['GET', 'no Upgrade: websocket', { upgrade: 'h2c' }, 400, 'bad_handshake'],
    ['GET', 'no Connection: Upgrade', { connection: 'keep-alive' }, 400, 'bad_handshake'],
    ['GET', 'no key', { 'sec-websocket-key': undefined }, 400, 'bad_handshake'],
    ['GET', 'a key that is not 16 bytes', { 'sec-websocket-key': 'c2hvcnQ=' }, 400, 'bad_handshake'],
    ['GET', 'version 8', { 'sec-websocket-version': '8' }, 426, 'bad_version'],
    ['GET', 'no version', { 'sec-websocket-version': undefined }, 426, 'bad_version'],
  ];
  for (const [method, what, change, status, result] of refusals) {
    it(`refuses ${what} with ${status}`, () => {
      const refusal = checkHttp1Handshake(method, { ...VALID, ...change });
      assert.ok('status' in refusal);
      assert.equal(refusal.status, status);
      assert.equal(refusal.result, result);
      if (status === 426) assert.equal(refusal.headers?.['sec-websocket-version'], '13');
      if (status === 405) assert.equal(refusal.headers?.allow, 'GET');
    });
  }
});

describe('the client\'s extended CONNECT over HTTP/2', () => {
  it('takes :protocol websocket with version 13, and nothing else', () => {
    assert.equal(checkHttp2Handshake({ ':protocol': 'websocket', 'sec-websocket-version': '13' }), undefined);
    assert.equal(checkHttp2Handshake({ ':protocol': 'connect-udp', 'sec-websocket-version': '13' })?.status, 400);
    assert.equal(checkHttp2Handshake({ ':protocol': 'websocket' })?.status, 426);
  });
});

describe('the backend\'s 101', () => {
  const answer = { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-accept': acceptFor(KEY) };

  it('computes the accept of RFC 6455\'s own example', () => {
    assert.equal(acceptFor(KEY), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    assert.match(newKey(), /^[A-Za-z0-9+/]{22}==$/);
  });

  it('takes the right accept, with the subprotocol and extension the client offered', () => {
    const offered = { 'sec-websocket-protocol': 'chat, superchat', 'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits' };
    assert.deepEqual(checkBackendAccept({ ...answer, 'sec-websocket-protocol': 'chat', 'sec-websocket-extensions': 'permessage-deflate' }, KEY, offered), { protocol: 'chat', extensions: 'permessage-deflate' });
  });

  const broken: [string, Record<string, string | undefined>][] = [
    ['a wrong accept', { 'sec-websocket-accept': acceptFor('AAAAAAAAAAAAAAAAAAAAAA==') }],
    ['no accept', { 'sec-websocket-accept': undefined }],
    ['no Upgrade', { upgrade: undefined }],
    ['no Connection: Upgrade', { connection: 'close' }],
    ['a subprotocol the client did not offer', { 'sec-websocket-protocol': 'other' }],
    ['an extension the client did not offer', { 'sec-websocket-extensions': 'x-custom' }],
  ];
  for (const [what, change] of broken) {
    it(`refuses ${what}`, () => {
      assert.equal(typeof checkBackendAccept({ ...answer, ...change }, KEY, { 'sec-websocket-protocol': 'chat' }), 'string');
    });
  }
});
