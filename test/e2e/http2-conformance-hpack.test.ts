/**
 * HPACK conformance (RFC 7541 §2–§6) of the proxy's request decoding, after
 * h2spec's hpack and generic/5 sections: header blocks written byte by byte
 * against a real Switchyard listener in front of a grpc-js Echo backend.
 * Every representation is served (the backend echoes the metadata it saw, so
 * each case checks the field arrived as sent); every decoding error is a
 * connection error of type COMPRESSION_ERROR (RFC 9113 §4.3). Huffman strings
 * are the RFC's own Appendix C examples.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startEchoSetup, type EchoSetup } from '../helpers/harness.ts';
import {
  continuationFrame, dataFrame, echoRequest, expectConnectionError, expectStreamError, grpcMessage, grpcStatus, handshake, headersFrame, readAnswer,
} from '../helpers/h2-conformance.ts';
import { ErrorCode, headerBlock, hpackInteger, hpackString, rstStream } from '../helpers/raw-h2.ts';
import type { RawConnection } from '../helpers/raw-h2.ts';

/** RFC 7541 C.4.1: "www.example.com", Huffman-coded. */
const HUFFMAN_WWW_EXAMPLE_COM = Buffer.from('f1e3c2e5f23a6ba0ab90f4ff', 'hex');
/** RFC 7541 C.4.3: "custom-key" and "custom-value", Huffman-coded. */
const HUFFMAN_CUSTOM_KEY = Buffer.from('25a849e95ba97d7f', 'hex');
const HUFFMAN_CUSTOM_VALUE = Buffer.from('25a849e95bb8e8b4bf', 'hex');

/** A Huffman-coded string literal: H bit, length, bytes (§5.2). */
function huffmanString(coded: Buffer): Buffer {
  return Buffer.concat([Buffer.from(hpackInteger(coded.length, 7, 0x80)), coded]);
}

/** Static-table indexes (Appendix A) the cases use. */
const INDEX = { AUTHORITY: 1, METHOD_POST: 3, PATH: 4, SCHEME_HTTP: 6, CONTENT_TYPE: 31, USER_AGENT: 58 } as const;

/** :method POST and :scheme http as indexed fields, :path as a literal with an indexed name: the start of every request here. */
function pseudoFields(): Buffer {
  return Buffer.concat([
    Buffer.from(hpackInteger(INDEX.METHOD_POST, 7, 0x80)),
    Buffer.from(hpackInteger(INDEX.SCHEME_HTTP, 7, 0x80)),
    Buffer.from(hpackInteger(INDEX.PATH, 4, 0x00)),
    hpackString('/switchyard.demo.v1.Echo/Unary'),
  ]);
}

/** The regular fields gRPC needs, as literals. */
function grpcFields(): Buffer {
  return headerBlock([['content-type', 'application/grpc'], ['te', 'trailers']]);
}

/** A unary request on `streamId` whose header block is `block`. */
function call(streamId: number, block: Buffer): Buffer {
  return Buffer.concat([headersFrame(streamId, block), dataFrame(streamId, grpcMessage(echoRequest()), true)]);
}

/** The metadata lines the backend echoed ("name=value"), as one string. */
async function echoedMetadata(connection: RawConnection, streamId: number): Promise<string> {
  const answer = await readAnswer(connection, streamId);
  assert.equal(grpcStatus(answer), 0, `stream ${streamId} answered with grpc-status ${answer.trailers.get('grpc-status')} ${answer.trailers.get('grpc-message') ?? ''}`);
  return answer.body.toString('latin1');
}

describe('HTTP/2 conformance: HPACK (RFC 7541 §2–§6)', () => {
  let setup: EchoSetup;
  let port: number;

  before(async () => {
    setup = await startEchoSetup(1);
    port = setup.proxy.port;
  });

  after(() => setup.close());

  /** A block made of the usual fields plus `fields` after them fails to decode: COMPRESSION_ERROR. */
  async function expectDecodingError(block: Buffer): Promise<void> {
    const connection = await handshake(port);
    connection.send(call(1, block));
    await expectConnectionError(connection, ErrorCode.COMPRESSION_ERROR);
  }

  describe('§6 binary format: every representation is decoded (h2spec generic/5)', () => {
    it('6.1/1: indexed fields from the static table', async () => {
      const connection = await handshake(port);
      const block = Buffer.concat([pseudoFields(), grpcFields(), Buffer.from(hpackInteger(INDEX.USER_AGENT, 4, 0x00)), hpackString('static-user-agent')]);
      connection.send(call(1, block));
      assert.match(await echoedMetadata(connection, 1), /user-agent=static-user-agent/);
      connection.close();
    });

    it('6.2.1/1: literal with incremental indexing, indexed name', async () => {
      const connection = await handshake(port);
      const block = Buffer.concat([pseudoFields(), Buffer.from(hpackInteger(INDEX.AUTHORITY, 6, 0x40)), hpackString('indexed.example'), grpcFields()]);
      connection.send(call(1, block));
      await echoedMetadata(connection, 1);
      connection.close();
    });

    it('6.2.1/2: literal with incremental indexing, indexed name, Huffman-coded value', async () => {
      const connection = await handshake(port);
      const block = Buffer.concat([pseudoFields(), Buffer.from(hpackInteger(INDEX.AUTHORITY, 6, 0x40)), huffmanString(HUFFMAN_WWW_EXAMPLE_COM), grpcFields()]);
      connection.send(call(1, block));
      await echoedMetadata(connection, 1);
      connection.close();
    });

    it('6.2.1/3: literal with incremental indexing, new name', async () => {
      const connection = await handshake(port);
      const block = Buffer.concat([pseudoFields(), grpcFields(), Buffer.from([0x40]), hpackString('x-incremental'), hpackString('new-name')]);
      connection.send(call(1, block));
      assert.match(await echoedMetadata(connection, 1), /x-incremental=new-name/);
      connection.close();
    });

    it('6.2.1/4: literal with incremental indexing, new name, both Huffman-coded', async () => {
      const connection = await handshake(port);
      const block = Buffer.concat([pseudoFields(), grpcFields(), Buffer.from([0x40]), huffmanString(HUFFMAN_CUSTOM_KEY), huffmanString(HUFFMAN_CUSTOM_VALUE)]);
      connection.send(call(1, block));
      assert.match(await echoedMetadata(connection, 1), /custom-key=custom-value/);
      connection.close();
    });

    it('6.2.2/1: literal without indexing, indexed name and new name, plain and Huffman-coded', async () => {
      const connection = await handshake(port);
      const block = Buffer.concat([
        pseudoFields(), grpcFields(),
        Buffer.from(hpackInteger(INDEX.USER_AGENT, 4, 0x00)), huffmanString(HUFFMAN_CUSTOM_VALUE),
        Buffer.from([0x00]), huffmanString(HUFFMAN_CUSTOM_KEY), hpackString('plain'),
      ]);
      connection.send(call(1, block));
      const echoed = await echoedMetadata(connection, 1);
      assert.match(echoed, /user-agent=custom-value/);
      assert.match(echoed, /custom-key=plain/);
      connection.close();
    });

    it('6.2.3/1: literal never indexed, indexed name and new name, plain and Huffman-coded', async () => {
      const connection = await handshake(port);
      const block = Buffer.concat([
        pseudoFields(), grpcFields(),
        Buffer.from(hpackInteger(INDEX.USER_AGENT, 4, 0x10)), hpackString('never-indexed-agent'),
        Buffer.from([0x10]), huffmanString(HUFFMAN_CUSTOM_KEY), huffmanString(HUFFMAN_CUSTOM_VALUE),
      ]);
      connection.send(call(1, block));
      const echoed = await echoedMetadata(connection, 1);
      assert.match(echoed, /user-agent=never-indexed-agent/);
      assert.match(echoed, /custom-key=custom-value/);
      connection.close();
    });

    it('6.3/1: dynamic table size updates at the start of a block, one or two of them', async () => {
      const connection = await handshake(port);
      // 0, then 4096 (SETTINGS_HEADER_TABLE_SIZE's default): a 5-bit-prefix integer.
      const updates = Buffer.concat([Buffer.from(hpackInteger(0, 5, 0x20)), Buffer.from(hpackInteger(4096, 5, 0x20))]);
      connection.send(call(1, Buffer.concat([Buffer.from(hpackInteger(2048, 5, 0x20)), pseudoFields(), grpcFields()])));
      await echoedMetadata(connection, 1);
      connection.send(call(3, Buffer.concat([updates, pseudoFields(), grpcFields()])));
      await echoedMetadata(connection, 3);
      connection.close();
    });
  });

  describe('§2.3 and §4: the dynamic table', () => {
    it('2.3.2/1: an entry added by one block is referenced by the next (index 62)', async () => {
      const connection = await handshake(port);
      connection.send(call(1, Buffer.concat([pseudoFields(), grpcFields(), Buffer.from([0x40]), hpackString('x-remembered'), hpackString('from-block-1')])));
      await echoedMetadata(connection, 1);
      connection.send(call(3, Buffer.concat([pseudoFields(), grpcFields(), Buffer.from(hpackInteger(62, 7, 0x80))])));
      assert.match(await echoedMetadata(connection, 3), /x-remembered=from-block-1/);
      connection.close();
    });

    it('2.3.3/1: the newest entry is 62, older ones follow; a name can be taken from an entry', async () => {
      const connection = await handshake(port);
      const adds = Buffer.concat([Buffer.from([0x40]), hpackString('x-older'), hpackString('a'), Buffer.from([0x40]), hpackString('x-newer'), hpackString('b')]);
      connection.send(call(1, Buffer.concat([pseudoFields(), grpcFields(), adds])));
      await echoedMetadata(connection, 1);
      // 63 is x-older: a literal with that name and a new value, then the two entries by index.
      const uses = Buffer.concat([Buffer.from(hpackInteger(63, 4, 0x00)), hpackString('c'), Buffer.from(hpackInteger(62, 7, 0x80))]);
      connection.send(call(3, Buffer.concat([pseudoFields(), grpcFields(), uses])));
      const echoed = await echoedMetadata(connection, 3);
      assert.match(echoed, /x-older=c/);
      assert.match(echoed, /x-newer=b/);
      connection.close();
    });

    it('2.3/3: a header block on a stream that is then reset still updates the dynamic table', async () => {
      const connection = await handshake(port);
      const adds = Buffer.concat([pseudoFields(), grpcFields(), Buffer.from([0x40]), hpackString('x-kept'), hpackString('after-reset')]);
      connection.send(Buffer.concat([headersFrame(1, adds), rstStream(1, ErrorCode.CANCEL)]));
      connection.send(call(3, Buffer.concat([pseudoFields(), grpcFields(), Buffer.from(hpackInteger(62, 7, 0x80))])));
      assert.match(await echoedMetadata(connection, 3), /x-kept=after-reset/);
      connection.close();
    });

    it('2.3/4: a header block the server refuses as malformed still updates the dynamic table', async () => {
      const connection = await handshake(port);
      // An upper-case name makes the request malformed after the block has been decoded.
      const adds = Buffer.concat([pseudoFields(), grpcFields(), Buffer.from([0x40]), hpackString('x-kept'), hpackString('after-refusal'), headerBlock([['X-Bad', 'upper']])]);
      connection.send(call(1, adds));
      await expectStreamError(connection, 1, ErrorCode.PROTOCOL_ERROR);
      connection.send(call(3, Buffer.concat([pseudoFields(), grpcFields(), Buffer.from(hpackInteger(62, 7, 0x80))])));
      assert.match(await echoedMetadata(connection, 3), /x-kept=after-refusal/);
      connection.close();
    });

    it('4.3/1: a size update to 0 evicts every entry: a reference to one after it is a COMPRESSION_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(call(1, Buffer.concat([pseudoFields(), grpcFields(), Buffer.from([0x40]), hpackString('x-evicted'), hpackString('soon')])));
      await echoedMetadata(connection, 1);
      connection.send(call(3, Buffer.concat([Buffer.from(hpackInteger(0, 5, 0x20)), Buffer.from(hpackInteger(4096, 5, 0x20)), pseudoFields(), grpcFields(), Buffer.from(hpackInteger(62, 7, 0x80))])));
      await expectConnectionError(connection, ErrorCode.COMPRESSION_ERROR);
    });

    it('4.4/1: adding entries past the table size evicts the oldest', async () => {
      const connection = await handshake(port);
      // Entries of 32 + 7 + 2,000 bytes: two fit in a 4,096-byte table, the third evicts the first.
      const big = (name: string) => Buffer.concat([Buffer.from([0x40]), hpackString(name), hpackString('v'.repeat(2_000))]);
      const third = Buffer.concat([Buffer.from([0x40]), hpackString('x-third'), hpackString('w'.repeat(2_000))]);
      connection.send(call(1, Buffer.concat([pseudoFields(), grpcFields(), big('x-first'), big('x-secnd'), third])));
      await echoedMetadata(connection, 1);
      // x-third is 62, x-secnd 63; x-first was evicted, so 64 does not exist.
      connection.send(call(3, Buffer.concat([pseudoFields(), grpcFields(), Buffer.from(hpackInteger(63, 7, 0x80))])));
      assert.match(await echoedMetadata(connection, 3), /x-secnd=v{2000}/);
      connection.send(call(5, Buffer.concat([pseudoFields(), grpcFields(), Buffer.from(hpackInteger(64, 7, 0x80))])));
      await expectConnectionError(connection, ErrorCode.COMPRESSION_ERROR);
    });

    it('4.4/2: an entry larger than the whole table empties it and is not added', async () => {
      const connection = await handshake(port);
      const small = Buffer.concat([Buffer.from([0x40]), hpackString('x-small'), hpackString('1')]);
      const huge = Buffer.concat([Buffer.from([0x40]), hpackString('x-huge'), hpackString('h'.repeat(4_100))]);
      connection.send(call(1, Buffer.concat([pseudoFields(), grpcFields(), small, huge])));
      await echoedMetadata(connection, 1);
      connection.send(call(3, Buffer.concat([pseudoFields(), grpcFields(), Buffer.from(hpackInteger(62, 7, 0x80))])));
      await expectConnectionError(connection, ErrorCode.COMPRESSION_ERROR);
    });
  });

  describe('decoding errors are connection errors of type COMPRESSION_ERROR (RFC 9113 §4.3)', () => {
    it('2.3.3/2: an indexed field past the end of the dynamic table (h2spec hpack 2.3.3/1)', async () => {
      await expectDecodingError(Buffer.concat([pseudoFields(), grpcFields(), Buffer.from(hpackInteger(62, 7, 0x80))]));
    });

    it('2.3.3/3: a literal whose name index is past the end of the dynamic table (h2spec hpack 2.3.3/2)', async () => {
      await expectDecodingError(Buffer.concat([pseudoFields(), grpcFields(), Buffer.from(hpackInteger(70, 6, 0x40)), hpackString('value')]));
    });

    it('4.2/1: a size update larger than SETTINGS_HEADER_TABLE_SIZE (4,096)', async () => {
      await expectDecodingError(Buffer.concat([Buffer.from(hpackInteger(4097, 5, 0x20)), pseudoFields(), grpcFields()]));
    });

    it('5.1/1: an integer too large for any field (past 2^31-1)', async () => {
      await expectDecodingError(Buffer.concat([pseudoFields(), grpcFields(), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f])]));
    });

    it('5.1/2: an integer that ends with the block', async () => {
      await expectDecodingError(Buffer.concat([pseudoFields(), grpcFields(), Buffer.from([0xff, 0x80])]));
    });

    it('5.1/3: an integer padded with a long run of zero continuation bytes', async () => {
      // 0x3f then 200 bytes of 0x80 and a final 0x00: a size update whose value never grows but whose
      // shift does; nothing in HPACK needs more than 5 continuation bytes.
      const endless = Buffer.concat([Buffer.from([0x3f]), Buffer.alloc(200, 0x80), Buffer.from([0x00])]);
      await expectDecodingError(Buffer.concat([endless, pseudoFields(), grpcFields()]));
    });

    it('5.2/1: a Huffman string that contains EOS', async () => {
      await expectDecodingError(Buffer.concat([pseudoFields(), grpcFields(), Buffer.from([0x00]), hpackString('x-eos'), huffmanString(Buffer.from([0xff, 0xff, 0xff, 0xff]))]));
    });

    it('5.2/2: a Huffman string padded with more than 7 bits', async () => {
      // 'a' (00011) then 11 one-bits.
      await expectDecodingError(Buffer.concat([pseudoFields(), grpcFields(), Buffer.from([0x00]), hpackString('x-pad'), huffmanString(Buffer.from([0x1f, 0xff]))]));
    });

    it('5.2/3: a Huffman string padded with zeros rather than the prefix of EOS', async () => {
      // 'a' (00011) then 000.
      await expectDecodingError(Buffer.concat([pseudoFields(), grpcFields(), Buffer.from([0x00]), hpackString('x-pad'), huffmanString(Buffer.from([0x18]))]));
    });

    it('5.2/4: a string literal longer than the rest of the block', async () => {
      await expectDecodingError(Buffer.concat([pseudoFields(), grpcFields(), Buffer.from([0x00]), hpackString('x-short'), Buffer.from([0x10]), Buffer.from('abc')]));
    });

    it('6.1/1: an indexed field with index 0', async () => {
      await expectDecodingError(Buffer.concat([pseudoFields(), Buffer.from([0x80]), grpcFields()]));
    });

    it('6.3/1: a size update at the end of a block', async () => {
      await expectDecodingError(Buffer.concat([pseudoFields(), grpcFields(), Buffer.from(hpackInteger(1, 5, 0x20))]));
    });

    it('6.3/2: a size update after the first field', async () => {
      await expectDecodingError(Buffer.concat([Buffer.from(hpackInteger(INDEX.METHOD_POST, 7, 0x80)), Buffer.from(hpackInteger(4096, 5, 0x20)), pseudoFields().subarray(1), grpcFields()]));
    });

    it('6.3/3: a decoding error in a block split over CONTINUATION frames is still a COMPRESSION_ERROR', async () => {
      const connection = await handshake(port);
      const block = Buffer.concat([pseudoFields(), grpcFields(), Buffer.from([0x80])]);
      connection.send(Buffer.concat([headersFrame(1, block.subarray(0, 20), { endHeaders: false }), continuationFrame(1, block.subarray(20), true)]));
      await expectConnectionError(connection, ErrorCode.COMPRESSION_ERROR);
    });
  });
});
