/**
 * The service config (gRFC A2) the kit hands grpc-js as `grpc.service_config`: round_robin instead of
 * the pick_first default, and per-method retry policies and timeouts.
 */
import * as grpc from '@grpc/grpc-js';
import { CLIENT_DEFAULTS, requireNumber, type ClientKitOptions, type MethodOptions, type RetryOptions } from './options.ts';

type MethodName = { service?: string; method?: string };

export interface RetryPolicyJson {
  maxAttempts: number;
  initialBackoff: string;
  maxBackoff: string;
  backoffMultiplier: number;
  retryableStatusCodes: string[];
}

export interface MethodConfigJson {
  name: MethodName[];
  timeout?: { seconds: number; nanos: number };
  retryPolicy?: RetryPolicyJson;
  waitForReady?: boolean;
}

export interface ServiceConfigJson {
  loadBalancingConfig?: Array<Record<string, object>>;
  methodConfig: MethodConfigJson[];
  retryThrottling?: { maxTokens: number; tokenRatio: number };
}

/**
 * `balance`: include `loadBalancingConfig: [{ round_robin: {} }]` (DNS targets; an xDS target gets its
 * policy from the control plane).
 */
export function buildServiceConfig(options: ClientKitOptions, balance: boolean): ServiceConfigJson {
  const retry = options.retry === undefined ? CLIENT_DEFAULTS.retry : options.retry;
  const config: ServiceConfigJson = { methodConfig: [] };
  if (balance) config.loadBalancingConfig = [{ round_robin: {} }];

  const seen = new Set<string>();
  for (const method of options.methods ?? []) {
    const name = parseMethodName(method.name);
    const key = `${name.service}/${name.method ?? ''}`;
    if (seen.has(key)) throw new Error(`client kit: methods lists "${method.name}" twice`);
    seen.add(key);
    config.methodConfig.push(methodConfig([name], method, options, retry));
  }
  // The channel-wide entry: an empty name matches every method no entry above names.
  const channelWide = methodConfig([{}], {}, options, retry);
  if (channelWide.timeout || channelWide.retryPolicy) config.methodConfig.push(channelWide);

  const anyRetry = config.methodConfig.some((entry) => entry.retryPolicy);
  // Retry throttling (gRFC A6): when more than half the recent calls failed, stop retrying, so
  // retries cannot multiply the load on a backend that is already failing.
  if (anyRetry) config.retryThrottling = { maxTokens: 10, tokenRatio: 0.1 };
  return config;
}

function methodConfig(name: MethodName[], method: Partial<MethodOptions>, options: ClientKitOptions, channelRetry: RetryOptions | false): MethodConfigJson {
  const entry: MethodConfigJson = { name };
  const timeoutMs = method.timeoutMs === undefined ? options.timeoutMs : method.timeoutMs;
  // Durations as {seconds, nanos}: grpc-js 1.14 parses "0.5s" as 5 nanoseconds.
  if (timeoutMs !== undefined && timeoutMs !== null) {
    requireNumber('timeoutMs', timeoutMs, 1);
    entry.timeout = { seconds: Math.floor(timeoutMs / 1000), nanos: Math.round(timeoutMs % 1000) * 1_000_000 };
  }
  const retry = method.retry === undefined ? channelRetry : method.retry;
  if (retry) entry.retryPolicy = retryPolicy(retry);
  if (method.waitForReady !== undefined) entry.waitForReady = method.waitForReady;
  return entry;
}

export function retryPolicy(retry: RetryOptions): RetryPolicyJson {
  const defaults = CLIENT_DEFAULTS.retry;
  const maxAttempts = retry.maxAttempts ?? defaults.maxAttempts;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 2) {
    throw new RangeError(`client kit: retry.maxAttempts must be an integer ≥ 2 (it counts the first attempt), got ${maxAttempts}`);
  }
  const initial = requireNumber('retry.initialBackoffMs', retry.initialBackoffMs ?? defaults.initialBackoffMs, 1);
  const max = requireNumber('retry.maxBackoffMs', retry.maxBackoffMs ?? defaults.maxBackoffMs, initial);
  const multiplier = retry.backoffMultiplier ?? defaults.backoffMultiplier;
  if (!(multiplier > 0)) throw new RangeError(`client kit: retry.backoffMultiplier must be > 0, got ${multiplier}`);
  const codes = (retry.retryableStatusCodes ?? defaults.retryableStatusCodes).map(statusName);
  if (codes.length === 0) throw new RangeError('client kit: retry.retryableStatusCodes must name at least one code');
  return { maxAttempts, initialBackoff: seconds(initial), maxBackoff: seconds(max), backoffMultiplier: multiplier, retryableStatusCodes: codes };
}

/** `pkg.Service` or `pkg.Service/Method` (a leading slash is allowed). */
function parseMethodName(text: string): MethodName {
  const match = /^\/?([A-Za-z_][\w.]*)(?:\/([A-Za-z_]\w*))?$/.exec(text);
  if (!match) throw new Error(`client kit: methods[].name must be "pkg.Service" or "pkg.Service/Method", got "${text}"`);
  return match[2] ? { service: match[1]!, method: match[2] } : { service: match[1]! };
}

function statusName(code: grpc.status | string): string {
  if (typeof code === 'number') {
    const name = grpc.status[code];
    if (name === undefined) throw new RangeError(`client kit: ${code} is not a gRPC status code`);
    return name;
  }
  const name = code.toUpperCase();
  if (typeof (grpc.status as unknown as Record<string, unknown>)[name] !== 'number') throw new RangeError(`client kit: "${code}" is not a gRPC status code name`);
  return name;
}

/** Milliseconds as the "1.5s" duration string of a retry policy (grpc-js parses these with Number()). */
function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))}s`;
}
