/**
 * Import this before anything that loads @grpc/grpc-js: grpc-js reads GRPC_NODE_USE_ALTERNATIVE_RESOLVER
 * once, when it loads, and only its c-ares resolver honours a DNS server named in the target
 * (`dns://127.0.0.1:PORT/name:port`), which is how a test points a client at test/helpers/dns-server.ts.
 */
process.env.GRPC_NODE_USE_ALTERNATIVE_RESOLVER = 'true';
