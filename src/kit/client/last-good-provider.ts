/**
 * A CertificateProvider in front of grpc-js's FileWatcherCertificateProvider that passes on only
 * usable updates. The watcher reads the certificate and the key as two files, at its own interval;
 * a rotation that lands between the two reads (or a missing file while a Secret volume is swapped)
 * gives it a certificate with the wrong key, or nothing, and grpc-js would then fail every new
 * connection until the next read. This keeps the last good pair instead.
 */
import type * as grpc from '@grpc/grpc-js';
import { X509Certificate, createPrivateKey } from 'node:crypto';

type CaUpdate = grpc.experimental.CaCertificateUpdate;
type IdentityUpdate = grpc.experimental.IdentityCertificateUpdate;
type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

export class LastGoodCertificateProvider implements grpc.experimental.CertificateProvider {
  readonly #inner: grpc.experimental.CertificateProvider;
  readonly #caListeners = new Set<CaListener>();
  readonly #identityListeners = new Set<IdentityListener>();
  /** undefined: nothing read yet; null: the first read failed and nothing good came before it. */
  #ca: CaUpdate | null | undefined;
  #identity: IdentityUpdate | null | undefined;
  /** Updates passed on and refused, for tests and logs. */
  readonly stats = { caUpdates: 0, identityUpdates: 0, refused: 0 };

  constructor(inner: grpc.experimental.CertificateProvider) {
    this.#inner = inner;
  }

  readonly #onCa = (update: CaUpdate | null): void => {
    const usable = update !== null && isCertificate(update.caCertificate);
    if (!usable) {
      this.stats.refused++;
      if (this.#ca) return; // keep the last good CA bundle
      this.#ca = null;
    } else {
      if (this.#ca && this.#ca.caCertificate.equals(update.caCertificate)) return;
      this.#ca = update;
      this.stats.caUpdates++;
    }
    for (const listener of this.#caListeners) listener(this.#ca);
  };

  readonly #onIdentity = (update: IdentityUpdate | null): void => {
    const usable = update !== null && pairMatches(update);
    if (!usable) {
      this.stats.refused++;
      if (this.#identity) return; // keep the last good certificate and key
      this.#identity = null;
    } else {
      const current = this.#identity;
      if (current && current.certificate.equals(update.certificate) && current.privateKey.equals(update.privateKey)) return;
      this.#identity = update;
      this.stats.identityUpdates++;
    }
    for (const listener of this.#identityListeners) listener(this.#identity);
  };

  addCaCertificateListener(listener: CaListener): void {
    if (this.#caListeners.size === 0) this.#inner.addCaCertificateListener(this.#onCa);
    this.#caListeners.add(listener);
    if (this.#ca !== undefined) process.nextTick(listener, this.#ca);
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.#caListeners.delete(listener);
    // The watcher stops its timer once nobody listens, so a closed channel lets the process exit.
    if (this.#caListeners.size === 0) this.#inner.removeCaCertificateListener(this.#onCa);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    if (this.#identityListeners.size === 0) this.#inner.addIdentityCertificateListener(this.#onIdentity);
    this.#identityListeners.add(listener);
    if (this.#identity !== undefined) process.nextTick(listener, this.#identity);
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.delete(listener);
    if (this.#identityListeners.size === 0) this.#inner.removeIdentityCertificateListener(this.#onIdentity);
  }
}

function isCertificate(pem: Buffer): boolean {
  try {
    new X509Certificate(pem);
    return true;
  } catch {
    return false;
  }
}

function pairMatches(update: IdentityUpdate): boolean {
  try {
    return new X509Certificate(update.certificate).checkPrivateKey(createPrivateKey(update.privateKey));
  } catch {
    return false;
  }
}
