/**
 * The claim's contract: what the API, the workflow, its activities, the CLI and the tests agree
 * on — inputs and results, the workflow id, the query and the update, failure type names.
 * Imported by workflow code: no Node built-ins here.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';

/** The claim workflow's id for a request: one claim per requestId. */
export const claimWorkflowId = (requestId: string) => `claim-${requestId}`;

/** Failure types a claim can end with (ApplicationFailure.type). */
export const CLAIM_FAILURES = {
  /** The `delivered` update's body differs from the one the claim was started with. */
  bodyMismatch: 'BodyMismatch',
  /** The claim failed; the update reports the workflow's failure reason. */
  claimFailed: 'ClaimFailed',
  /** The tenant's quota refused the accept (the volume went back to the pool). */
  acceptRefused: 'AcceptRefused',
  /** The tenant's quota refused the creation. */
  tenantOverQuota: 'TenantOverQuota',
  /** No current snapshot for the OS and type. */
  unknownImage: 'UnknownImage',
  /** A request that cannot be carried out (a data disk without size). */
  badClaim: 'BadClaim',
  /** Another running claim holds the (project, name) lock (retryable). */
  nameBusy: 'NameBusy',
  /** The reserved pool volume is gone from Cinder (compensated: plain creation). */
  poolVolumeGone: 'PoolVolumeGone',
  /** The reserved pool volume is neither available in the pool nor the tenant's. */
  poolVolumeUnusable: 'PoolVolumeUnusable',
  /** The claim no longer holds its pool row, and the tenant has no volume of that name. */
  reservationLost: 'ReservationLost',
  /** A newer attempt (or the compensation) took this attempt's row: it stopped mutating. */
  handOffSuperseded: 'HandOffSuperseded',
  /** A volume being created or grown went to an error state. */
  volumeFailed: 'VolumeFailed',
  /** A volume did not become available in time. */
  volumeTimeout: 'VolumeTimeout',
  /** Plain creation in the pool's project (plain_create_in = pool) was refused by its quota. */
  poolOverQuota: 'PoolOverQuota',
  /** The tenant has a volume of that name already, in another zone than the claim's. */
  zoneMismatch: 'ZoneMismatch',
} as const;

export interface ClaimTarget {
  claimId: string;
  projectId: string;
  userId: string;
  name: string;
  os: string | null;
  volumeType: string;
  sizeGb: number | null;
  /**
   * The availability zone the volume must be in (the VM's): pool stock of that zone only, plain
   * creation in it. Absent or '': the pool names no zones (Cinder's default zone).
   */
  zone?: string;
}

export interface ReservedVolume {
  rowId: number;
  volumeId: string;
  sizeGb: number | null;
  snapshotId: string;
}

/** Whether a delivered volume must still grow to the size the claim asked for. */
export const mustGrow = (askedGb: number | null, deliveredGb: number | null): boolean =>
  askedGb !== null && askedGb > (deliveredGb ?? 0);

/**
 * A pool hit's answer: the volume delivered to the tenant (its row removed, a refill asked
 * for), or the one found there already (the row given back).
 */
export interface Delivery {
  existing: boolean;
  volumeId: string;
  /** The delivered volume's size (null for an existing one). */
  sizeGb: number | null;
  /** The hand-off released the claim's name lock (false: the volume must still grow). */
  nameReleased: boolean;
  /** The volume's availability zone, as Cinder reports it (absent from older builds). */
  zone?: string;
}

/** What a compensation found: the row given back, quarantined, accepted after all, or not ours. */
export type Compensation = 'released' | 'quarantined' | 'accepted' | 'lost';

export interface CurrentImage {
  snapshotId: string;
  volumeType: string;
  sizeGb: number;
}

/** What to claim: the target of the activities (tenant, name, OS, type, size) plus the request. */
export interface ClaimInput extends Omit<ClaimTarget, 'claimId'> {
  requestId: string;
  systemDisk: boolean;
  /** The answer's block device mapping deletes the volume with the server (Nova's flag). */
  deleteOnTermination?: boolean;
  /** Bound on plain creation (create → available). */
  createTimeoutMs?: number;
}

export type ClaimOutcome = 'existing' | 'pool' | 'created';

/**
 * The claimed volume as Nova's `block_device_mapping_v2` takes it: a server boots from it
 * (`boot_index` 0, a system disk) or gets it as a data disk (-1).
 */
export interface BlockDeviceMapping {
  uuid: string;
  source_type: 'volume';
  destination_type: 'volume';
  boot_index: number;
  delete_on_termination: boolean;
}

export const blockDeviceMapping = (
  volumeId: string,
  systemDisk: boolean,
  deleteOnTermination = false,
): BlockDeviceMapping => ({
  uuid: volumeId,
  source_type: 'volume',
  destination_type: 'volume',
  boot_index: systemDisk ? 0 : -1,
  delete_on_termination: deleteOnTermination,
});

export interface ClaimResult {
  volumeId: string;
  outcome: ClaimOutcome;
  /** Why a system disk did not come from the pool (empty, hand-off failed…). */
  fallbackReason: string | null;
  timingsMs: Record<string, number>;
  /** Set when the volume was delivered but could not be grown to the requested size. */
  extendError?: string | null;
  /** The volume's availability zone (absent when the pool names no zones and Cinder did not say). */
  availabilityZone?: string;
  /** Ready for Nova's server create (absent from claims of older builds). */
  blockDeviceMapping?: BlockDeviceMapping;
}

export interface ClaimStatus {
  step: string;
  outcome: ClaimOutcome | null;
  volumeId: string | null;
  fallbackReason: string | null;
}

export const claimStatusQuery = defineQuery<ClaimStatus>('status');

/**
 * Early return: the API starts the claim with this update (update-with-start) and gets the
 * answer as soon as the tenant has the volume, while the workflow finishes its bookkeeping.
 * `bodyHash` must be the one the claim was started with (its memo): a reused requestId with
 * another body is rejected, and nothing is written to the history.
 */
export const claimDeliveredUpdate = defineUpdate<ClaimResult, [{ bodyHash?: string }]>('delivered');
