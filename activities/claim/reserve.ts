/**
 * The claim's first step: the (project, name) lock, the OS's current image and a pool row
 * reserved for the claim. Each part is idempotent per claim, so a re-run (a retry, a replayed
 * workflow task) takes the same lock and the same row.
 */
import { ApplicationFailure } from '@temporalio/activity';
import {
  ClaimNameRepository,
  OsImageRepository,
  PoolRepository,
  type PoolVolume,
} from '../../lib/pool-state/repository';
import { DemandRepository } from '../../lib/pool-state/demand';
import { workflowRunning } from '../../lib/temporal/workflows';
import { delaypoint } from '../../lib/failpoints';
import {
  CLAIM_FAILURES,
  type ClaimTarget,
  type CurrentImage,
  type ReservedVolume,
} from '../../contracts/claim';
import type { Deps } from '../deps';
import { claimZone } from './context';

/** A reserved pool row as the claim's steps know it; null while it has no volume yet. */
export function reservedVolume(row: PoolVolume): ReservedVolume | null {
  if (!row.volumeId) return null;
  return { rowId: row.id, volumeId: row.volumeId, sizeGb: row.sizeGb, snapshotId: row.snapshotId };
}

export function reserveActivities({
  config,
  db,
  temporal,
}: Pick<Deps, 'config' | 'db' | 'temporal'>) {
  const repo = new PoolRepository(db);
  const images = new OsImageRepository(db);
  const names = new ClaimNameRepository(db);
  const demand = new DemandRepository(db);

  const zoneOf = (t: { zone?: string }) => claimZone(config, t);

  /** Whether the claim workflow `claimId` is still running (without Temporal: assume so). */
  const claimRunning = (claimId: string) =>
    temporal ? workflowRunning(temporal, claimId) : Promise.resolve(true);

  /**
   * Takes the (project, name) lock for this claim. While another running claim holds it, fails
   * retryably (NameBusy): the workflow waits, then finds that claim's volume (`existing`), so
   * two requests for one name never take two pool volumes nor create two volumes. A lock left
   * by a claim that is no longer running is taken over.
   */
  async function lockClaimName(t: ClaimTarget): Promise<void> {
    const holder = await names.lock(t.projectId, t.name, t.claimId);
    if (holder === t.claimId) return;
    const taken =
      !(await claimRunning(holder)) &&
      (await names.takeOver(t.projectId, t.name, holder, t.claimId));
    if (!taken)
      throw ApplicationFailure.create({
        type: CLAIM_FAILURES.nameBusy,
        message: `claim ${holder} is making a volume named ${JSON.stringify(t.name)} in this project`,
      });
  }

  async function releaseClaimName(t: ClaimTarget): Promise<void> {
    await names.release(t.projectId, t.name, t.claimId);
  }

  async function currentImage(input: {
    os: string;
    volumeType: string;
    zone?: string;
  }): Promise<CurrentImage | null> {
    const img = await images.get(input.os, input.volumeType, zoneOf(input));
    return img
      ? { snapshotId: img.snapshotId, volumeType: img.volumeType, sizeGb: img.sizeGb }
      : null;
  }

  /**
   * Reserves one current pool volume of the claim's zone for this claim (the same one again on
   * a retry).
   */
  async function reservePoolVolume(input: {
    claimId: string;
    os: string;
    volumeType: string;
    zone?: string;
    snapshotId: string;
  }): Promise<ReservedVolume | null> {
    const row = await repo.reserve(
      { type: input.volumeType, os: input.os, zone: zoneOf(input) },
      input.claimId,
      input.snapshotId,
    );
    return row ? reservedVolume(row) : null;
  }

  /**
   * tenant_share: a tenant that was delivered its share of this pool's floor within the window
   * falls back to plain creation, so other tenants keep getting hits. A claim that already holds
   * a row (a retry) keeps it. Claims of one tenant in flight together may each see the share
   * unused.
   */
  async function overFairShare(t: ClaimTarget): Promise<string | undefined> {
    const fair = config.pool.policy.tenantShare;
    if (!fair) return undefined;
    const zone = zoneOf(t);
    const floor =
      config.pool.targets.find(
        (p) => p.os === t.os && p.volumeType === t.volumeType && p.zone === zone,
      )?.target ?? 0;
    const allowed = Math.max(1, Math.floor(fair.share * floor));
    const hits = await demand.tenantHits({
      type: t.volumeType,
      os: t.os as string,
      zone,
      projectId: t.projectId,
      minutes: fair.windowMinutes,
      otherThan: t.claimId,
    });
    if (hits < allowed || (await repo.heldBy(t.claimId))) return undefined;
    return `tenant share used: ${hits} of ${allowed} pool volumes in ${fair.windowMinutes} min`;
  }

  /**
   * One local activity: the name lock, the image and a reservation. No image known yet (no fill
   * ran): no reservation; the workflow resolves the image from Cinder and reserves then.
   */
  async function reserveForClaim(t: ClaimTarget): Promise<{
    image: CurrentImage | null;
    reserved: ReservedVolume | null;
    /** Why no reservation was even tried (the tenant's fair share is used up). */
    declined?: string;
    /** The zone the claim is served in ('' when the pool names none). */
    zone: string;
  }> {
    const zone = zoneOf(t);
    await delaypoint('claim.reserve');
    // The image read needs no lock: both at once.
    const [, image] = await Promise.all([
      lockClaimName(t),
      currentImage({ os: t.os as string, volumeType: t.volumeType, zone }),
    ]);
    if (!image) return { image, reserved: null, zone };
    const declined = await overFairShare(t);
    if (declined) return { image, reserved: null, declined, zone };
    const reserved = await reservePoolVolume({
      claimId: t.claimId,
      os: t.os as string,
      volumeType: t.volumeType,
      zone,
      snapshotId: image.snapshotId,
    });
    return { image, reserved, zone };
  }

  return { lockClaimName, releaseClaimName, currentImage, reservePoolVolume, reserveForClaim };
}
