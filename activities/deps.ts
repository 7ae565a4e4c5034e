/** What activities are built from: clients made once per worker process, never per call. */
import type { AppConfig } from '../lib/config/load';
import type { CinderClient } from '../lib/cinder';
import type { Db } from '../lib/pool-state/db';
import type { Logger } from '../lib/log';
import type { Client } from '@temporalio/client';

export interface Deps {
  config: AppConfig;
  cinder: CinderClient;
  db: Db;
  log: Logger;
  /** For activities that talk to Temporal itself (refill trigger); absent in some tests. */
  temporal?: Client;
}
