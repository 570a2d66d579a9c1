/**
 * Telling browser protocols apart and rewriting their headers as gRPC's
 * (src/web/web-call.ts), and gRPC statuses in Connect's terms
 * (src/web/connect-errors.ts, src/web/status-details.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { classifyWebCall, preflightOf, toGrpcRequestHeaders, type WebCall } from '../../src/web/web-call.ts';
import { connectCodeName, connectError, connectHttpStatus, endStreamMessage, grpcEnd } from '../../src/web/connect-errors.ts';
import { decodeStatusDetails } from '../../src/web/status-details.ts';
import { EnvelopeReader, envelope } from '../../src/web/envelopes.ts';
import type { HeaderMap } from '../../src/grpc/streams.ts';

/** The fields a header map sends: a dropped one is set undefined, not deleted (a delete slows the map down). */
const sent = (headers: HeaderMap): HeaderMap => Object.fromEntries(Object.entries(headers).filter(([, value]) => value !== undefined));

const post = (contentType: string, extra: HeaderMap = {}): HeaderMap => ({ ':method': 'POST', ':path': '/p.S/M', 'content-type': contentType, ...extra });

describe('which browser protocol a request speaks', () => {
  it('gRPC-Web binary and text, the response mode chosen by Accept', () => {
    assert.deepEqual(classifyWebCall(post('application/grpc-web')), { kind: 'grpc-web', textRequest: false, textResponse: false, subtype: '' });
    assert.deepEqual(classifyWebCall(post('application/grpc-web+proto')), { kind: 'grpc-web', textRequest: false, textResponse: false, subtype: '+proto' });
    assert.deepEqual(classifyWebCall(post('application/grpc-web-text')), { kind: 'grpc-web', textRequest: true, textResponse: true, subtype: '' });
    assert.equal((classifyWebCall(post('application/grpc-web+proto', { accept: 'application/grpc-web-text' })) as { textResponse: boolean }).textResponse, true);
    assert.equal((classifyWebCall(post('application/grpc-web-text+proto', { accept: 'application/grpc-web' })) as { textResponse: boolean }).textResponse, false);
    assert.equal(classifyWebCall(post('application/grpc-webx')), undefined);
  });

  it('Connect unary, streams and GET; gRPC itself and other requests are not browser calls', () => {
    assert.deepEqual(classifyWebCall(post('application/json; charset=utf-8', { 'content-encoding': 'gzip' })), { kind: 'connect-unary', codec: 'json', compression: 'gzip', get: undefined });
    assert.deepEqual(classifyWebCall(post('application/proto')), { kind: 'connect-unary', codec: 'proto', compression: 'identity', get: undefined });
    assert.deepEqual(classifyWebCall(post('application/connect+json', { 'connect-content-encoding': 'gzip' })), { kind: 'connect-stream', codec: 'json', compression: 'gzip' });
    const get = classifyWebCall({ ':method': 'GET', ':path': `/p.S/M?connect=v1&encoding=proto&base64=1&message=${Buffer.from([8, 1]).toString('base64url')}` });
    assert.deepEqual(get, { kind: 'connect-unary', codec: 'proto', compression: 'identity', get: { message: Buffer.from([8, 1]) } });
    assert.match(String((classifyWebCall({ ':method': 'GET', ':path': '/p.S/M?connect=v1&encoding=proto&base64=1&message=a+b' }) as { get: { message: unknown } }).get.message), /not URL-safe base64/);
    for (const other of [post('application/grpc'), post('application/grpc+proto'), post('text/plain'), { ':method': 'GET', ':path': '/' }, { ':method': 'GET', ':path': '/p.S/M?x=1' }]) {
      assert.equal(classifyWebCall(other), undefined, JSON.stringify(other));
    }
  });

  it('preflights: OPTIONS with an Origin and the method asked for', () => {
    assert.deepEqual(preflightOf({ ':method': 'OPTIONS', origin: 'https://a.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' }), { origin: 'https://a.test', method: 'POST', headers: 'content-type' });
    assert.equal(preflightOf({ ':method': 'OPTIONS', origin: 'https://a.test' }), undefined);
  });
});

describe('a browser call\'s headers as the gRPC request\'s', () => {
  it('gRPC-Web: content-length dropped, te: trailers added, the codec kept, metadata passed', () => {
    const headers = post('application/grpc-web-text+proto', { 'content-length': '12', connection: 'keep-alive', host: 'a.test', 'x-user': 'u', 'grpc-timeout': '1S' });
    const call = classifyWebCall(headers)!;
    assert.deepEqual(sent(toGrpcRequestHeaders(call, headers, false)), { ':method': 'POST', ':path': '/p.S/M', 'content-type': 'application/grpc+proto', te: 'trailers', 'x-user': 'u', 'grpc-timeout': '1S' });
  });

  it('Connect: the timeout as grpc-timeout, protobuf compression as grpc-encoding, GET as a POST to the path', () => {
    const translate = (headers: HeaderMap, transcoded = false) => toGrpcRequestHeaders(classifyWebCall(headers) as WebCall, headers, transcoded);
    const unary = translate(post('application/proto', { 'connect-protocol-version': '1', 'connect-timeout-ms': '1500', 'content-encoding': 'gzip', 'accept-encoding': 'gzip' }));
    assert.deepEqual(sent(unary), { ':method': 'POST', ':path': '/p.S/M', 'content-type': 'application/grpc+proto', te: 'trailers', 'grpc-encoding': 'gzip', 'grpc-accept-encoding': 'identity', 'grpc-timeout': '1500000u' });
    // Ten digits of milliseconds do not fit grpc-timeout's eight: a coarser unit.
    assert.equal(translate(post('application/connect+proto', { 'connect-timeout-ms': '9999999999' }))['grpc-timeout'], '10000000S');
    assert.match(String(translate(post('application/json', { 'connect-timeout-ms': 'soon' }))['grpc-timeout']), /^soon/, 'a malformed timeout stays malformed, to be refused');
    const json = translate(post('application/json', { 'content-encoding': 'gzip' }), true);
    assert.equal(json['content-type'], 'application/grpc+proto');
    assert.equal(json['grpc-encoding'], undefined, 'transcoded JSON is decompressed by the proxy');
    assert.equal(translate(post('application/json'))['content-type'], 'application/grpc+json');
    const get = translate({ ':method': 'GET', ':path': '/p.S/M?encoding=json&message=%7B%7D' });
    assert.equal(get[':method'], 'POST');
    assert.equal(get[':path'], '/p.S/M');
  });
});

describe('gRPC statuses in Connect\'s terms', () => {
  it('every code has its name and HTTP status', () => {
    const expected: [number, string, number][] = [
      [1, 'canceled', 499], [2, 'unknown', 500], [3, 'invalid_argument', 400], [4, 'deadline_exceeded', 504], [5, 'not_found', 404],
      [6, 'already_exists', 409], [7, 'permission_denied', 403], [8, 'resource_exhausted', 429], [9, 'failed_precondition', 400],
      [10, 'aborted', 409], [11, 'out_of_range', 400], [12, 'unimplemented', 501], [13, 'internal', 500], [14, 'unavailable', 503],
      [15, 'data_loss', 500], [16, 'unauthenticated', 401],
    ];
    for (const [code, name, status] of expected) assert.deepEqual([connectCodeName(code), connectHttpStatus(code)], [name, status], `code ${code}`);
  });

  it('the error JSON: code, percent-decoded message, details; the end of a stream with its metadata', () => {
    const end = grpcEnd({ 'grpc-status': '9', 'grpc-message': 'not%20now %E2%9C%93' });
    assert.deepEqual(connectError(end), { code: 'failed_precondition', message: 'not now ✓' });
    assert.deepEqual(JSON.parse(endStreamMessage({ 'grpc-status': '0', 'x-cost': '3', 'x-tags': ['a', 'b'], 'content-type': 'application/grpc' }).toString()), { metadata: { 'x-cost': ['3'], 'x-tags': ['a', 'b'] } });
    assert.deepEqual(grpcEnd({}).code, 2, 'no grpc-status is UNKNOWN');
  });

  it('details of a google.rpc.Status; nothing from bytes that do not parse', () => {
    const any = Buffer.concat([Buffer.from([0x0a, 0x0d]), Buffer.from('x.test/a.Info'), Buffer.from([0x12, 0x02, 0x08, 0x07])]);
    const status = Buffer.concat([Buffer.from([0x08, 0x05, 0x12, 0x01, 0x6d, 0x1a, any.length]), any]);
    assert.deepEqual(decodeStatusDetails(status.toString('base64')), [{ type: 'a.Info', value: Buffer.from([0x08, 0x07]) }]);
    assert.deepEqual(decodeStatusDetails(Buffer.from([0x1a, 0x7f, 0x01]).toString('base64')), []);
  });
});

describe('envelopes a chunk at a time', () => {
  it('reassembles messages cut anywhere, and refuses one over the limit at its prefix', () => {
    const body = Buffer.concat([envelope(0, Buffer.from('first')), envelope(1, Buffer.alloc(0)), envelope(2, Buffer.from('third one'))]);
    for (let cut = 0; cut <= body.length; cut++) {
      const reader = new EnvelopeReader(100);
      const got = [...(reader.push(body.subarray(0, cut)) as []), ...(reader.push(body.subarray(cut)) as [])] as { flags: number; message: Buffer }[];
      assert.deepEqual(got.map((e) => [e.flags, e.message.toString()]), [[0, 'first'], [1, ''], [2, 'third one']], `cut at ${cut}`);
      assert.equal(reader.partial, false);
    }
    const reader = new EnvelopeReader(4);
    assert.equal(reader.push(envelope(0, Buffer.from('too long'))), 8);
    assert.equal(reader.push(Buffer.from('more')), 8, 'nothing more is read');
  });
});
