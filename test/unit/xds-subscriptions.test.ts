// The SotW and delta subscription state machines, without sockets.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DeltaSubscription, type DeltaPlan, type DeltaRequest } from '../../src/xds/server/delta-subscription.ts';
import { SotwSubscription, type SotwPlan } from '../../src/xds/server/sotw-subscription.ts';
import { SubscriptionLimitError, versionOf, type TypeView } from '../../src/xds/server/subscriptions.ts';
import type { XdsResource } from '../../src/xds/snapshot.ts';

const resource = (name: string, version: string): XdsResource => ({ name, version, resource: { type_url: 'x', value: Buffer.from(`${name}@${version}`) } });

/** A view over name→version, optionally refusing some names. */
function view(entries: Record<string, string>, refused: readonly string[] = []): TypeView {
  return {
    resources: new Map(Object.entries(entries).map(([name, version]) => [name, resource(name, version)])),
    allowed: (name) => !refused.includes(name),
  };
}

const names = (plan: SotwPlan | DeltaPlan | undefined): string[] => plan?.resources.map((r) => r.name) ?? [];

describe('SotwSubscription', () => {
  /** Sends the plan with a nonce and returns both. */
  const send = (sub: SotwSubscription, plan: SotwPlan | undefined, nonce: string) => {
    assert.ok(plan, 'expected something to send');
    sub.sent(plan, nonce);
    return { plan, nonce };
  };
  const request = (names: string[] = [], nonce = '', error?: string) => ({ resourceNames: names, nonce, error });

  it('answers a first wildcard request for Listener/Cluster even when empty, and an empty EDS request never', () => {
    const cds = new SotwSubscription('cluster');
    assert.deepEqual(cds.receive(request(), 10), { kind: 'request' });
    assert.equal(cds.wildcard, true);
    const plan = cds.plan(view({}));
    assert.deepEqual(plan?.resources, []);
    assert.equal(plan?.requested, true);

    const eds = new SotwSubscription('endpoint');
    eds.receive(request(), 10);
    assert.equal(eds.wildcard, false);
    assert.equal(eds.plan(view({ a: '1' })), undefined);
  });

  it('sends the full set, versioned by its content; ACK records it; only changes are sent afterwards', () => {
    const sub = new SotwSubscription('cluster');
    sub.receive(request(), 10);
    const first = send(sub, sub.plan(view({ a: '1', b: '1' })), 'n1');
    assert.deepEqual(names(first.plan), ['a', 'b']);
    assert.equal(first.plan.version, versionOf([['b', '1'], ['a', '1']]));
    assert.equal(sub.awaiting, true);
    assert.equal(sub.plan(view({ a: '1', b: '1' })), undefined, 'nothing new while the same set is in flight');
    assert.deepEqual(sub.receive(request([], 'n1'), 10), { kind: 'ack', version: first.plan.version });
    assert.equal(sub.ackedVersion, first.plan.version);
    assert.equal(sub.plan(view({ a: '1', b: '1' })), undefined);
    const second = sub.plan(view({ a: '2', b: '1' }));
    assert.deepEqual(names(second), ['a', 'b'], 'Listener/Cluster responses carry the complete set');
    assert.notEqual(second?.version, first.plan.version);
    assert.equal(second?.requested, false);
  });

  it('treats a request with another nonce as stale while a response is outstanding, but records its names', () => {
    const sub = new SotwSubscription('endpoint');
    sub.receive(request(['a']), 10);
    send(sub, sub.plan(view({ a: '1', b: '1' })), 'n1');
    assert.deepEqual(sub.receive(request(['a', 'b'], ''), 10), { kind: 'stale' });
    assert.equal(sub.awaiting, true);
    assert.deepEqual([...sub.resourceNames], ['a', 'b']);
    assert.equal(sub.receive(request(['a', 'b'], 'n1'), 10).kind, 'ack');
    const next = sub.plan(view({ a: '1', b: '1' }));
    assert.deepEqual(names(next), ['b'], 'b was newly requested: sent although unchanged (a is held already)');
    assert.equal(next?.requested, true);
  });

  it('after a NACK sends nothing until something not already rejected changes, then sends it', () => {
    const sub = new SotwSubscription('endpoint');
    sub.receive(request(['a', 'b']), 10);
    const good = send(sub, sub.plan(view({ a: '1', b: '1' })), 'n1');
    sub.receive(request(['a', 'b'], 'n1'), 10);
    send(sub, sub.plan(view({ a: 'bad', b: '1' })), 'n2');
    const answer = sub.receive(request(['a', 'b'], 'n2', 'a is invalid'), 10);
    assert.equal(answer.kind, 'nack');
    assert.equal(answer.kind === 'nack' && answer.keptVersion, good.plan.version);
    assert.equal(answer.kind === 'nack' && answer.message, 'a is invalid');
    assert.equal(sub.ackedVersion, good.plan.version, 'the last good version is kept');
    assert.equal(sub.plan(view({ a: 'bad', b: '1' })), undefined, 'the rejected set is not re-sent');
    // Unsubscribing b changes nothing the client has not already rejected.
    sub.receive(request(['a'], 'n2'), 10);
    assert.equal(sub.plan(view({ a: 'bad', b: '1' })), undefined);
    // A real change goes out (with the rejected resource as it still is: the client decides per resource).
    sub.receive(request(['a', 'b'], 'n2'), 10);
    const after = sub.plan(view({ a: 'bad', b: '2' }));
    assert.deepEqual(names(after), ['a', 'b']);
    const fixed = sub.plan(view({ a: '3', b: '1' }));
    assert.deepEqual(fixed?.resources.map((r) => r.version), ['3', '1']);
  });

  it('pushes a named resource when it appears, and leaves unsubscribed ones alone', () => {
    const sub = new SotwSubscription('endpoint');
    sub.receive(request(['a', 'ghost']), 10);
    const first = send(sub, sub.plan(view({ a: '1', other: '1' })), 'n1');
    assert.deepEqual(names(first.plan), ['a'], 'only requested names');
    sub.receive(request(['a', 'ghost'], 'n1'), 10);
    assert.equal(sub.plan(view({ a: '1', other: '2' })), undefined, 'an unrequested change is not sent');
    const appeared = sub.plan(view({ a: '1', ghost: '1' }));
    assert.deepEqual(names(appeared), ['ghost'], 'only what appeared (EDS responses need not repeat a)');
    assert.equal(appeared?.requested, false, 'a push, not an answer');
    sub.receive(request(['ghost'], 'n1'), 10);
    assert.equal(sub.plan(view({ a: '1' })), undefined, 'dropping a name sends nothing (ghost still absent)');
  });

  it('sends only the ClusterLoadAssignments that changed, versioned by everything the client then holds', () => {
    const sub = new SotwSubscription('endpoint');
    sub.receive(request(['a', 'b']), 10);
    const first = send(sub, sub.plan(view({ a: '1', b: '1' })), 'n1');
    assert.deepEqual(names(first.plan), ['a', 'b'], 'the first answer carries every requested name');
    sub.receive(request(['a', 'b'], 'n1'), 10);
    const push = sub.plan(view({ a: '1', b: '2' }));
    assert.deepEqual(names(push), ['b'], 'one of two clusters changed: only it is sent');
    assert.equal(push?.requested, false);
    assert.equal(push?.version, versionOf([['a', '1'], ['b', '2']]), 'version_info names the merged set');
    send(sub, push, 'n2');
    // While b@2 is outstanding the record assumes it is accepted: a change to a alone sends a alone.
    assert.deepEqual(names(sub.plan(view({ a: '2', b: '2' }))), ['a']);
    sub.receive(request(['a', 'b'], 'n2'), 10);
    assert.equal(sub.ackedVersion, versionOf([['a', '1'], ['b', '2']]));
    assert.equal(sub.plan(view({ a: '1', b: '2' })), undefined);
  });

  it('sends only the RouteConfigurations that changed; a removal sends nothing, and a return at a held version nothing either', () => {
    const sub = new SotwSubscription('route');
    sub.receive(request(['r1', 'r2']), 10);
    send(sub, sub.plan(view({ r1: '1', r2: '1' })), 'n1');
    sub.receive(request(['r1', 'r2'], 'n1'), 10);
    assert.equal(sub.plan(view({ r1: '1' })), undefined, 'SotW cannot say an RDS/EDS resource is gone: the parent stops naming it');
    assert.equal(sub.plan(view({ r1: '1', r2: '1' })), undefined, 'back at the version the client holds');
    assert.deepEqual(names(sub.plan(view({ r1: '1', r2: '2' }))), ['r2'], 'back at another version');
    // The client unsubscribes (its listener dropped r2): what it held of r2 is forgotten, and a new request is answered.
    sub.receive(request(['r1'], 'n1'), 10);
    assert.equal(sub.plan(view({ r1: '1', r2: '1' })), undefined);
    sub.receive(request(['r1', 'r2'], 'n1'), 10);
    const again = send(sub, sub.plan(view({ r1: '1', r2: '1' })), 'n2');
    assert.deepEqual(names(again.plan), ['r2']);
    assert.equal(again.plan.requested, true);
  });

  it('records a NACK of a partial response with the names it carried', () => {
    const sub = new SotwSubscription('endpoint');
    sub.receive(request(['a', 'b']), 10);
    send(sub, sub.plan(view({ a: '1', b: '1' })), 'n1');
    sub.receive(request(['a', 'b'], 'n1'), 10);
    send(sub, sub.plan(view({ a: 'bad', b: '1' })), 'n2');
    const answer = sub.receive(request(['a', 'b'], 'n2', 'a is invalid'), 10);
    assert.deepEqual(answer.kind === 'nack' && answer.resourceNames, ['a']);
    assert.equal(sub.plan(view({ a: 'bad', b: '1' })), undefined);
    assert.deepEqual(names(sub.plan(view({ a: 'bad', b: '2' }))), ['a', 'b'], 'a real change resends what differs from the last ACK');
  });

  it('sends a removal for full-set types, as a response without the resource', () => {
    const sub = new SotwSubscription('listener');
    sub.receive(request(), 10);
    send(sub, sub.plan(view({ a: '1', b: '1' })), 'n1');
    sub.receive(request([], 'n1'), 10);
    assert.deepEqual(names(sub.plan(view({ a: '1' }))), ['a']);
    assert.deepEqual(names(sub.plan(view({}))), []);
  });

  it('follows the legacy wildcard rules: empty means "*" only until a name was requested', () => {
    const sub = new SotwSubscription('cluster');
    sub.receive(request([]), 10);
    assert.equal(sub.wildcard, true);
    sub.receive(request(['*', 'a']), 10);
    assert.equal(sub.wildcard, true);
    assert.deepEqual([...sub.resourceNames], ['a']);
    sub.receive(request(['a']), 10);
    assert.equal(sub.wildcard, false);
    sub.receive(request([]), 10);
    assert.equal(sub.wildcard, false, 'now an unsubscription from everything');
    assert.deepEqual([...sub.resourceNames], []);
  });

  it('filters what the identity may not see, as if it did not exist', () => {
    const sub = new SotwSubscription('cluster');
    sub.receive(request(['a', 'secret']), 10);
    assert.deepEqual(names(sub.plan(view({ a: '1', secret: '1' }, ['secret']))), ['a']);
    const wildcard = new SotwSubscription('cluster');
    wildcard.receive(request(), 10);
    assert.deepEqual(names(wildcard.plan(view({ a: '1', secret: '1' }, ['secret']))), ['a']);
  });

  it('refuses more names than the limit', () => {
    const sub = new SotwSubscription('endpoint');
    assert.throws(() => sub.receive(request(['a', 'b', 'c']), 2), SubscriptionLimitError);
    assert.doesNotThrow(() => sub.receive(request(['a', 'a', 'b']), 2), 'duplicates count once');
  });
});

describe('DeltaSubscription', () => {
  const req = (fields: Partial<DeltaRequest> & { initial?: Record<string, string> } = {}): DeltaRequest => ({
    subscribe: fields.subscribe ?? [],
    unsubscribe: fields.unsubscribe ?? [],
    initialVersions: new Map(Object.entries(fields.initial ?? {})),
    nonce: fields.nonce ?? '',
    error: fields.error,
  });
  const send = (sub: DeltaSubscription, plan: DeltaPlan | undefined, nonce: string): DeltaPlan => {
    assert.ok(plan, 'expected something to send');
    sub.sent(plan, nonce);
    return plan;
  };
  const sendAndAck = (sub: DeltaSubscription, plan: DeltaPlan | undefined, nonce: string): DeltaPlan => {
    const sent = send(sub, plan, nonce);
    assert.equal(sub.receive(req({ nonce }), 100).kind, 'ack');
    return sent;
  };

  it('legacy wildcard: a first request naming nothing subscribes to everything; changes and removals are deltas', () => {
    const sub = new DeltaSubscription('cluster');
    sub.receive(req(), 100);
    assert.equal(sub.wildcard, true);
    const first = sendAndAck(sub, sub.plan(view({ a: '1', b: '1' })), 'n1');
    assert.deepEqual(names(first), ['a', 'b']);
    assert.deepEqual([...sub.acknowledged], [['a', '1'], ['b', '1']]);
    const change = sendAndAck(sub, sub.plan(view({ a: '2', b: '1', c: '1' })), 'n2');
    assert.deepEqual(names(change), ['a', 'c'], 'only what changed');
    const removal = sub.plan(view({ a: '2', c: '1' }));
    assert.deepEqual(names(removal), []);
    assert.deepEqual(removal?.removed, ['b']);
    assert.equal(removal?.systemVersion, versionOf([['a', '2'], ['c', '1']]));
  });

  it('sends the first wildcard response even when empty, but nothing for an empty named one', () => {
    const cds = new DeltaSubscription('cluster');
    cds.receive(req(), 100);
    assert.deepEqual(cds.plan(view({}))?.resources, []);
    const eds = new DeltaSubscription('endpoint');
    eds.receive(req(), 100);
    assert.equal(eds.plan(view({ a: '1' })), undefined);
  });

  it('answers subscribe (even unchanged), says once that a missing name does not exist, sends nothing on unsubscribe', () => {
    const sub = new DeltaSubscription('endpoint');
    sub.receive(req({ subscribe: ['a', 'ghost'] }), 100);
    const first = sendAndAck(sub, sub.plan(view({ a: '1', b: '1' })), 'n1');
    assert.deepEqual(names(first), ['a']);
    assert.deepEqual(first.removed, ['ghost'], 'a subscribed name that does not exist');
    assert.equal(sub.plan(view({ a: '1', b: '1' })), undefined, 'ghost is not repeated');
    sub.receive(req({ subscribe: ['b'] }), 100);
    const b = sendAndAck(sub, sub.plan(view({ a: '1', b: '1' })), 'n2');
    assert.deepEqual(names(b), ['b'], 'a is not resent');
    sub.receive(req({ subscribe: ['a'] }), 100);
    assert.deepEqual(names(sub.plan(view({ a: '1', b: '1' }))), ['a'], 're-subscribing resends although the client should have it');
    sendAndAck(sub, sub.plan(view({ a: '1', b: '1' })), 'n3');
    sub.receive(req({ unsubscribe: ['a'] }), 100);
    assert.equal(sub.plan(view({ a: '1', b: '1' })), undefined, 'unsubscribe: nothing to send');
    assert.equal(sub.plan(view({ a: '2', b: '1' })), undefined, 'and no longer interested in a');
    const ghost = sub.plan(view({ b: '1', ghost: '1' }));
    assert.deepEqual(names(ghost), ['ghost'], 'a remembered missing name is pushed when it appears');
  });

  it('on unsubscribing a name while a wildcard is active, resends it if covered, else removes it', () => {
    const sub = new DeltaSubscription('cluster');
    sub.receive(req({ subscribe: ['*', 'extra'] }), 100);
    sendAndAck(sub, sub.plan(view({ a: '1' })), 'n1');
    sub.receive(req({ subscribe: ['a'] }), 100);
    sendAndAck(sub, sub.plan(view({ a: '1' })), 'n2');
    sub.receive(req({ unsubscribe: ['a', 'extra', 'never-subscribed'] }), 100);
    const plan = sub.plan(view({ a: '1' }));
    assert.deepEqual(names(plan), ['a'], 'a is still covered by the wildcard');
    assert.deepEqual(plan?.removed, ['extra'], 'extra is not: removed');
    sendAndAck(sub, plan, 'n3');
    sub.receive(req({ unsubscribe: ['*'] }), 100);
    assert.equal(sub.plan(view({ a: '2' })), undefined, 'no longer subscribed to anything');
  });

  it('uses initial_resource_versions to send only what differs on reconnect', () => {
    const sub = new DeltaSubscription('endpoint');
    sub.receive(req({ subscribe: ['a', 'b', 'gone'], initial: { a: '1', b: '1', gone: '1', unrelated: '1' } }), 100);
    const plan = sub.plan(view({ a: '1', b: '2', unrelated: '1' }));
    assert.deepEqual(names(plan), ['b']);
    assert.deepEqual(plan?.removed, ['gone']);
    assert.equal(plan?.requested, true);
  });

  it('after a NACK sends nothing until something new changes; the acknowledged versions stay', () => {
    const sub = new DeltaSubscription('endpoint');
    sub.receive(req({ subscribe: ['a', 'b'] }), 100);
    sendAndAck(sub, sub.plan(view({ a: '1', b: '1' })), 'n1');
    send(sub, sub.plan(view({ a: 'bad', b: '1' })), 'n2');
    const answer = sub.receive(req({ nonce: 'n2', error: 'a is invalid' }), 100);
    assert.equal(answer.kind, 'nack');
    assert.deepEqual([...sub.acknowledged], [['a', '1'], ['b', '1']]);
    assert.equal(sub.plan(view({ a: 'bad', b: '1' })), undefined);
    assert.deepEqual(names(sub.plan(view({ a: 'bad', b: '2' }))), ['a', 'b']);
    assert.deepEqual(names(sub.plan(view({ a: '3', b: '1' }))), ['a']);
  });

  it('honours subscription changes whatever the nonce, and counts only the latest nonce as an ACK', () => {
    const sub = new DeltaSubscription('endpoint');
    sub.receive(req({ subscribe: ['a'] }), 100);
    send(sub, sub.plan(view({ a: '1', b: '1' })), 'n1');
    assert.equal(sub.receive(req({ subscribe: ['b'], nonce: 'old' }), 100).kind, 'stale');
    assert.equal(sub.awaiting, true);
    assert.equal(sub.receive(req({ nonce: 'n1' }), 100).kind, 'ack');
    assert.deepEqual(names(sub.plan(view({ a: '1', b: '1' }))), ['b']);
  });

  it('treats names the identity may not see as not existing', () => {
    const sub = new DeltaSubscription('cluster');
    sub.receive(req({ subscribe: ['a', 'secret'] }), 100);
    const plan = sub.plan(view({ a: '1', secret: '1' }, ['secret']));
    assert.deepEqual(names(plan), ['a']);
    assert.deepEqual(plan?.removed, ['secret']);
  });

  it('refuses subscriptions and initial versions past the limit', () => {
    assert.throws(() => new DeltaSubscription('endpoint').receive(req({ subscribe: ['a', 'b', 'c'] }), 2), SubscriptionLimitError);
    assert.throws(() => new DeltaSubscription('endpoint').receive(req({ subscribe: ['a'], initial: { a: '1', b: '1', c: '1' } }), 2), SubscriptionLimitError);
    const sub = new DeltaSubscription('endpoint');
    sub.receive(req({ subscribe: ['a', 'b'] }), 2);
    assert.throws(() => sub.receive(req({ subscribe: ['c'] }), 2), SubscriptionLimitError);
  });
});
