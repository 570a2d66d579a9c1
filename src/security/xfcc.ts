/**
 * x-forwarded-client-cert, in Envoy's format: `By=<our URI SAN>;Hash=<sha256
 * of the client certificate DER>;Subject="…";URI=…;DNS=…`. A client can never
 * set it: whatever it sends is removed before the RPC is forwarded.
 */
import type { HeaderMap } from '../grpc/streams.ts';
import type { TLSSocket } from 'node:tls';
import type { CallerIdentity } from './identity.ts';
import { parseSubjectAltNames } from './identity.ts';

export const XFCC_HEADER = 'x-forwarded-client-cert';

/** Headers that only the proxy may set; removed from every incoming RPC (x-spiffe-id: some services read it as the caller's identity). */
export const IDENTITY_HEADERS: readonly string[] = [XFCC_HEADER, 'x-spiffe-id'];

/** Removes every identity header a client sent. */
export function stripIdentityHeaders(headers: HeaderMap): void {
  for (const name of IDENTITY_HEADERS) if (headers[name] !== undefined) headers[name] = undefined;
}

/** The header value for `caller`, or undefined for an anonymous caller. `socket` gives the proxy's own certificate for By=. */
export function formatXfcc(caller: CallerIdentity, socket: TLSSocket | undefined): string | undefined {
  if (!caller.authenticated || caller.certificateSha256 === undefined) return undefined;
  const parts: string[] = [];
  const by = ownUri(socket);
  if (by !== undefined) parts.push(`By=${quote(by)}`);
  parts.push(`Hash=${caller.certificateSha256}`);
  if (caller.commonName !== undefined) parts.push(`Subject="CN=${caller.commonName.replace(/["\\]/g, '\\$&')}"`);
  for (const uri of caller.uris) parts.push(`URI=${quote(uri)}`);
  for (const dns of caller.dnsNames) parts.push(`DNS=${quote(dns)}`);
  return parts.join(';');
}

function ownUri(socket: TLSSocket | undefined): string | undefined {
  const own = typeof socket?.getCertificate === 'function' ? socket.getCertificate() : null;
  if (!own || !('subjectaltname' in own)) return undefined;
  return parseSubjectAltNames((own as { subjectaltname?: string }).subjectaltname).find((san) => san.type === 'URI')?.value;
}

/** Envoy quotes a value holding `,`, `;` or `=`. */
function quote(value: string): string {
  return /[,;="]/.test(value) ? `"${value.replace(/["\\]/g, '\\$&')}"` : value;
}
