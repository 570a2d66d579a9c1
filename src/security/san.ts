/**
 * Upstream identity by subject alternative name: a backend certificate must
 * carry one of the configured SANs. Used instead of the hostname check, so an
 * address now held by another service (a recycled pod IP with a valid
 * certificate from the same CA) is refused.
 */
import type { PeerCertificate } from 'node:tls';
import { parseSubjectAltNames } from './identity.ts';

/**
 * A checkServerIdentity for tls.connect: undefined when the certificate
 * carries one of `expected` (`spiffe://…`, `uri:…`, `dns:…`, `ip:…`), else an Error naming what it has.
 */
export function subjectAltNameChecker(expected: readonly string[]) {
  const wanted = new Set(expected.map(normalize));
  return (_host: string, certificate: PeerCertificate): Error | undefined => {
    const sans = parseSubjectAltNames(certificate.subjectaltname).map((san) => normalize(`${kindOf(san.type)}:${san.value}`));
    if (sans.some((san) => wanted.has(san))) return undefined;
    const error = new Error(`backend certificate SANs [${sans.join(', ') || 'none'}] match none of verify_subject_alt_names [${expected.join(', ')}]`);
    (error as NodeJS.ErrnoException).code = 'SWITCHYARD_UPSTREAM_SAN_MISMATCH';
    return error;
  };
}

function kindOf(type: string): string {
  return type === 'IP Address' ? 'ip' : type.toLowerCase();
}

/** `spiffe://x` means `uri:spiffe://x`; DNS names compare case-insensitively. */
function normalize(san: string): string {
  if (san.startsWith('spiffe://')) return `uri:${san}`;
  const colon = san.indexOf(':');
  const kind = san.slice(0, colon).toLowerCase();
  const value = san.slice(colon + 1);
  return `${kind}:${kind === 'dns' ? value.toLowerCase() : value}`;
}
