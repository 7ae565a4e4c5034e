/** What integration tests share: the stack's configuration and clients to its real services. */
import { loadConfig } from '../../lib/config/load';
import { cinderFromConfig, type CinderClient } from '../../lib/cinder';
import { TENANT_PROJECTS, TENANT_USER } from '../../scripts/stack/cloud';

export const config = loadConfig();
export const admin: CinderClient = cinderFromConfig(config);

export function tenant(name: keyof typeof TENANT_PROJECTS): CinderClient {
  return admin.asProject(TENANT_PROJECTS[name], TENANT_USER);
}

let counter = 0;
/** A name no other test run uses (Cinder and PostgreSQL keep state between runs). */
export function unique(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter++}`;
}

/** A fresh 32-hex-digit project id (noauth Cinder accepts any such project). */
export function randomProjectId(): string {
  return [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, '0'))
    .join('');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until `done` holds; fails with the last value seen. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  done: (v: T) => boolean,
  timeoutMs = 60_000,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await probe();
    if (done(last)) return last;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await sleep(everyMs);
  }
}
