/**
 * The security step of every RPC, before routing: removes identity headers a
 * client sent, sets x-forwarded-client-cert when the listener forwards it,
 * applies method authorization, and sets the forwarding headers
 * (forwarded-headers.ts). Synchronous, never throws.
 */
import type { DownstreamConnection, HeaderMap } from '../grpc/streams.ts';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { ListenerConfig } from '../config/schema.ts';
import type { Authorizer } from './authorization.ts';
import { callerIdentity } from './identity.ts';
import { XFCC_HEADER, formatXfcc, stripIdentityHeaders } from './xfcc.ts';
import { applyForwardedHeaders } from './forwarded-headers.ts';

/** What admission reads of the config in force (the RPC's snapshot of it). */
export interface AdmissionContext {
  readonly authorizer: Authorizer;
  /** Each listener's config by name. */
  readonly listeners: ReadonlyMap<string, ListenerConfig>;
}

/**
 * Admits one RPC: returns undefined to go on (headers may have been changed),
 * or the PERMISSION_DENIED message to answer with.
 */
export function admitRpc(context: AdmissionContext, logger: Logger, connection: DownstreamConnection | undefined, headers: HeaderMap, listenerName: string): string | undefined {
  stripIdentityHeaders(headers);
  const caller = callerIdentity(connection);
  const path = String(headers[':path'] ?? '');
  const decision = context.authorizer.check(caller, path);
  if (!decision.allowed) {
    const message = `caller ${caller.label} may not call ${path}`;
    logger.warn({ listener: listenerName, caller: caller.label, method: path, rule: decision.rule ?? '(no rule matched: default deny)' }, 'RPC denied by authorization');
    return message;
  }
  const listener = context.listeners.get(listenerName);
  if (listener?.tls?.forward_client_cert) {
    const value = formatXfcc(caller, connection?.socket as TLSSocket | undefined);
    if (value !== undefined) headers[XFCC_HEADER] = value;
  }
  applyForwardedHeaders(headers, connection?.socket?.remoteAddress, listener?.tls !== undefined, listener?.trusted_proxy_hops ?? 0);
  return undefined;
}
