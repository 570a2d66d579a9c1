/**
 * The `:path` of a gRPC call is `/{service}/{method}` (gRPC over HTTP/2 spec),
 * where the service is a dot-separated, fully qualified name and the method an
 * identifier. Anything else (a trailing slash, an empty or `..` segment, a query,
 * a fragment, percent-encoding, a NUL) is refused before authorization and
 * routing: a backend that normalises paths could otherwise serve a method that
 * the proxy's rules never saw under that name (Envoy CVE-2019-9901, Istio
 * CVE-2021-31920).
 *
 * Identifiers are protobuf's (letters, digits, `_`), plus `-`, which other IDLs
 * use and which no server normalises away.
 */
const IDENTIFIER = '[A-Za-z_][A-Za-z0-9_-]*';
const GRPC_PATH = new RegExp(`^/${IDENTIFIER}(?:\\.${IDENTIFIER})*/${IDENTIFIER}$`);

/** True when `path` is a well-formed gRPC method path, `/package.Service/Method`. */
export function isGrpcMethodPath(path: string): boolean {
  return GRPC_PATH.test(path);
}
