import type { Deps } from '../deps';

/** What the configured Cinder is: its newest microversion and its services' states. */
export function describeCinderActivity({ cinder }: Pick<Deps, 'cinder'>) {
  return async function describeCinder(): Promise<{
    maxMicroversion: string | null;
    services: string[];
  }> {
    const [maxMicroversion, services] = await Promise.all([
      cinder.maxMicroversion(),
      cinder.listServices(),
    ]);
    return {
      maxMicroversion: maxMicroversion ?? null,
      services: services.map((s) => `${s.binary}@${s.host}: ${s.state}`).sort(),
    };
  };
}
