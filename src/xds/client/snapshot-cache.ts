/**
 * The last good xDS snapshot on disk: the raw resources a proxy applied
 * (each Any as its type_url and base64 bytes) with their versions, so a
 * proxy can start when its control plane cannot be reached. Written
 * atomically (a temporary file, then rename), so a crash mid-write leaves
 * the previous snapshot.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { RESOURCE_TYPES, TYPE_URL, type AnyMessage, type ResourceType } from '../protos.ts';

const FORMAT = 'switchyard.xds-snapshot.v1';

export interface CachedType {
  readonly version: string;
  readonly resources: readonly AnyMessage[];
}

export interface XdsSnapshotFile {
  /** node.id and the RouteConfiguration the snapshot was taken for. */
  readonly nodeId: string;
  readonly routeConfig: string;
  /** ms since the epoch. */
  readonly writtenAt: number;
  readonly types: Partial<Record<ResourceType, CachedType>>;
}

interface FileShape {
  format: string;
  node_id: string;
  route_config: string;
  written_at: string;
  types: Partial<Record<ResourceType, { version: string; resources: { type_url: string; value: string }[] }>>;
}

export async function writeSnapshotFile(file: string, snapshot: XdsSnapshotFile): Promise<void> {
  const shape: FileShape = {
    format: FORMAT,
    node_id: snapshot.nodeId,
    route_config: snapshot.routeConfig,
    written_at: new Date(snapshot.writtenAt).toISOString(),
    types: Object.fromEntries(Object.entries(snapshot.types).map(([type, cached]) => [type, {
      version: cached.version,
      resources: cached.resources.map((any) => ({ type_url: any.type_url, value: Buffer.from(any.value).toString('base64') })),
    }])),
  };
  await mkdir(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(temporary, `${JSON.stringify(shape, null, 1)}\n`, { mode: 0o600 });
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** The snapshot in `file`; undefined when there is no such file. Throws, saying why, when it cannot be used. */
export async function readSnapshotFile(file: string): Promise<XdsSnapshotFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let shape: FileShape;
  try {
    shape = JSON.parse(text) as FileShape;
  } catch (error) {
    throw new Error(`"${file}" is not JSON: ${(error as Error).message}`, { cause: error });
  }
  if (shape?.format !== FORMAT) throw new Error(`"${file}" is not a Switchyard xDS snapshot (format ${JSON.stringify(shape?.format)}, expected "${FORMAT}")`);
  const types: Partial<Record<ResourceType, CachedType>> = {};
  for (const [type, cached] of Object.entries(shape.types ?? {})) {
    if (!(RESOURCE_TYPES as string[]).includes(type) || !cached || typeof cached.version !== 'string' || !Array.isArray(cached.resources)) {
      throw new Error(`"${file}": types.${type} is not a resource type with a version and resources`);
    }
    types[type as ResourceType] = {
      version: cached.version,
      resources: cached.resources.map((any, i) => {
        if (any?.type_url !== TYPE_URL[type as ResourceType] || typeof any.value !== 'string') throw new Error(`"${file}": types.${type}.resources[${i}] is not a ${type} resource`);
        return { type_url: any.type_url, value: Buffer.from(any.value, 'base64') };
      }),
    };
  }
  const writtenAt = Date.parse(shape.written_at);
  return { nodeId: String(shape.node_id), routeConfig: String(shape.route_config), writtenAt: Number.isNaN(writtenAt) ? 0 : writtenAt, types };
}
