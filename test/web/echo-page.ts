/**
 * The script of the page the browser test serves (test/e2e/grpc-web-browser.test.ts), bundled with
 * esbuild when the test runs. It calls the Echo service through Switchyard with @connectrpc/connect-web,
 * as a web front end would, and gives the test what it got. The service's descriptor set comes from
 * the page's own server, so no code is generated.
 */
import { Code, ConnectError, createClient, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcWebTransport } from '@connectrpc/connect-web';
import { createFileRegistry, fromBinary, type DescService } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';

export type PageProtocol = 'grpc-web' | 'connect';

/** What a call ended with, in plain values the test can read. */
export type PageResult =
  | { readonly ok: true; readonly payloads: string[]; readonly sequences: number[]; readonly backend: string }
  | { readonly ok: false; readonly code: string; readonly message: string };

interface EchoReply {
  readonly payload: Uint8Array;
  readonly backend: string;
  readonly sequence: number;
}

interface EchoClient {
  unary(request: Record<string, unknown>): Promise<EchoReply>;
  serverStream(request: Record<string, unknown>): AsyncIterable<EchoReply>;
}

let service: Promise<DescService> | undefined;

async function loadService(): Promise<DescService> {
  const set = fromBinary(FileDescriptorSetSchema, new Uint8Array(await (await fetch('/echo.binpb')).arrayBuffer()));
  for (const file of set.file) {
    for (const message of file.messageType) {
      for (const field of message.field) field.jsonName ||= field.name.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
    }
  }
  return createFileRegistry(set).getService('switchyard.demo.v1.Echo')!;
}

function transport(baseUrl: string, protocol: PageProtocol): Transport {
  return protocol === 'grpc-web' ? createGrpcWebTransport({ baseUrl }) : createConnectTransport({ baseUrl });
}

async function client(baseUrl: string, protocol: PageProtocol): Promise<EchoClient> {
  service ??= loadService();
  return createClient(await service, transport(baseUrl, protocol)) as unknown as EchoClient;
}

function failure(error: unknown): PageResult {
  const connectError = ConnectError.from(error);
  return { ok: false, code: Code[connectError.code], message: connectError.rawMessage };
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** The test passes plain values: a payload as text. */
function requestOf(fields: Record<string, unknown>): Record<string, unknown> {
  return typeof fields.payload === 'string' ? { ...fields, payload: new TextEncoder().encode(fields.payload) } : fields;
}

const api = {
  async unary(baseUrl: string, protocol: PageProtocol, request: Record<string, unknown>): Promise<PageResult> {
    try {
      const reply = await (await client(baseUrl, protocol)).unary(requestOf(request));
      return { ok: true, payloads: [text(reply.payload)], sequences: [reply.sequence], backend: reply.backend };
    } catch (error) {
      return failure(error);
    }
  },

  async serverStream(baseUrl: string, protocol: PageProtocol, request: Record<string, unknown>): Promise<PageResult> {
    const payloads: string[] = [];
    const sequences: number[] = [];
    let backend = '';
    try {
      for await (const reply of (await client(baseUrl, protocol)).serverStream(requestOf(request))) {
        payloads.push(text(reply.payload));
        sequences.push(reply.sequence);
        backend = reply.backend;
      }
      return { ok: true, payloads, sequences, backend };
    } catch (error) {
      return failure(error);
    }
  },

  /** A gRPC-Web call made with fetch alone: what the page can read of the response's headers. */
  async rawGrpcWeb(url: string, extraHeaders: Record<string, string>): Promise<{ status: number; grpcStatus: string | null; grpcMessage: string | null } | { error: string }> {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1', ...extraHeaders },
        body: new Uint8Array([0, 0, 0, 0, 0]),
      });
      await response.arrayBuffer();
      return { status: response.status, grpcStatus: response.headers.get('grpc-status'), grpcMessage: response.headers.get('grpc-message') };
    } catch (error) {
      return { error: String(error) };
    }
  },
};

export type EchoPageApi = typeof api;

(globalThis as unknown as { echoPage: EchoPageApi }).echoPage = api;
(globalThis as unknown as { echoPageReady: boolean }).echoPageReady = true;
