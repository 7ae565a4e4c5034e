/**
 * The local stack's cloud, as an operator would have set it up: the admin project that owns the
 * pool (from config/pool.ini) and two tenant projects that claim volumes. noauth Cinder takes
 * any 32-hex-digit project id; these are fixed so that tests and the demo can name them.
 */
export const TENANT_PROJECTS = {
  alpha: '1e5f0c9a7b3d4f2e8a6c5b4d3e2f1a0b',
  beta: '7c2a9e4f1b6d4a3c9e8f7a6b5c4d3e2f',
  gamma: '3b8d6f1a2c4e4b7d9f0a1c2e3d4b5a69',
} as const;

export const TENANT_USER = 'tenant-user';

/** The fake driver's backend name: every volume type of the stack lands there. */
export const FAKE_BACKEND = 'fake';

/** Size of the stack's OS source volumes and so of their snapshots and pool volumes. */
export const OS_IMAGE_SIZE_GB = 1;

export const ADMIN_QUOTA = { volumes: 2000, gigabytes: 20000, snapshots: 500 };
export const TENANT_QUOTA = { volumes: 500, gigabytes: 5000, snapshots: 100 };

/**
 * The stack's availability zones, the same in Cinder and Nova: a cinder-volume backend each
 * (`backend_availability_zone`), and with Nova a host aggregate and a nova-compute each. The
 * first is Cinder's default zone (`default_availability_zone`): a create without a zone lands
 * there. scripts/stack.sh and scripts/stack/nova.sh name the same zones.
 */
export const NOVA_ZONES = ['az-1', 'az-2'] as const;
export const STACK_ZONES = NOVA_ZONES;
export const DEFAULT_ZONE = NOVA_ZONES[0];
export const NOVA_FLAVOR = 'm1.pool';
