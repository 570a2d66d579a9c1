/** Loopback addresses: where the agent may listen (it speaks plaintext), and where a bootstrap may point. */
import { isIP } from 'node:net';

/** 127.0.0.0/8, ::1 (also written out, or as ::ffff:127.x.y.z), or the name localhost; brackets allowed. */
export function isLoopback(address: string): boolean {
  const host = address.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (host === 'localhost') return true;
  const family = isIP(host);
  if (family === 4) return host.startsWith('127.');
  if (family === 6) return host === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(host) || /^::ffff:127\.\d+\.\d+\.\d+$/.test(host);
  return false;
}
