/** Loading the control plane's config file: YAML → validated config → its TLS files, read and checked. */
import path from 'node:path';
import { ConfigError, PemFiles, parseYamlConfig, readConfigText } from '../../config/load.ts';
import { parseCertificates } from '../../config/pem.ts';
import { controlPlaneSchema, type ControlPlaneConfig } from './control-plane-schema.ts';

export interface ControlPlaneTls {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly clientCa: Buffer;
}

export interface LoadedControlPlaneConfig {
  readonly config: ControlPlaneConfig;
  readonly tls: ControlPlaneTls;
  /** Every file read, absolute: the config file (when loaded from one), then the TLS files. */
  readonly files: readonly string[];
}

export async function loadControlPlaneConfig(file: string): Promise<LoadedControlPlaneConfig> {
  const absolute = path.resolve(file);
  // A regular file of bounded size, read with a time limit: see src/config/bounded-read.ts.
  const text = await readConfigText(file);
  const config = parseYamlConfig(controlPlaneSchema, text, file, 'a control plane config needs at least server and authorization');
  const loaded = await readTlsFiles(config, path.dirname(absolute), file);
  return { ...loaded, files: [absolute, ...loaded.files] };
}

/** The TLS half of loading, for a config built in code (tests). */
export async function readTlsFiles(config: ControlPlaneConfig, baseDir: string, label: string): Promise<LoadedControlPlaneConfig> {
  const reader = new PemFiles(baseDir);
  const tls = config.server.tls;
  const resolved = { cert_file: reader.resolve(tls.cert_file), key_file: reader.resolve(tls.key_file), client_ca_file: reader.resolve(tls.client_ca_file) };
  const pair = await reader.keyPair('server.tls', resolved.cert_file, resolved.key_file);
  const clientCa = await reader.read('server.tls.client_ca_file', resolved.client_ca_file, parseCertificates);
  if (reader.problems.length > 0 || !pair || !clientCa) throw new ConfigError(label, reader.problems);
  return {
    config: { ...config, server: { ...config.server, tls: resolved } },
    tls: { ...pair, clientCa },
    files: reader.files,
  };
}
