/**
 * One load-generating process of `npm run bench:xds`: a LeanAdsClient driven
 * over IPC by bench/xds.ts, so that the load's CPU is not the control plane's
 * and several processes share the cores the way separate clients would.
 *
 * Messages in: start, mark, status, latencies, close. Each answer carries the
 * request's id.
 */
import { readFileSync } from 'node:fs';
import { LeanAdsClient, type LeanClientOptions } from './xds-lean-client.ts';

export type WorkerRequest =
  | { id: number; type: 'start'; replicas: string[]; ca: string; cert: string; key: string; serverName: string; streamsPerConnection: number; names: string[]; prefix: string; count: number }
  | { id: number; type: 'mark'; at: number }
  | { id: number; type: 'status' }
  | { id: number; type: 'latencies' }
  | { id: number; type: 'close' };

let client: LeanAdsClient | undefined;

process.on('message', (request: WorkerRequest) => {
  const reply = (body: object) => process.send!({ id: request.id, ...body });
  switch (request.type) {
    case 'start': {
      const options: LeanClientOptions = {
        replicas: request.replicas,
        ca: readFileSync(request.ca),
        cert: readFileSync(request.cert),
        key: readFileSync(request.key),
        serverName: request.serverName,
        streamsPerConnection: request.streamsPerConnection,
        names: request.names,
      };
      client = new LeanAdsClient(options);
      client.open(request.prefix, request.count);
      reply({});
      break;
    }
    case 'mark':
      client?.mark(request.at);
      reply({});
      break;
    case 'status':
      reply({ status: client?.status() });
      break;
    case 'latencies':
      reply({ latencies: client?.latencies() ?? [] });
      break;
    case 'close':
      client?.close();
      reply({});
      setImmediate(() => process.exit(0));
      break;
  }
});
process.send!({ id: 0, ready: true });
