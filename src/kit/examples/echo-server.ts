/**
 * The Echo service (src/demo/echo.proto) built with the server kit, as a process:
 *
 *   node src/kit/examples/echo-server.ts --name a --port 50051 --health-port 8081 \
 *     --drain-delay-ms 5000 --deadline-ms 25000 --max-connection-age-ms 300000
 *
 * Every option also reads an environment variable (PORT, HEALTH_PORT, HOST, NAME, DRAIN_DELAY_MS,
 * SHUTDOWN_DEADLINE_MS, MAX_CONNECTION_AGE_MS, MAX_CONNECTION_AGE_GRACE_MS). Port 0 lets the OS
 * pick; the "listening" log line names the ports bound. Logs are JSON lines on stdout.
 */
import { parseArgs } from 'node:util';
import pino from 'pino';
import { ECHO_SERVICE, startEchoServer } from '../../demo/echo-service.ts';
import { gracefulShutdown, serverOptions, startHealthServer } from '../server/index.ts';

const { values } = parseArgs({
  options: {
    name: { type: 'string', default: process.env.NAME ?? 'echo' },
    host: { type: 'string', default: process.env.HOST ?? '0.0.0.0' },
    port: { type: 'string', default: process.env.PORT ?? '50051' },
    'health-host': { type: 'string', default: process.env.HEALTH_HOST },
    'health-port': { type: 'string', default: process.env.HEALTH_PORT ?? '8081' },
    'drain-delay-ms': { type: 'string', default: process.env.DRAIN_DELAY_MS ?? '5000' },
    'deadline-ms': { type: 'string', default: process.env.SHUTDOWN_DEADLINE_MS ?? '25000' },
    'max-connection-age-ms': { type: 'string', default: process.env.MAX_CONNECTION_AGE_MS ?? '300000' },
    'max-connection-age-grace-ms': { type: 'string', default: process.env.MAX_CONNECTION_AGE_GRACE_MS ?? '30000' },
  },
});

const number = (name: keyof typeof values): number => {
  const value = Number(values[name]);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name}: expected a number ≥ 0, got ${values[name]}`);
  return value;
};

// Synchronous writes: the shutdown ends in process.exit, which must not drop or reorder buffered lines.
const logger = pino({ base: { name: values.name, pid: process.pid } }, pino.destination({ dest: 1, sync: true }));

const echo = await startEchoServer({
  name: values.name!,
  host: values.host!,
  port: number('port'),
  serverOptions: serverOptions({
    maxConnectionAgeMs: number('max-connection-age-ms'),
    maxConnectionAgeGraceMs: number('max-connection-age-grace-ms'),
  }),
});
const health = await startHealthServer({ address: values['health-host'] ?? values.host!, port: number('health-port'), services: [ECHO_SERVICE] });
gracefulShutdown({
  server: echo.server,
  health,
  drainDelayMs: number('drain-delay-ms'),
  deadlineMs: number('deadline-ms'),
  logger,
  exit: true,
});
logger.info({ port: echo.port, health_port: health.port }, 'listening');
