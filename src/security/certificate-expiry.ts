/**
 * Every certificate the proxy has loaded, with the time left until it
 * expires: for logs now, and for the admin API and metrics later.
 */
import type { Logger } from 'pino';
import type { ConfigSecrets } from '../config/config-files.ts';
import { parseCertificates } from '../config/pem.ts';
import type { SwitchyardConfig } from '../config/schema.ts';

export interface LoadedCertificate {
  /** `listeners[public].tls.cert_file`, `clusters[orders].tls.ca_file`, … */
  readonly source: string;
  readonly file: string | undefined;
  readonly subject: string;
  /** Uppercase hex, as X509Certificate#serialNumber. */
  readonly serialNumber: string;
  readonly notAfter: Date;
  /** Negative once expired. */
  readonly secondsUntilExpiry: number;
}

/** Lists the certificates in `secrets` (chains and CA bundles included), soonest expiry first. Pure apart from `now`. */
export function loadedCertificates(config: SwitchyardConfig, secrets: ConfigSecrets, now = Date.now()): LoadedCertificate[] {
  const out: LoadedCertificate[] = [];
  const add = (source: string, file: string | undefined, pem: Buffer | undefined) => {
    if (!pem) return;
    for (const certificate of parseCertificates(pem)) {
      const notAfter = new Date(certificate.validTo);
      out.push({ source, file, subject: certificate.subject.replace(/\n/g, ', '), serialNumber: certificate.serialNumber, notAfter, secondsUntilExpiry: Math.floor((notAfter.getTime() - now) / 1000) });
    }
  };
  for (const listener of config.listeners) {
    const files = secrets.listeners.get(listener.name);
    add(`listeners[${listener.name}].tls.cert_file`, listener.tls?.cert_file, files?.cert);
    add(`listeners[${listener.name}].tls.client_ca_file`, listener.tls?.client_ca_file, files?.clientCa);
  }
  for (const cluster of config.clusters) {
    const files = secrets.clusters.get(cluster.name);
    add(`clusters[${cluster.name}].tls.ca_file`, cluster.tls?.ca_file, files?.ca);
    add(`clusters[${cluster.name}].tls.cert_file`, cluster.tls?.cert_file, files?.cert);
  }
  add('xds.tls.ca_file', config.xds?.tls.ca_file, secrets.xds?.ca);
  add('xds.tls.cert_file', config.xds?.tls.cert_file, secrets.xds?.cert);
  return out.sort((a, b) => a.secondsUntilExpiry - b.secondsUntilExpiry);
}

/** Logs a warning (an error once expired) for each certificate expiring within `warningMs`. Returns those certificates. */
export function warnExpiring(certificates: readonly LoadedCertificate[], warningMs: number, logger: Logger): LoadedCertificate[] {
  const soon = certificates.filter((c) => c.secondsUntilExpiry * 1000 < warningMs);
  for (const c of soon) {
    const fields = { source: c.source, file: c.file, subject: c.subject, serial: c.serialNumber, not_after: c.notAfter.toISOString(), seconds_left: c.secondsUntilExpiry };
    if (c.secondsUntilExpiry <= 0) logger.error(fields, 'certificate has expired');
    else logger.warn(fields, 'certificate expires soon');
  }
  return soon;
}
