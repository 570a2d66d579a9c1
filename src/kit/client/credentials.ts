/**
 * mTLS channel credentials from files, re-read by grpc-js's own FileWatcherCertificateProvider, so a
 * rotated certificate is used by every connection opened after the rotation; and the server identity
 * check that refuses a recycled address serving another service's (valid) certificate.
 */
import * as grpc from '@grpc/grpc-js';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { CLIENT_DEFAULTS, requireNumber, type ClientTlsOptions } from './options.ts';
import { LastGoodCertificateProvider } from './last-good-provider.ts';

/** Plaintext without `tls`; else credentials that watch the files. */
export function createChannelCredentials(tls: ClientTlsOptions | undefined): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  if (!tls.caFile) throw new Error('client kit: tls.caFile is required');
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new Error('client kit: tls.certFile and tls.keyFile go together');
  }
  const refreshIntervalMs = requireNumber('tls.refreshIntervalMs', tls.refreshIntervalMs ?? CLIENT_DEFAULTS.tlsRefreshIntervalMs, 10);
  const files = new grpc.experimental.FileWatcherCertificateProvider({
    caCertificateFile: tls.caFile,
    ...(tls.certFile !== undefined ? { certificateFile: tls.certFile, privateKeyFile: tls.keyFile } : {}),
    refreshIntervalMs,
  });
  const provider = new LastGoodCertificateProvider(files);
  const verify = tls.serverName ? { checkServerIdentity: serverIdentityChecker(tls.serverName) } : {};
  return grpc.experimental.createCertificateProviderChannelCredentials(provider, tls.certFile !== undefined ? provider : null, verify);
}

/**
 * A checkServerIdentity that accepts only a certificate for `expected`: a `spiffe://…` URI SAN, or a
 * DNS name matched by Node's hostname rules. The host grpc-js passes (the target's) is ignored.
 */
export function serverIdentityChecker(expected: string): (host: string, certificate: PeerCertificate) => Error | undefined {
  if (/^spiffe:\/\//i.test(expected)) {
    return (_host, certificate) => {
      const uris = uriSans(certificate.subjectaltname);
      if (uris.includes(expected)) return undefined;
      const error = new Error(`server certificate URI SANs [${uris.join(', ') || 'none'}] do not include ${expected}`);
      (error as NodeJS.ErrnoException).code = 'ERR_TLS_CERT_ALTNAME_INVALID';
      return error;
    };
  }
  return (_host, certificate) => checkServerIdentity(expected, certificate);
}

function uriSans(text: string | undefined): string[] {
  if (!text) return [];
  return [...text.matchAll(/(?:^|, )URI:("(?:[^"\\]|\\.)*"|[^,]*)/g)].map((match) => {
    const raw = match[1]!;
    try {
      return raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
    } catch {
      return raw;
    }
  });
}

