/**
 * Envoy's v3 xDS protos, as shipped inside @grpc/grpc-js-xds (its deps/
 * folder, pinned with that package), loaded once: the ADS service for
 * @grpc/grpc-js, and a protobufjs Root to pack and unpack the resources that
 * travel as google.protobuf.Any.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);
const XDS_PACKAGE_DIR = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
export const PROTO_DIRS = ['envoy-api', 'xds', 'protoc-gen-validate', 'googleapis'].map((dir) => path.join(XDS_PACKAGE_DIR, 'deps', dir));

export const TYPE_URL = {
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
} as const;
export type ResourceType = keyof typeof TYPE_URL;
export const RESOURCE_TYPES = Object.keys(TYPE_URL) as ResourceType[];
export const HTTP_CONNECTION_MANAGER_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const ROUTER_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

export function resourceTypeOf(typeUrl: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((type) => TYPE_URL[type] === typeUrl);
}

const RESOURCE_FILES = [
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/service/discovery/v3/discovery.proto',
];

const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true, includeDirs: PROTO_DIRS };

let adsPackage: grpc.GrpcObject | undefined;
let root: protobuf.Root | undefined;

/** The AggregatedDiscoveryService definition and client constructor. */
export function adsService(): { service: grpc.ServiceDefinition; Client: grpc.ServiceClientConstructor } {
  adsPackage ??= grpc.loadPackageDefinition(protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', LOADER_OPTIONS));
  const Client = (adsPackage as any).envoy.service.discovery.v3.AggregatedDiscoveryService as grpc.ServiceClientConstructor;
  return { service: Client.service, Client };
}

/** Every resource message type, for packing into and unpacking from Any. */
export function resourceRoot(): protobuf.Root {
  if (root) return root;
  const loaded = new protobuf.Root();
  loaded.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of PROTO_DIRS) {
      const candidate = path.join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    // google/protobuf/*.proto: protobufjs's own well-known types (their fields are camelCase: Struct's Value has stringValue).
    return target;
  };
  loaded.loadSync(RESOURCE_FILES, { keepCase: true });
  loaded.resolveAll();
  root = loaded;
  return root;
}

/** Any as @grpc/grpc-js (through proto-loader) carries it. */
export interface AnyMessage {
  readonly type_url: string;
  readonly value: Buffer;
}

/** Packs a plain object (snake_case field names) as `typeUrl`'s message, checking it against the schema. */
export function packAny(typeUrl: string, value: Record<string, unknown>): AnyMessage {
  const type = resourceRoot().lookupType(typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
  const message = type.fromObject(value);
  const problem = type.verify(message);
  if (problem) throw new Error(`${type.fullName}: ${problem}`);
  return { type_url: typeUrl, value: Buffer.from(type.encode(message).finish()) };
}

/** Unpacks an Any into a plain object (snake_case, enums as names, nested Anys left packed). */
export function unpackAny(any: AnyMessage): Record<string, unknown> {
  const type = resourceRoot().lookupType(any.type_url.slice(any.type_url.lastIndexOf('/') + 1));
  return type.toObject(type.decode(any.value), { enums: String, longs: String, defaults: false, oneofs: true }) as Record<string, unknown>;
}
