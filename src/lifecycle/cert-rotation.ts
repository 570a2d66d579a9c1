/**
 * Certificate rotation without downtime, always on, whatever `watch_config`
 * says: when a TLS file the running config names changes (an edit, a rename,
 * a Kubernetes Secret's `..data` symlink swap), every TLS file is read and
 * checked again and applied through Switchyard.reload with the same config.
 * Listeners take new certificates in place (new handshakes get them, open
 * connections carry on); clusters whose certificates changed are replaced
 * once their in-flight RPCs finish. A file that fails to load keeps the old
 * certificates in force and logs an error.
 */
import type { Logger } from 'pino';
import { resolveConfig, type ConfigSecrets } from '../config/config-files.ts';
import type { SwitchyardConfig } from '../config/schema.ts';
import { DEBOUNCE_MS, watchConfigFiles, type ConfigWatcher } from './config-watcher.ts';
import { loadedCertificates, warnExpiring } from '../security/certificate-expiry.ts';

/** What rotation needs of a running proxy (Switchyard satisfies it). */
export interface RotatableProxy {
  readonly config: SwitchyardConfig;
  readonly secrets: ConfigSecrets;
  readonly logger: Logger;
  reload(input: { config: SwitchyardConfig; secrets: ConfigSecrets; kind: 'certificates' }): Promise<unknown>;
  /** Counts a rotation that failed before reload() (metrics). */
  reportReloadFailure(kind: 'certificates', message: string): void;
}

export interface CertificateWatcher {
  /** Watches the TLS files of the config now in force; call after a config reload. */
  sync(): Promise<void>;
  /** Reads the TLS files now and applies them if they changed. Resolves when done; never rejects. */
  refresh(): Promise<void>;
  close(): void;
}

/** Expiry is re-checked this often, so a long-running proxy warns before its certificates lapse. */
const EXPIRY_CHECK_MS = 3_600_000;

/** Every TLS file the config names: listener certificates, keys and client CAs; cluster CAs and client certificates. */
export function tlsFilesOf(config: SwitchyardConfig): string[] {
  const files: (string | undefined)[] = [];
  for (const l of config.listeners) files.push(l.tls?.cert_file, l.tls?.key_file, l.tls?.client_ca_file);
  for (const c of config.clusters) files.push(c.tls?.ca_file, c.tls?.cert_file, c.tls?.key_file);
  files.push(config.xds?.tls.ca_file, config.xds?.tls.cert_file, config.xds?.tls.key_file);
  return [...new Set(files.filter((file) => file !== undefined))];
}

/**
 * Starts watching. The config's paths must be absolute (loadConfig makes them
 * so). Logs certificates that expire within `certificates.expiry_warning` now,
 * after every rotation, and hourly.
 */
export async function watchCertificates(proxy: RotatableProxy, debounceMs = DEBOUNCE_MS): Promise<CertificateWatcher> {
  const checkExpiry = () => warnExpiring(loadedCertificates(proxy.config, proxy.secrets), proxy.config.certificates.expiry_warning, proxy.logger);
  const refresh = async () => {
    let secrets: ConfigSecrets;
    try {
      ({ secrets } = await resolveConfig(proxy.config, { baseDir: '/', label: 'certificate rotation' }));
    } catch (error) {
      proxy.logger.error({ error: (error as Error).message }, 'certificate files changed but cannot be used; the certificates in force stay');
      proxy.reportReloadFailure('certificates', (error as Error).message);
      return;
    }
    try {
      await proxy.reload({ config: proxy.config, secrets, kind: 'certificates' });
    } catch (error) {
      proxy.logger.error({ error: (error as Error).message }, 'certificate rotation failed; the certificates in force stay');
      return;
    }
    proxy.logger.info({ certificates: loadedCertificates(proxy.config, proxy.secrets).map((c) => ({ source: c.source, serial: c.serialNumber })) }, 'certificates reloaded');
    checkExpiry();
  };
  checkExpiry();
  const watcher: ConfigWatcher = await watchConfigFiles(tlsFilesOf(proxy.config), refresh, debounceMs);
  const timer = setInterval(checkExpiry, EXPIRY_CHECK_MS);
  timer.unref();
  return {
    sync: () => watcher.setFiles(tlsFilesOf(proxy.config)),
    refresh,
    close() {
      clearInterval(timer);
      watcher.close();
    },
  };
}
