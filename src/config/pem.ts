/**
 * PEM checks run at load time, so that a wrong file stops startup with a
 * message naming it instead of failing every handshake later.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import { cryptoModule } from '../builtins.ts';

/** Thrown with a message that reads after the file's name: `"/x.pem" <message>`. */
export class PemError extends Error {}

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * Every certificate in a PEM file, in order (leaf first for a chain). At least
 * one, and each must parse: a corrupt block in a bundle is a broken file, not
 * something to skip over.
 */
export function parseCertificates(pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('latin1').match(CERTIFICATE_BLOCK) ?? [];
  if (blocks.length === 0) throw new PemError('is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" block)');
  const { X509Certificate } = cryptoModule();
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new PemError(`is not a PEM certificate: certificate ${i + 1} of ${blocks.length} does not parse (${(error as Error).message})`);
    }
  });
}

/** The private key in a PEM file. Encrypted keys are refused: there is nowhere to put a passphrase. */
export function parsePrivateKey(pem: Buffer): KeyObject {
  const text = pem.toString('latin1');
  // PKCS#8 and the older "Proc-Type: 4,ENCRYPTED" header; OpenSSL's own error for these is cryptic.
  if (text.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /^Proc-Type: 4,ENCRYPTED/m.test(text)) {
    throw new PemError('is an encrypted private key; Switchyard needs it unencrypted');
  }
  if (!/-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/.test(text)) throw new PemError('is not a PEM private key (no "-----BEGIN PRIVATE KEY-----" block)');
  try {
    return cryptoModule().createPrivateKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new PemError(`is not a PEM private key: it does not parse (${(error as Error).message})`);
  }
}

/** Whether `key` is the private half of the public key in `certificate`. */
export function keyMatchesCertificate(certificate: X509Certificate, key: KeyObject): boolean {
  try {
    return certificate.checkPrivateKey(key);
  } catch {
    // Thrown when the key types differ (an RSA key against an EC certificate): also a mismatch.
    return false;
  }
}
