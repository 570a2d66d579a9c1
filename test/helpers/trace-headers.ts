/** Trace headers in end-to-end tests: what the client sends, and what the Echo backend says it received. */
import * as grpc from '@grpc/grpc-js';
import type { EchoResponse } from '../../src/demo/echo-service.ts';

export const CLIENT_TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
export const CLIENT_SPAN_ID = '00f067aa0ba902b7';
export const CLIENT_TRACEPARENT = `00-${CLIENT_TRACE_ID}-${CLIENT_SPAN_ID}-01`;
export const CLIENT_TRACESTATE = 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7';

/** Metadata carrying the given traceparent and tracestate (each left out when undefined). */
export function traceMetadata(traceparent: string | undefined, tracestate?: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (traceparent !== undefined) metadata.set('traceparent', traceparent);
  if (tracestate !== undefined) metadata.set('tracestate', tracestate);
  return metadata;
}

/** The value of request header `name` as the Echo backend reported it, or undefined if it got none. */
export function backendSaw(response: EchoResponse, name: string): string | undefined {
  const line = response.metadata.find((entry) => entry.startsWith(`${name}=`));
  return line?.slice(name.length + 1);
}
