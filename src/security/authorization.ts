/**
 * Method authorization: which callers may call which methods. Rules are
 * compiled once per config; check() is synchronous and runs before routing.
 *
 * Evaluation: if any `deny` rule matches, the call is denied; otherwise, if
 * any `allow` rule matches, it is allowed; otherwise it is denied. With no
 * rules at all, every call is allowed (authorization is off).
 */
import type { AuthorizationConfig, AuthorizationRuleConfig } from './security-schema.ts';
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
  const methods = rule.methods.map(compileMethod);
  return {
    name: rule.name ?? `rules[${index}]`,
    deny: rule.action === 'deny',
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

function compileMethod(text: string): Matcher<string> {
  if (text === '*') return () => true;
  const normalized = text.startsWith('/') ? text : `/${text}`;
  if (normalized.endsWith('/*')) {
    const prefix = normalized.slice(0, -1);
    return (path) => path.startsWith(prefix) && !path.slice(prefix.length).includes('/');
  }
  return (path) => path === normalized;
}
