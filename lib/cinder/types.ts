/** The parts of Cinder's v3 resources the pool uses, in camelCase. */

export interface Volume {
  id: string;
  name: string;
  description: string;
  status: string;
  size: number;
  volumeType: string | null;
  snapshotId: string | null;
  /** The volume's availability zone (Cinder's default zone when none was asked). */
  availabilityZone: string;
  /** Whether it can boot a server (Cinder's `bootable`, "true" / "false"). */
  bootable: boolean;
  metadata: Record<string, string>;
  /** Only visible to admins (`os-vol-tenant-attr:tenant_id`). */
  projectId?: string;
  createdAt: string;
  updatedAt: string | null;
}

export interface Snapshot {
  id: string;
  name: string;
  status: string;
  size: number;
  volumeId: string;
  metadata: Record<string, string>;
  projectId?: string;
  createdAt: string;
}

export interface VolumeType {
  id: string;
  name: string;
  extraSpecs: Record<string, string>;
}

export interface Transfer {
  id: string;
  name: string | null;
  volumeId: string;
  createdAt?: string;
}

/** Returned once, at creation: the auth key is a secret (whoever has it can take the volume). */
export interface CreatedTransfer extends Transfer {
  authKey: string;
}

export interface QuotaUsage {
  limit: number;
  inUse: number;
  reserved: number;
}

export interface CreateVolumeRequest {
  name: string;
  size: number;
  snapshotId?: string;
  volumeType?: string;
  metadata?: Record<string, string>;
  description?: string;
  availabilityZone?: string;
}

export interface ListVolumesQuery {
  name?: string;
  status?: string;
  /** Matches volumes having all these metadata pairs. */
  metadata?: Record<string, string>;
  /** Admin only: list every project's volumes. */
  allTenants?: boolean;
  /** Page size; every page is fetched. */
  pageSize?: number;
}

export interface ListSnapshotsQuery {
  name?: string;
  status?: string;
  volumeId?: string;
  allTenants?: boolean;
  pageSize?: number;
}

/** An authenticated session: a token, the Cinder endpoint and whom it acts for. */
export interface Session {
  token: string;
  /** Cinder v3 base URL for this project, without a trailing slash. */
  endpoint: string;
  projectId: string;
  userId: string;
}
