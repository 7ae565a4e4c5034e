/**
 * A fault-injecting HTTP proxy in front of the real Cinder, on loopback, for tests: per method
 * and path it answers an error status, resets the connection, delays, or forwards the request
 * and then loses or replaces Cinder's reply (Cinder acted, the caller never hears of it).
 * Requests that match no rule pass through unchanged.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type FaultAction =
  /** Answer this status without asking Cinder. */
  | { kind: 'status'; status: number; message?: string }
  /** Close the connection without an answer (Cinder never sees the request). */
  | { kind: 'reset' }
  /** Wait, then forward. */
  | { kind: 'delay'; ms: number }
  /** Forward; Cinder acts; then close the connection: the reply is lost. */
  | { kind: 'lose-reply' }
  /** Forward; Cinder acts; then answer this status instead of Cinder's reply. */
  | { kind: 'replace-reply'; status: number; message?: string };

export interface FaultRule {
  method?: string;
  path: RegExp;
  action: FaultAction;
  /** How many matching requests get the fault (then the rule is spent); unset: all. */
  times?: number;
}

export interface RuleHandle {
  /** Matching requests the rule acted on so far. */
  readonly hits: number;
  remove(): void;
}

export class FaultProxy {
  private readonly rules: { rule: FaultRule; hits: number; removed: boolean }[] = [];
  private readonly server: http.Server;
  /** Every request seen, as `METHOD path` (without the query). */
  readonly seen: string[] = [];

  private constructor(private readonly target: URL) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  /** Starts a proxy to `target` (e.g. http://127.0.0.1:8776) on a free loopback port. */
  static async start(target: string): Promise<FaultProxy> {
    const p = new FaultProxy(new URL(target));
    await new Promise<void>((r) => p.server.listen(0, '127.0.0.1', r));
    return p;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The Cinder v3 base URL through this proxy. */
  get cinderUrl(): string {
    return `http://127.0.0.1:${this.port}/v3`;
  }

  add(rule: FaultRule): RuleHandle {
    const entry = { rule, hits: 0, removed: false };
    this.rules.push(entry);
    return {
      get hits() {
        return entry.hits;
      },
      remove: () => {
        entry.removed = true;
      },
    };
  }

  clear(): void {
    for (const r of this.rules) r.removed = true;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private match(method: string, path: string) {
    return this.rules.find(
      (r) =>
        !r.removed &&
        (!r.rule.method || r.rule.method === method) &&
        r.rule.path.test(path) &&
        (r.rule.times === undefined || r.hits < r.rule.times),
    );
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0] as string;
    this.seen.push(`${method} ${path}`);
    const hit = this.match(method, path);
    if (hit) hit.hits++;
    const action = hit?.rule.action;
    const fail = (status: number, message = 'injected fault'): void =>
      void res
        .writeHead(status, { 'content-type': 'application/json' })
        .end(JSON.stringify({ fault: { code: status, message } }));

    if (action?.kind === 'status') return fail(action.status, action.message);
    if (action?.kind === 'reset') return void req.socket.destroy();
    if (action?.kind === 'delay') await new Promise((r) => setTimeout(r, action.ms));

    const upstream = http.request(
      {
        host: this.target.hostname,
        port: this.target.port,
        method,
        path: req.url,
        headers: { ...req.headers, host: this.target.host },
      },
      (up) => {
        const reply: Buffer[] = [];
        up.on('data', (c: Buffer) => reply.push(c));
        up.on('end', () => {
          if (action?.kind === 'lose-reply') return void req.socket.destroy();
          if (action?.kind === 'replace-reply') return fail(action.status, action.message);
          res.writeHead(up.statusCode ?? 502, up.headers).end(Buffer.concat(reply));
        });
      },
    );
    upstream.on('error', () => req.socket.destroy());
    upstream.end(body);
  }
}
