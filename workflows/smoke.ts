/** The smallest end-to-end check: a workflow whose activity asks the real Cinder what it runs. */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { PROFILES } from './profiles';

const { describeCinder } = proxyActivities<Activities>(PROFILES.cinderCall);

export async function cinderSmokeWorkflow(): Promise<{
  maxMicroversion: string | null;
  services: string[];
}> {
  return await describeCinder();
}
