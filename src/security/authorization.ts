/**
 * Method authorization: which callers may call which methods. Rules are
 * compiled once per config; check() is synchronous and runs before routing.
 *
 * Evaluation: if any `deny` rule matches, the call is denied; otherwise, if
 * any `allow` rule matches, it is allowed; otherwise it is denied. With no
 * rules at all, every call is allowed (authorization is off).
 *
 * gRPC method names are case-sensitive and the proxy routes them exactly, but
 * some servers look methods up case-insensitively. So a deny rule matches a
 * method in any case (`/a.B/Purge` also denies `/a.B/purge`), while an allow
 * rule matches only the exact name: either way, a doubt ends in a denial.
 * Paths reach check() canonical (src/grpc/method-path.ts).
 */
import type { AuthorizationConfig, AuthorizationRuleConfig } from '../config/security-schema.ts';
import type { CallerIdentity } from './identity.ts';

export interface AuthorizationDecision {
  readonly allowed: boolean;
  /** The rule that decided, by name (or `rules[i]`); undefined when no rule matched (default deny) or there are no rules. */
  readonly rule: string | undefined;
}

type Matcher<T> = (value: T) => boolean;

interface CompiledRule {
  readonly name: string;
  readonly deny: boolean;
  readonly principal: Matcher<CallerIdentity>;
  readonly method: Matcher<string>;
}

export class Authorizer {
  readonly #deny: CompiledRule[];
  readonly #allow: CompiledRule[];
  /** False when the config has no rules: every call is allowed without evaluation. */
  readonly enabled: boolean;

  constructor(config: AuthorizationConfig) {
    const rules = config.rules.map(compileRule);
    this.#deny = rules.filter((rule) => rule.deny);
    this.#allow = rules.filter((rule) => !rule.deny);
    this.enabled = rules.length > 0;
  }

  /** Decides one call to `path` (`/pkg.Service/Method`) by `caller`. */
  check(caller: CallerIdentity, path: string): AuthorizationDecision {
    if (!this.enabled) return ALLOWED;
    for (const rule of this.#deny) if (rule.principal(caller) && rule.method(path)) return { allowed: false, rule: rule.name };
    for (const rule of this.#allow) if (rule.principal(caller) && rule.method(path)) return { allowed: true, rule: rule.name };
    return DEFAULT_DENY;
  }
}

const ALLOWED: AuthorizationDecision = { allowed: true, rule: undefined };
const DEFAULT_DENY: AuthorizationDecision = { allowed: false, rule: undefined };

function compileRule(rule: AuthorizationRuleConfig, index: number): CompiledRule {
  const principals = rule.principals.map(compilePrincipal);
  const deny = rule.action === 'deny';
  const methods = rule.methods.map((method) => compileMethod(method, deny));
  return {
    name: rule.name ?? `rules[${index}]`,
    deny,
    principal: (caller) => principals.some((match) => match(caller)),
    method: (path) => methods.some((match) => match(path)),
  };
}

function compilePrincipal(text: string): Matcher<CallerIdentity> {
  if (text === '*') return () => true;
  if (text === 'anonymous') return (caller) => !caller.authenticated;
  if (text === 'authenticated') return (caller) => caller.authenticated;
  if (text.startsWith('spiffe://')) {
    if (text.endsWith('/*')) {
      const prefix = text.slice(0, -1);
      return (caller) => caller.spiffeId?.startsWith(prefix) === true;
    }
    return (caller) => caller.spiffeId === text;
  }
  const colon = text.indexOf(':');
  const kind = text.slice(0, colon).toLowerCase();
  const value = text.slice(colon + 1);
  if (kind === 'dns') {
    const lower = value.toLowerCase();
    return (caller) => caller.dnsNames.some((name) => name.toLowerCase() === lower);
  }
  if (kind === 'uri') return (caller) => caller.uris.includes(value);
  return (caller) => caller.commonName === value;
}

function compileMethod(text: string, anyCase: boolean): Matcher<string> {
  if (text === '*') return () => true;
  const written = text.startsWith('/') ? text : `/${text}`;
  const normalized = anyCase ? written.toLowerCase() : written;
  const fold = anyCase ? (path: string) => path.toLowerCase() : (path: string) => path;
  if (normalized.endsWith('/*')) {
    const prefix = normalized.slice(0, -1);
    return (path) => {
      const folded = fold(path);
      return folded.startsWith(prefix) && !folded.slice(prefix.length).includes('/');
    };
  }
  return (path) => fold(path) === normalized;
}
