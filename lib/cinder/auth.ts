/**
 * Who we are to Cinder. Two strategies:
 * - noauth (standalone Cinder, seed 001): the token is literally `user_id:project_id`, every request
 *   is admin, and the endpoint is `<cinder_url>/<project_id>`.
 * - Keystone v3 password: a project-scoped token, cached and renewed before it expires; the
 *   volumev3 endpoint comes from the token's catalog (or `cinder_url` when given).
 * `forProject` gives the identity of a tenant project (the accept side of a transfer). In Keystone
 * mode it shares the token cache of the authenticator it derives from: one cache per process
 * when the Cinder client is built once (token-cache.ts).
 */
import axios, { type AxiosInstance } from 'axios';
import { CinderUnavailable, cinderMessage, errorForStatus } from './errors';
import { TokenCache, type IssuedToken } from './token-cache';

import type { Session } from './types';

export type { Session };

export interface Authenticator {
  readonly kind: 'noauth' | 'keystone';
  /**
   * A valid session. `rejectedToken`: Cinder answered 401 to this token; a new one is issued
   * unless the cached token is already another.
   */
  session(rejectedToken?: string): Promise<Session>;
  /** The same credentials acting in another project (by id). */
  forProject(projectId: string, userId?: string): Authenticator;
}

const HEX_PROJECT = /^[0-9a-f]{32}$/;

export class NoAuth implements Authenticator {
  readonly kind = 'noauth' as const;
  constructor(
    private readonly cinderUrl: string,
    private readonly userId: string,
    private readonly projectId: string,
  ) {
    if (!HEX_PROJECT.test(projectId)) {
      // noauth Cinder matches the URL's project against the token's; keep to Keystone-style ids.
      throw new Error(`noauth project id must be 32 hex digits, got ${JSON.stringify(projectId)}`);
    }
  }
  async session(): Promise<Session> {
    return {
      token: `${this.userId}:${this.projectId}`,
      endpoint: `${this.cinderUrl.replace(/\/+$/, '')}/${this.projectId}`,
      projectId: this.projectId,
      userId: this.userId,
    };
  }
  forProject(projectId: string, userId = this.userId): Authenticator {
    return new NoAuth(this.cinderUrl, userId, projectId);
  }
}

export interface KeystoneOptions {
  authUrl: string;
  username: string;
  password: string;
  userDomain: string;
  /** Scope by name (with domain) or by id. */
  project: { name: string; domain: string } | { id: string };
  region?: string;
  interface?: 'public' | 'internal' | 'admin';
  /** Overrides the catalog: `<cinderUrl>/<project_id>`. */
  cinderUrl?: string;
  timeoutMs?: number;
  /** Renew this long before expiry (default 5 min, at most a quarter of the token's life). */
  renewBeforeMs?: number;
  now?: () => number;
}

interface CatalogEntry {
  type: string;
  endpoints: { interface: string; region?: string; region_id?: string; url: string }[];
}

export class KeystonePasswordAuth implements Authenticator {
  readonly kind = 'keystone' as const;

  constructor(
    private readonly opts: KeystoneOptions,
    /** Shared with every authenticator derived by forProject. */
    private readonly tokens = new TokenCache({ renewBeforeMs: opts.renewBeforeMs, now: opts.now }),
    private readonly http: AxiosInstance = axios.create({
      timeout: opts.timeoutMs ?? 30_000,
      validateStatus: () => true,
    }),
  ) {}

  session(rejectedToken?: string): Promise<Session> {
    return this.tokens.session(this.cacheKey(), () => this.issue(), rejectedToken);
  }

  /**
   * The pool's credentials scoped to another project. Keystone knows only the pool's user: a
   * tenant's user id (noauth's second argument) plays no part in the token.
   */
  forProject(projectId: string): Authenticator {
    return new KeystonePasswordAuth(
      { ...this.opts, project: { id: projectId } },
      this.tokens,
      this.http,
    );
  }

  /** Who authenticates for which scope: the token cache's key (never the password). */
  private cacheKey(): string {
    const p = this.opts.project;
    const scope = 'id' in p ? `id ${p.id}` : `name ${p.domain}/${p.name}`;
    return [this.opts.authUrl, this.opts.userDomain, this.opts.username, scope].join('\n');
  }

  private scopeName(): string {
    const p = this.opts.project;
    return 'id' in p ? p.id : `${p.name} (domain ${p.domain})`;
  }

  private async issue(): Promise<IssuedToken> {
    const url = `${this.opts.authUrl.replace(/\/+$/, '')}/auth/tokens`;
    const scope =
      'id' in this.opts.project
        ? { project: { id: this.opts.project.id } }
        : { project: { name: this.opts.project.name, domain: { name: this.opts.project.domain } } };
    const body = {
      auth: {
        identity: {
          methods: ['password'],
          password: {
            user: {
              name: this.opts.username,
              domain: { name: this.opts.userDomain },
              password: this.opts.password,
            },
          },
        },
        scope,
      },
    };
    let res;
    try {
      res = await this.http.post(url, body);
    } catch (err) {
      throw new CinderUnavailable(`Keystone unreachable: ${(err as Error).message}`, {
        method: 'POST',
        path: '/auth/tokens',
        cause: (err as { code?: string }).code, // the axios error's config holds the password
      });
    }
    if (res.status !== 201 && res.status !== 200) {
      throw errorForStatus(
        res.status,
        // Names who was refused and why, never the password.
        `Keystone refused ${this.opts.username} (domain ${this.opts.userDomain}) for project ${this.scopeName()}: ${cinderMessage(res.data) ?? 'no message'}` +
          // Keystone answers a scope without a role like a wrong password; say both.
          (res.status === 401 ? ' (wrong password, or no role in that project)' : ''),
        {
          method: 'POST',
          path: '/auth/tokens',
          requestId: res.headers['x-openstack-request-id'] as string | undefined,
        },
      );
    }
    const token = res.headers['x-subject-token'] as string | undefined;
    const t = res.data?.token as
      | {
          expires_at: string;
          issued_at?: string;
          project?: { id: string };
          user: { id: string };
          catalog?: CatalogEntry[];
        }
      | undefined;
    if (!token || !t?.project) throw new Error('Keystone returned no project-scoped token');
    const projectId = t.project.id;
    const endpoint = this.opts.cinderUrl
      ? `${this.opts.cinderUrl.replace(/\/+$/, '')}/${projectId}`
      : this.catalogEndpoint(t.catalog ?? []);
    return {
      session: { token, endpoint, projectId, userId: t.user.id },
      expiresAt: Date.parse(t.expires_at),
      issuedAt: t.issued_at ? Date.parse(t.issued_at) : undefined,
    };
  }

  private catalogEndpoint(catalog: CatalogEntry[]): string {
    const wanted = this.opts.interface ?? 'public';
    for (const type of ['block-storage', 'volumev3']) {
      const entry = catalog.find((c) => c.type === type);
      const ep = entry?.endpoints.find(
        (e) =>
          e.interface === wanted &&
          (!this.opts.region || e.region === this.opts.region || e.region_id === this.opts.region),
      );
      if (ep) return ep.url.replace(/\/+$/, '');
    }
    throw new Error(
      `no ${wanted} volumev3/block-storage endpoint in the Keystone catalog${this.opts.region ? ` for region ${this.opts.region}` : ''}`,
    );
  }
}
