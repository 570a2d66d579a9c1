/**
 * The control plane's config file: where it listens (mTLS, always), what it
 * serves (clusters and routes written exactly as in a proxy config, plus the
 * listener names proxyless clients dial), and who may receive what.
 */
import { z } from 'zod';
import { duration } from '../../config/schema-primitives.ts';
import { clusterSchema, LB_POLICIES, routeSchema } from '../../config/schema.ts';
import { adminSettings } from '../../config/admin-schema.ts';
import { xdsAuthorizationSettings, xdsLimits } from '../server/xds-auth-schema.ts';

const serverTls = z.strictObject({
  cert_file: z.string().min(1),
  key_file: z.string().min(1),
  /** The CA that signs clients' certificates. A client without a certificate from it is refused at the handshake. */
  client_ca_file: z.string().min(1),
});

const routeConfig = z.strictObject({
  name: z.string().min(1),
  routes: z.array(routeSchema).min(1),
});

const apiListener = z.strictObject({
  /** What clients dial: `xds:///<name>`. */
  name: z.string().min(1),
  /** The route config it uses (a name from route_configs). */
  route_config: z.string().min(1),
});

/** The Gateway API source (docs/gateway-api.md). */
const gatewayApi = z.strictObject({
  /** GatewayClasses whose spec.controllerName is this are Switchyard's. */
  controller_name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$/, 'expected a domain-prefixed path, e.g. switchyard.io/gateway-controller').default('switchyard.io/gateway-controller'),
  /** A kubeconfig file; default: KUBECONFIG, then ~/.kube/config, then the in-cluster service account. */
  kubeconfig: z.string().min(1).optional(),
  /** Where clients reach the Switchyard proxies (their Service's address): reported in each Gateway's status.addresses. */
  addresses: z.array(z.strictObject({ type: z.enum(['IPAddress', 'Hostname']).default('IPAddress'), value: z.string().min(1) })).default([]),
  /** The Lease that elects the one replica writing status. */
  lease: z.strictObject({
    namespace: z.string().min(1).default('switchyard'),
    name: z.string().min(1).default('switchyard-gateway-status'),
    duration: duration.default(15_000),
    retry: duration.default(5_000),
  }).prefault({}),
  /** Status patches a second, at most. */
  status_rate: z.number().min(0.1).max(1000).default(10),
  /** How Switchyard proxies balance each backend's endpoints. */
  lb_policy: z.enum(LB_POLICIES).default('round_robin'),
  connect_timeout: duration.default(2_000),
});

export const controlPlaneSchema = z
  .strictObject({
    server: z.strictObject({
      address: z.string().min(1).default('0.0.0.0'),
      port: z.number().int().min(0).max(65535),
      /** Required: the control plane speaks only mTLS. */
      tls: serverTls,
    }),
    clusters: z.array(clusterSchema).default([]),
    route_configs: z.array(routeConfig).default([]),
    listeners: z.array(apiListener).default([]),
    /** Serve Gateways, GRPCRoutes and HTTPRoutes of this controller; unset: none. */
    gateway_api: gatewayApi.optional(),
    authorization: xdsAuthorizationSettings,
    limits: xdsLimits.prefault({}),
    /** /metrics, /ready and /live; loopback only unless allow_remote. */
    admin: adminSettings.optional(),
    /** Changes within this window are pushed together. */
    debounce: duration.default(100),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .superRefine((value, ctx) => {
    const clusters = new Set(value.clusters.map((cluster) => cluster.name));
    const routeConfigs = new Set(value.route_configs.map((config) => config.name));
    value.route_configs.forEach((config, i) => config.routes.forEach((route, j) => {
      const at = ['route_configs', i, 'routes', j];
      if (route.cluster === undefined) ctx.addIssue({ code: 'custom', path: [...at], message: 'xDS routes forward to a cluster; direct_response is not sent to clients' });
      else if (!clusters.has(route.cluster)) ctx.addIssue({ code: 'custom', path: [...at, 'cluster'], message: `no cluster named "${route.cluster}" (clusters: ${[...clusters].join(', ') || 'none'})` });
      if (route.match.headers.length > 0) ctx.addIssue({ code: 'custom', path: [...at, 'match', 'headers'], message: 'header matches are not sent over xDS' });
    }));
    value.listeners.forEach((listener, i) => {
      if (!routeConfigs.has(listener.route_config)) {
        ctx.addIssue({ code: 'custom', path: ['listeners', i, 'route_config'], message: `no route config named "${listener.route_config}" (route_configs: ${[...routeConfigs].join(', ') || 'none'})` });
      }
    });
  });

export type ControlPlaneConfig = z.output<typeof controlPlaneSchema>;
