/**
 * mTLS server credentials whose certificate, key and client CA can be
 * replaced while the server runs: connections made after update() get the
 * new ones, open connections keep theirs. Built on grpc-js's certificate
 * provider interface (its FileWatcherCertificateProvider polls files on a
 * timer; the control plane re-reads them when told to reload instead).
 */
import * as grpc from '@grpc/grpc-js';
import type { ControlPlaneTls } from './load.ts';

type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

export class ReloadableServerCredentials {
  readonly credentials: grpc.ServerCredentials;
  readonly #caListeners = new Set<CaListener>();
  readonly #identityListeners = new Set<IdentityListener>();
  #tls: ControlPlaneTls;

  constructor(tls: ControlPlaneTls) {
    this.#tls = tls;
    const provider: grpc.experimental.CertificateProvider = {
      addCaCertificateListener: (listener) => {
        this.#caListeners.add(listener);
        // Later, not now: grpc-js registers the server's watcher only after adding this listener.
        process.nextTick(() => this.#caListeners.has(listener) && listener({ caCertificate: this.#tls.clientCa }));
      },
      removeCaCertificateListener: (listener) => void this.#caListeners.delete(listener),
      addIdentityCertificateListener: (listener) => {
        this.#identityListeners.add(listener);
        process.nextTick(() => this.#identityListeners.has(listener) && listener({ certificate: this.#tls.cert, privateKey: this.#tls.key }));
      },
      removeIdentityCertificateListener: (listener) => void this.#identityListeners.delete(listener),
    };
    // Client certificates are required and verified against the CA at the handshake.
    this.credentials = grpc.experimental.createCertificateProviderServerCredentials(provider, provider, true);
  }

  /** Whether `tls` differs from what is served now. */
  differs(tls: ControlPlaneTls): boolean {
    return !tls.cert.equals(this.#tls.cert) || !tls.key.equals(this.#tls.key) || !tls.clientCa.equals(this.#tls.clientCa);
  }

  update(tls: ControlPlaneTls): void {
    this.#tls = tls;
    for (const listener of this.#caListeners) listener({ caCertificate: tls.clientCa });
    for (const listener of this.#identityListeners) listener({ certificate: tls.cert, privateKey: tls.key });
  }
}
