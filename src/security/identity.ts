/**
 * Who is calling: read from the verified client certificate of a downstream
 * connection, once per connection (cached on the session), never per RPC.
 */
import { cryptoModule } from '../builtins.ts';
import type { DownstreamConnection } from '../grpc/streams.ts';
import type { PeerCertificate, TLSSocket } from 'node:tls';

export interface CallerIdentity {
  /** False for plaintext connections and TLS connections without a (verified) client certificate. */
  readonly authenticated: boolean;
  /** The URI SAN starting with `spiffe://`, if any. */
  readonly spiffeId: string | undefined;
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  /** Subject common name. */
  readonly commonName: string | undefined;
  /** SHA-256 of the certificate's DER, lowercase hex (the Hash of x-forwarded-client-cert). */
  readonly certificateSha256: string | undefined;
  /** How logs and error messages name the caller: the SPIFFE ID, else `dns:…`, else `cn:…`, else `anonymous`. */
  readonly label: string;
}

export const ANONYMOUS: CallerIdentity = Object.freeze({
  authenticated: false,
  spiffeId: undefined,
  uris: [],
  dnsNames: [],
  commonName: undefined,
  certificateSha256: undefined,
  label: 'anonymous',
});

const cache = new WeakMap<object, CallerIdentity>();

/** The identity of the peer of `session`; computed on first use and cached for the session's life. */
export function callerIdentity(connection: DownstreamConnection | undefined): CallerIdentity {
  if (!connection) return ANONYMOUS;
  let identity = cache.get(connection);
  if (!identity) {
    identity = identityOfSocket(connection.socket as TLSSocket | undefined);
    cache.set(connection, identity);
  }
  return identity;
}

function identityOfSocket(socket: TLSSocket | undefined): CallerIdentity {
  // `authorized` is only ever true for a TLS socket whose peer certificate verified against the client CA.
  if (!socket || typeof socket.getPeerCertificate !== 'function' || !socket.authorized) return ANONYMOUS;
  const certificate = socket.getPeerCertificate();
  if (!certificate || !certificate.raw) return ANONYMOUS;
  return identityOfCertificate(certificate);
}

export function identityOfCertificate(certificate: PeerCertificate): CallerIdentity {
  const sans = parseSubjectAltNames(certificate.subjectaltname);
  const uris = sans.filter((san) => san.type === 'URI').map((san) => san.value);
  const dnsNames = sans.filter((san) => san.type === 'DNS').map((san) => san.value);
  const spiffeId = uris.find((uri) => uri.startsWith('spiffe://'));
  const cn = certificate.subject?.CN;
  const commonName = Array.isArray(cn) ? cn[0] : cn;
  const label = spiffeId ?? (dnsNames[0] !== undefined ? `dns:${dnsNames[0]}` : commonName !== undefined ? `cn:${commonName}` : 'authenticated');
  return {
    authenticated: true,
    spiffeId,
    uris,
    dnsNames,
    commonName,
    certificateSha256: cryptoModule().createHash('sha256').update(certificate.raw).digest('hex'),
    label,
  };
}

export interface SubjectAltName {
  /** As OpenSSL prints it: DNS, URI, IP Address, email, … */
  readonly type: string;
  readonly value: string;
}

/**
 * Node's `subjectaltname` string: `DNS:a, URI:spiffe://x, IP Address:127.0.0.1`.
 * Values with a comma or quote are JSON-quoted (Node ≥ 17), so they are unquoted here.
 */
export function parseSubjectAltNames(text: string | undefined): SubjectAltName[] {
  if (!text) return [];
  const out: SubjectAltName[] = [];
  const entry = /(?:^|, )([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)/g;
  for (const match of text.matchAll(entry)) {
    const raw = match[2]!;
    let value = raw;
    if (raw.startsWith('"')) {
      try {
        value = JSON.parse(raw) as string;
      } catch {
        // Leave it quoted: it will not match anything configured, which is the safe outcome.
      }
    }
    out.push({ type: match[1]!, value });
  }
  return out;
}
