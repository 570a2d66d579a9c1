/** The `kubernetes` discovery section of a cluster (src/discovery/kubernetes.ts does the watching). */
import { z } from 'zod';

/** RFC 1123 label: what Kubernetes requires of namespace names and EndpointSlice port names. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** RFC 1035 label: what Kubernetes requires of Service names (starts with a letter). */
const SERVICE_NAME = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

const label = (pattern: RegExp, what: string) =>
  z.string().max(63).refine((text) => pattern.test(text), {
    error: (issue) => `expected ${what} (lowercase letters, digits and "-", at most 63), got "${String(issue.input)}"`,
  });

export const kubernetesDiscovery = z.strictObject({
  /** Namespace of the Service. */
  namespace: label(DNS_LABEL, 'a namespace name').default('default'),
  /** The Service whose EndpointSlices are watched (label kubernetes.io/service-name). */
  service: label(SERVICE_NAME, 'a Service name'),
  /**
   * The Service port's name (`grpc`), looked up in each slice's ports, or the
   * endpoints' port number (`50051`). A quoted number counts as a number:
   * Kubernetes port names always contain a letter.
   */
  port: z.union([
    z.number().int().min(1).max(65535),
    label(DNS_LABEL, 'a port name').transform((text) => (/^\d+$/.test(text) ? Number(text) : text)).pipe(
      z.union([z.number().int().min(1).max(65535), z.string()]),
    ),
  ]),
  /** A kubeconfig file; default: KUBECONFIG, then ~/.kube/config, then the in-cluster service account. */
  kubeconfig: z.string().min(1).optional(),
});

export type KubernetesDiscoveryConfig = z.output<typeof kubernetesDiscovery>;
