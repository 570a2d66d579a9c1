/**
 * The config sections of transport security and method authorization. Kept
 * here, beside the code that enforces them; src/config/schema.ts composes them.
 */
import { z } from 'zod';
import { duration } from './schema-primitives.ts';

/** How a listener treats client certificates. */
export const CLIENT_CERTIFICATE_MODES = ['none', 'optional', 'required'] as const;

/** Listener `tls` fields beyond cert_file and key_file. */
export const downstreamTlsFields = {
  /** CA bundle that client certificates must chain to. Setting it turns client certificates on. */
  client_ca_file: z.string().min(1).optional(),
  /** none: never asked for; optional: asked for, verified when sent; required: a handshake without a valid one fails. Default: required with client_ca_file, else none. */
  client_certificates: z.enum(CLIENT_CERTIFICATE_MODES).optional(),
  /** A connection that has not finished its TLS handshake in this long is closed. */
  handshake_timeout: duration.default(10_000),
  /** Set x-forwarded-client-cert on forwarded RPCs from the verified client certificate. A client-sent one is always removed. */
  forward_client_cert: z.boolean().default(false),
};

/** Cluster `tls` fields beyond ca_file, server_name, cert_file, key_file. */
export const upstreamTlsFields = {
  /** The backend certificate must carry one of these SANs (`spiffe://…`, `uri:…`, `dns:…`, `ip:…`); replaces the hostname check. */
  verify_subject_alt_names: z
    .array(z.string().regex(/^(spiffe:\/\/\S+|(uri|dns|ip):\S+)$/i, 'expected "spiffe://…", "uri:…", "dns:…" or "ip:…"'))
    .min(1)
    .optional(),
};

const PRINCIPAL = /^(\*|anonymous|authenticated|spiffe:\/\/\S+|(dns|cn|uri):\S.*)$/;
const METHOD = /^(\*|\/?[^/\s*]+\/(\*|[^/\s*]+))$/;

const authorizationRule = z.strictObject({
  name: z.string().min(1).optional(),
  /** Who the rule is about: `spiffe://…` (a trailing `/*` matches a path prefix), `dns:…`, `cn:…`, `uri:…`, `authenticated`, `anonymous`, or `*`. */
  principals: z.array(z.string().regex(PRINCIPAL, 'expected "spiffe://…", "dns:…", "cn:…", "uri:…", "authenticated", "anonymous" or "*"')).min(1),
  /** What it is about: `/pkg.Service/Method`, `pkg.Service/*`, or `*`. */
  methods: z.array(z.string().regex(METHOD, 'expected "/package.Service/Method", "package.Service/*" or "*"')).min(1),
  action: z.enum(['allow', 'deny']).default('allow'),
});

/** Per-RPC method authorization. No rules: every call is allowed. */
export const authorizationSettings = z.strictObject({
  rules: z.array(authorizationRule).default([]),
});

/** Top-level certificate housekeeping. */
export const certificateSettings = z.strictObject({
  /** Log a warning for every loaded certificate that expires within this long (checked at start, on every reload, and hourly). */
  expiry_warning: duration.default(7 * 24 * 3_600_000),
});

export type AuthorizationConfig = z.output<typeof authorizationSettings>;
export type AuthorizationRuleConfig = AuthorizationConfig['rules'][number];
