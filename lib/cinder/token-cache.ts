/**
 * The Keystone tokens of one process, by who authenticates for which project. A token is reused
 * until shortly before it expires; however many callers ask at once, one authentication per key
 * runs; a token Cinder refused is replaced once, not once per caller that saw the refusal. At most
 * `maxEntries` tokens are held (the least recently used leave first), so that serving many
 * tenants does not grow memory without bound. Tokens are secrets: nothing here logs them.
 */
import { LRUCache } from 'lru-cache';
import type { Session } from './types';

/** One token as Keystone issued it. */
export interface IssuedToken {
  session: Session;
  /** `expires_at` and `issued_at` of Keystone's answer (ms since the epoch, Keystone's clock). */
  expiresAt: number;
  issuedAt?: number;
}

export interface TokenCacheOptions {
  /** Tokens held at most; default 2,000. */
  maxEntries?: number;
  /** Renew this long before expiry (default 5 min), at most a quarter of the token's life. */
  renewBeforeMs?: number;
  now?: () => number;
}

type Issue = () => Promise<IssuedToken>;

export class TokenCache {
  private readonly lru: LRUCache<string, Session, Issue>;
  private readonly now: () => number;

  constructor(private readonly opts: TokenCacheOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.lru = new LRUCache<string, Session, Issue>({
      max: opts.maxEntries ?? 2000,
      // Ages are read from `now` on every look: a cached clock would serve a token past its time.
      ttlResolution: 0,
      perf: { now: this.now },
      // An entry evicted while its token is being issued still answers the callers waiting for it.
      ignoreFetchAbort: true,
      fetchMethod: async (_key, _stale, { options, context: issue }) => {
        const issued = await issue();
        options.ttl = this.usableFor(issued);
        return issued.session;
      },
    });
  }

  /**
   * The session of `key`, issued by `issue` when none is held or it is about to expire.
   * `rejectedToken`: Cinder refused this token; it is replaced unless the cache already holds
   * another one (a concurrent caller replaced it first).
   */
  async session(key: string, issue: Issue, rejectedToken?: string): Promise<Session> {
    const forceRefresh = rejectedToken !== undefined && this.lru.peek(key)?.token === rejectedToken;
    const session = await this.lru.fetch(key, { context: issue, forceRefresh });
    if (!session) throw new Error('Keystone token cache: no session issued');
    return session;
  }

  /** Tokens held now. */
  get size(): number {
    return this.lru.size;
  }

  /**
   * How long a token is used: its life (on Keystone's clock when it says when it issued the
   * token, so a skewed local clock does not matter) less the renewal margin. A token with no life
   * left serves the call that asked for it only.
   */
  private usableFor(t: IssuedToken): number {
    const life = t.expiresAt - (t.issuedAt ?? this.now());
    const margin = Math.min(this.opts.renewBeforeMs ?? 5 * 60_000, Math.max(0, life / 4));
    const ms = Math.floor(life - margin);
    return Number.isFinite(ms) && ms > 0 ? ms : 1;
  }
}
