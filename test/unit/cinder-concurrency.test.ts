/**
 * The Cinder client's bound on calls in flight (`max_concurrent_calls`): against a local HTTP
 * server that counts concurrent requests, a client family never has more than its bound in
 * flight, every call still completes, and a call cancelled while it waits for a slot is never
 * sent; a volume create waiting for a slot goes before the other waiting calls. (The claim and
 * burst paths run through the same client against the real Cinder.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CinderClient, NoAuth } from '../../lib/cinder';

const PROJECT = '0123456789abcdef0123456789abcdef';
let server: http.Server;
let url = '';
let inFlight = 0;
let peak = 0;
let served = 0;
const order: string[] = [];

before(async () => {
  server = http.createServer((req, res) => {
    inFlight++;
    served++;
    order.push(`${req.method} ${req.url?.replace(/^\/v3\/[0-9a-f]{32}/, '')}`);
    peak = Math.max(peak, inFlight);
    setTimeout(() => {
      inFlight--;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ volume: { id: req.url?.split('/').pop(), status: 'available' } }));
    }, 40);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v3`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

test('no more calls in flight than the bound, across derived clients; all complete', async () => {
  peak = 0;
  const root = new CinderClient(new NoAuth(url, 'pool', PROJECT), { maxConcurrentCalls: 3 });
  const tenant = root.asProject('fedcba9876543210fedcba9876543210');
  const ids = Array.from({ length: 12 }, (_, i) => `v${i}`);
  const got = await Promise.all(
    ids.map((id, i) =>
      (i % 2 ? tenant : root.withSignal(new AbortController().signal)).getVolume(id),
    ),
  );
  assert.deepEqual(
    got.map((v) => v.id),
    ids,
  );
  assert.equal(peak, 3);
  assert.equal(root.callCount, 12);
});

test('a call cancelled while it waits for a slot is never sent; the slot order holds', async () => {
  peak = 0;
  const before = served;
  const root = new CinderClient(new NoAuth(url, 'pool', PROJECT), { maxConcurrentCalls: 1 });
  const abort = new AbortController();
  const first = root.getVolume('a');
  const cancelled = root.withSignal(abort.signal).getVolume('b');
  const third = root.getVolume('c');
  abort.abort();
  await assert.rejects(cancelled, /call cancelled/);
  assert.equal((await first).id, 'a');
  assert.equal((await third).id, 'c');
  assert.equal(served - before, 2, 'the cancelled call reached the server');
  assert.equal(peak, 1);
});

test('a waiting volume create goes first: the backend starts its long work early', async () => {
  const root = new CinderClient(new NoAuth(url, 'pool', PROJECT), { maxConcurrentCalls: 1 });
  order.length = 0;
  const calls = [
    root.getVolume('x1'),
    root.getVolume('x2'),
    root.getVolume('x3'),
    root.createVolume({ name: 'made', size: 1, volumeType: 'sas' }).catch(() => undefined),
  ];
  await Promise.all(calls);
  // x1 held the only slot; of the three waiting, the create was served first.
  assert.deepEqual(order, [
    'GET /volumes/x1',
    'POST /volumes',
    'GET /volumes/x2',
    'GET /volumes/x3',
  ]);
});
