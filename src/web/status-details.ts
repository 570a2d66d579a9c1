/**
 * The details of a rich gRPC error: `grpc-status-details-bin` holds a
 * google.rpc.Status (code = 1, message = 2, repeated google.protobuf.Any
 * details = 3, each type_url = 1 and value = 2), which Connect carries as
 * `details: [{type, value}]`. Read with the protobuf wire format directly: two
 * messages of two fields do not warrant a schema. Malformed input gives no
 * details rather than an error: the status itself still reaches the client.
 */

export interface StatusDetail {
  /** The fully-qualified message name (the type URL without its prefix). */
  readonly type: string;
  readonly value: Buffer;
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

/** The Any messages of a base64 google.rpc.Status; [] when there are none or it does not parse. */
export function decodeStatusDetails(base64: string): StatusDetail[] {
  const status = Buffer.from(base64, 'base64');
  const details: StatusDetail[] = [];
  const ok = readFields(status, (field, value) => {
    if (field !== 3 || !Buffer.isBuffer(value)) return true;
    let typeUrl = '';
    let payload: Buffer = Buffer.alloc(0);
    const anyOk = readFields(value, (anyField, anyValue) => {
      if (anyField === 1 && Buffer.isBuffer(anyValue)) typeUrl = anyValue.toString('utf8');
      else if (anyField === 2 && Buffer.isBuffer(anyValue)) payload = anyValue;
      return true;
    });
    if (!anyOk) return false;
    details.push({ type: typeUrl.slice(typeUrl.lastIndexOf('/') + 1), value: payload });
    return true;
  });
  return ok ? details : [];
}

/** Calls `visit` with each field's number and its value (a number for varints, a Buffer for length-delimited); false when malformed. */
function readFields(bytes: Buffer, visit: (field: number, value: number | Buffer | undefined) => boolean): boolean {
  let offset = 0;
  const varint = (): number | undefined => {
    let result = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      if (offset >= bytes.length) return undefined;
      const byte = bytes[offset++]!;
      // Values past 2^53 lose precision; no field read here is that large.
      result += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return result;
    }
    return undefined;
  };
  while (offset < bytes.length) {
    const key = varint();
    if (key === undefined) return false;
    const field = Math.floor(key / 8);
    const wire = key % 8;
    let value: number | Buffer | undefined;
    if (wire === WIRE_VARINT) {
      value = varint();
      if (value === undefined) return false;
    } else if (wire === WIRE_LEN) {
      const length = varint();
      if (length === undefined || offset + length > bytes.length) return false;
      value = bytes.subarray(offset, offset + length);
      offset += length;
    } else if (wire === WIRE_I64 || wire === WIRE_I32) {
      offset += wire === WIRE_I64 ? 8 : 4;
      if (offset > bytes.length) return false;
    } else {
      return false;
    }
    if (!visit(field, value)) return false;
  }
  return true;
}
