// The outbound queue with a scripted Delivery (the real one needs Tor; test/e2e covers that).
import { describe, it, beforeEach, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { outboundQueue, type OutboundQueue, type QueueCipher } from './index.ts'
import type { MailStore } from '../store/index.ts'
import { openTestVault, testQueueCipher, TEST_PASSPHRASE } from '../../test/harness/vault.ts'
import type { Vault } from '../vault/index.ts'
import { silentLogger } from '../log/index.ts'
import { SMTPServer } from 'smtp-server'
import type { AddressInfo } from 'node:net'
import { delivery as createDelivery, DeliveryError, RELAY_DESTINATION, type Delivery } from '../delivery/index.ts'
import type { RecipientResult } from '../smtp-client/index.ts'
import { ScriptedDelivery, acceptAll } from '../../test/harness/scripted-delivery.ts'
import { generateOnionKey } from '../../protocol/onion.ts'
import { ClassicLevel } from 'classic-level'

const me = generateOnionKey()
const peerA = generateOnionKey()
const peerB = generateOnionKey()
const from = `me@${me.address}.onion`
const toA = `a@${peerA.address}.onion`
const toB = `b@${peerB.address}.onion`

const ok = acceptAll

// One key for the whole file: a queue reopened after a restart must read what it wrote.
const cipher = testQueueCipher()
let dir: string
let store: MailStore
let queue: OutboundQueue | undefined

function makeQueue (delivery: Delivery, options: { delays?: number[], hasRelay?: boolean | (() => boolean), noticeAfter?: number, cipher?: QueueCipher, routeOf?: (address: string) => string | undefined } = {}): OutboundQueue {
  queue = outboundQueue({
    path: join(dir, 'queue'),
    domain: `${me.address}.onion`,
    retry: { delaysMs: options.delays ?? [30, 30, 30], delayedNoticeAfterAttempts: options.noticeAfter ?? 2 },
    concurrency: 4,
    hasRelay: options.hasRelay ?? false,
    ...(options.routeOf !== undefined ? { routeOf: options.routeOf } : {})
  }, { logger: silentLogger(), store, delivery, cipher: options.cipher ?? cipher })
  return queue
}

/** Stop the queue and list the keys of its LevelDB (it must be closed to be opened here). */
async function queueKeys (): Promise<string[]> {
  await queue?.stop()
  queue = undefined
  const db = new ClassicLevel<string, Buffer>(join(dir, 'queue'), { valueEncoding: 'buffer' })
  try {
    return await db.keys().all()
  } finally {
    await db.close()
  }
}

/**
 * A message sent as copies, as an encrypted one is: `shared` for the To recipients, and a copy
 * of its own for the Bcc recipient. The Outbox keeps `raw`, which no recipient is sent.
 */
async function submitWithCopies (q: OutboundQueue, to: string[], bcc: string): Promise<{ id: string, raw: Buffer, shared: Buffer, secret: Buffer }> {
  const raw = Buffer.from(`From: <${from}>\r\nTo: ${to.join(', ')}\r\nBcc: <${bcc}>\r\nSubject: the sender's copy\r\nMessage-ID: <c${Math.random()}@x>\r\n\r\nplain body\r\n`)
  const shared = Buffer.from(`From: <${from}>\r\nTo: ${to.join(', ')}\r\nSubject: ...\r\n\r\nciphertext for the To recipients\r\n`)
  const secret = Buffer.from(`From: <${from}>\r\nTo: ${to.join(', ')}\r\nSubject: ...\r\n\r\nciphertext for the Bcc recipient alone\r\n`)
  const stored = await store.add({ folder: 'Outbox', raw, from, to: [...to, bcc] })
  await q.enqueue({ storeId: stored.meta.id, from, to: [...to, bcc], raw, copies: [{ to, raw: shared }, { to: [bcc], raw: secret }] })
  return { id: stored.meta.id, raw, shared, secret }
}

async function submit (q: OutboundQueue, to: string[], extraHeaders = '', headerTo = to): Promise<string> {
  const raw = Buffer.from(`From: <${from}>\r\nTo: ${headerTo.join(', ')}\r\n${extraHeaders}Subject: hello\r\nMessage-ID: <m${Math.random()}@x>\r\n\r\nbody\r\n`)
  const stored = await store.add({ folder: 'Outbox', raw, from, to })
  await q.enqueue({ storeId: stored.meta.id, from, to, raw })
  return stored.meta.id
}

async function until (condition: () => Promise<boolean> | boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

describe('outbound queue', () => {
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smtorp-queue-'))
    store = (await openTestVault(join(dir, 'vault'))).vault
  })
  afterEach(async () => {
    await queue?.stop()
    queue = undefined
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('delivers, one envelope per destination, and moves the message to Sent', async () => {
    const delivery = new ScriptedDelivery(ok)
    const q = makeQueue(delivery, { hasRelay: true })
    await q.start()
    const id = await submit(q, [toA, toB, 'c@example.org', 'd@example.net'])
    await until(async () => (await store.get(id))?.folder === 'Sent')
    const destinations = delivery.calls.map(c => c.destination).sort()
    assert.deepEqual(destinations, [RELAY_DESTINATION, `${peerA.address}.onion`, `${peerB.address}.onion`].sort())
    assert.deepEqual(delivery.calls.find(c => c.destination === RELAY_DESTINATION)?.envelope.to.sort(), ['c@example.org', 'd@example.net'])
    assert.equal(q.list().length, 0)
  })

  it('strips Bcc from what it sends', async () => {
    const delivery = new ScriptedDelivery(ok)
    const q = makeQueue(delivery)
    await q.start()
    await submit(q, [toA, toB, `x@${peerB.address}.onion`], `Bcc: <${toB}>,\r\n  <x@${peerB.address}.onion>\r\n`, [toA])
    await until(() => delivery.calls.length === 2)
    for (const call of delivery.calls) {
      assert.doesNotMatch(call.envelope.raw.toString(), /bcc|x@/i)
      assert.match(call.envelope.raw.toString(), /^From: .*\r\nTo: .*\r\nSubject: hello\r\n/)
    }
  })

  it('fails a refused recipient at once, with a notice in the sender\'s Inbox', async () => {
    const q = makeQueue(new ScriptedDelivery((_d, e) => e.to.map(address => ({ address, ok: false, permanent: true, reply: '550 5.1.1 No such user here' }))))
    await q.start()
    const id = await submit(q, [toA])
    await until(async () => (await store.get(id))?.folder === 'Sent')
    assert.ok((await store.get(id))!.flags.includes('$Undelivered'))
    const notices = await store.list('Inbox')
    assert.equal(notices.length, 1)
    const dsn = (await store.get(notices[0]!.id))!.raw.toString()
    assert.match(dsn, /report-type=delivery-status/)
    assert.match(dsn, new RegExp(`Final-Recipient: rfc822; ${toA}`))
    assert.match(dsn, /Action: failed/)
    assert.match(dsn, /No such user here/)
  })

  it('retries transient failures on schedule, says "delayed" once, then delivers', async () => {
    let attempts = 0
    const delivery = new ScriptedDelivery((_d, e) => ++attempts < 4 ? new DeliveryError('onion service descriptor not found', false) : ok(_d, e) as RecipientResult[])
    const q = makeQueue(delivery, { delays: [20, 20, 20, 20], noticeAfter: 2 })
    await q.start()
    const id = await submit(q, [toA])
    await until(() => q.list()[0]?.recipients[0]?.attempts === 1)
    assert.equal(q.list()[0]?.recipients[0]?.lastResult, 'onion service descriptor not found')
    await until(async () => (await store.get(id))?.folder === 'Sent')
    assert.equal(attempts, 4)
    const notices = await Promise.all((await store.list('Inbox')).map(async m => (await store.get(m.id))!.raw.toString()))
    assert.equal(notices.length, 1)
    assert.match(notices[0]!, /Action: delayed/)
    assert.match(notices[0]!, /Will-Retry-Until/)
  })

  it('gives up when the schedule runs out, with a "failed" notice', async () => {
    const q = makeQueue(new ScriptedDelivery(() => new DeliveryError('connection refused', false)), { delays: [10, 10], noticeAfter: 5 })
    await q.start()
    const id = await submit(q, [toA])
    await until(async () => (await store.get(id))?.folder === 'Sent')
    const notices = await Promise.all((await store.list('Inbox')).map(async m => (await store.get(m.id))!.raw.toString()))
    assert.equal(notices.length, 1)
    assert.match(notices[0]!, /Action: failed/)
    assert.match(notices[0]!, /Status: 4\.4\.7/)
  })

  it('fails mail to ordinary addresses at once when no relay is configured', async () => {
    const delivery = new ScriptedDelivery(ok)
    const q = makeQueue(delivery, { hasRelay: false })
    await q.start()
    const id = await submit(q, ['someone@example.org', toA])
    await until(async () => (await store.get(id))?.folder === 'Sent')
    assert.deepEqual(delivery.calls.map(c => c.destination), [`${peerA.address}.onion`])
    const dsn = (await store.get((await store.list('Inbox'))[0]!.id))!.raw.toString()
    assert.match(dsn, /no legacy relay is configured/)
    assert.match(dsn, /someone@example\.org/)
  })

  it('shows an attempt under way, and when it ends the next time instead', async () => {
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    const offline = new ScriptedDelivery(() => new DeliveryError('peer offline', false))
    const q = makeQueue({ deliver: async (d, e) => { await held; return await offline.deliver(d, e) }, stop: async () => {}, stats: () => offline.stats() }, { delays: [60_000] })
    await q.start()
    await submit(q, [toA])
    await until(() => q.list()[0]?.recipients[0]?.tryingSince !== undefined)
    release()
    await until(() => q.list()[0]?.recipients[0]?.attempts === 1)
    const r = q.list()[0]!.recipients[0]!
    assert.equal(r.tryingSince, undefined)
    assert.ok(r.nextAttemptAt > Date.now() + 50_000)
  })

  it('keeps delivering while the vault is locked, with notices, and files into Sent at the next unlock', async () => {
    const v = store as Vault
    let attempts = 0
    const flaky = new ScriptedDelivery((_d, e) => ++attempts < 2 ? new DeliveryError('peer offline', false) : ok(_d, e) as RecipientResult[])
    // The vault's own queue cipher: its key outlives the lock.
    const q = makeQueue(flaky, { delays: [30, 30, 30], noticeAfter: 1, cipher: v.queueCipher() })
    await q.start()
    await v.lock()
    // Sent while locked: the vault seals the Outbox copy to its arrival key.
    const raw = Buffer.from(`From: <${from}>\r\nTo: <${toA}>\r\nSubject: while locked\r\nMessage-ID: <locked@x>\r\n\r\nbody\r\n`)
    const stored = await v.add({ folder: 'Outbox', raw, from, to: [toA] })
    await q.enqueue({ storeId: stored.meta.id, from, to: [toA], raw, messageId: 'locked@x' })
    await until(() => flaky.calls.length === 2 && q.list().length === 0)
    assert.ok(flaky.calls[1]!.envelope.raw.equals(raw))
    await assert.rejects(v.list('Sent'), /locked/)
    await v.unlock({ passphrase: TEST_PASSPHRASE })
    await q.fileFinished()
    assert.deepEqual((await v.list('Sent')).map(m => m.id), [stored.meta.id])
    assert.deepEqual(await v.list('Outbox'), [])
    // The "delayed" notice written while locked is in the Inbox too.
    assert.match((await v.get((await v.list('Inbox'))[0]!.id))!.raw.toString(), /Action: delayed/)
  })

  it('keeps pending mail across a restart and resumes it', async () => {
    const down = new ScriptedDelivery(() => new DeliveryError('peer offline', false))
    const first = makeQueue(down, { delays: [60_000] })
    await first.start()
    const id = await submit(first, [toA])
    await until(() => first.list()[0]?.recipients[0]?.attempts === 1)
    await first.stop()
    const up = new ScriptedDelivery(ok)
    const second = makeQueue(up, { delays: [60_000] })
    await second.start()
    assert.equal(second.list()[0]?.recipients[0]?.attempts, 1)
    second.retryNow()
    await until(async () => (await store.get(id))?.folder === 'Sent')
    assert.equal(up.calls.length, 1)
  })

  it('retries one entry now, and only that one', async () => {
    const down = new ScriptedDelivery(() => new DeliveryError('peer offline', false))
    const q = makeQueue(down, { delays: [60_000, 60_000] })
    await q.start()
    await submit(q, [toA])
    await submit(q, [toB])
    await until(() => q.list().length === 2 && q.list().every(e => e.recipients[0]!.attempts === 1))
    const [first, second] = q.list()
    down.script = ok
    assert.equal(q.retry(first!.id), true)
    await until(() => q.list().length === 1)
    assert.equal(q.list()[0]!.id, second!.id)
    assert.equal(q.list()[0]!.recipients[0]!.attempts, 1)
    assert.equal(q.retry('no-such-entry'), false)
  })

  it('cancels an entry: pending recipients fail "cancelled by you", no notice, the message goes to Sent', async () => {
    const down = new ScriptedDelivery((_d, e) => e.to[0] === toA ? ok(_d, e) as RecipientResult[] : new DeliveryError('peer offline', false))
    const q = makeQueue(down, { delays: [60_000] })
    await q.start()
    const id = await submit(q, [toA, toB])
    await until(() => q.list()[0]?.recipients.every(r => r.attempts === 1) === true)
    const entryId = q.list()[0]!.id
    const seen: string[] = []
    q.onChange(() => { for (const e of q.list()) for (const r of e.recipients) seen.push(`${r.address} ${r.state}`) })
    assert.equal(await q.cancel(entryId), true)
    // Durable when cancel resolves: the entry is gone and the message is in Sent, marked.
    assert.equal(q.list().length, 0)
    const message = (await store.get(id))!
    assert.equal(message.folder, 'Sent')
    assert.ok(message.flags.includes('$Undelivered'))
    assert.deepEqual(await store.list('Inbox'), [])
    assert.equal(await q.cancel(entryId), false)
    assert.equal(await q.cancel('no-such-entry'), false)
    assert.equal(down.calls.length, 2)
    // How it ended stays visible for a while.
    const done = q.recentlyFinished().find(e => e.id === entryId)
    assert.ok(done !== undefined && done.finishedAt > 0)
    assert.deepEqual(done.recipients.map(r => [r.address, r.state, r.lastResult]), [[toA, 'delivered', '250 2.0.0 ok'], [toB, 'failed', 'cancelled by you']])
    assert.equal(q.recentlyFinished().some(e => e.id === 'no-such-entry'), false)
  })

  for (const failure of [{ name: 'transient', error: new DeliveryError('peer offline', false) }, { name: 'permanent', error: new DeliveryError('550 no such user', true) }]) {
    it(`a ${failure.name} failure of an attempt under way when the entry was cancelled does not bring the recipient back, nor send a notice`, async () => {
      let release!: () => void
      const held = new Promise<void>(resolve => { release = resolve })
      const calls: string[] = []
      const q = makeQueue({ deliver: async (d) => { calls.push(d); await held; throw failure.error }, stop: async () => {}, stats: () => ({ connectionsOpened: 0, open: 0 }) }, { delays: [20, 20, 20], noticeAfter: 1 })
      await q.start()
      const id = await submit(q, [toA])
      await until(() => q.list()[0]?.recipients[0]?.tryingSince !== undefined)
      const entryId = q.list()[0]!.id
      assert.equal(await q.cancel(entryId), true)
      // The attempt is still under way: the entry waits for it, already cancelled.
      assert.deepEqual(q.list().map(e => e.recipients.map(r => [r.state, r.lastResult])), [[['failed', 'cancelled by you']]])
      assert.equal((await store.get(id))!.folder, 'Outbox')
      release()
      await until(async () => (await store.get(id))?.folder === 'Sent')
      assert.equal(q.list().length, 0)
      await new Promise(resolve => setTimeout(resolve, 100)) // longer than the retry delays
      assert.equal(calls.length, 1)
      assert.deepEqual(await store.list('Inbox'), [])
      assert.ok((await store.get(id))!.flags.includes('$Undelivered'))
    })
  }

  it('an attempt under way that delivers after the entry was cancelled is recorded as delivered', async () => {
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    const states: string[] = []
    const q = makeQueue({ deliver: async (d, e) => { await held; return ok(d, e) as RecipientResult[] }, stop: async () => {}, stats: () => ({ connectionsOpened: 0, open: 0 }) })
    await q.start()
    const id = await submit(q, [toA])
    await until(() => q.list()[0]?.recipients[0]?.tryingSince !== undefined)
    await q.cancel(q.list()[0]!.id)
    q.onChange(() => { states.push(...q.list().flatMap(e => e.recipients.map(r => r.state))) })
    release()
    await until(async () => (await store.get(id))?.folder === 'Sent')
    assert.equal((await store.get(id))!.flags.includes('$Undelivered'), false)
    assert.equal(states.includes('pending'), false)
  })

  it('an entry cancelled with attempts to two destinations under way is filed once', async () => {
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    const q = makeQueue({ deliver: async (d, e) => { await held; return d === `${peerA.address}.onion` ? ok(d, e) as RecipientResult[] : e.to.map(address => ({ address, ok: false, permanent: false, reply: '451 later' })) }, stop: async () => {}, stats: () => ({ connectionsOpened: 0, open: 0 }) })
    await q.start()
    const id = await submit(q, [toA, toB])
    await until(() => q.list()[0]?.recipients.every(r => r.tryingSince !== undefined) === true)
    const entryId = q.list()[0]!.id
    await q.cancel(entryId)
    release()
    await until(async () => (await store.get(id))?.folder === 'Sent' && q.list().length === 0)
    await new Promise(resolve => setTimeout(resolve, 50))
    assert.deepEqual((await store.list('Sent')).map(m => m.id), [id])
    assert.deepEqual(await store.list('Outbox'), [])
    assert.deepEqual(await store.list('Inbox'), [])
  })

  it('an entry cancelled during an attempt that fails locally is still finished', async () => {
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    const q = makeQueue({ deliver: async () => { await held; throw new Error('disk on fire') }, stop: async () => {}, stats: () => ({ connectionsOpened: 0, open: 0 }) })
    await q.start()
    const id = await submit(q, [toA])
    await until(() => q.list()[0]?.recipients[0]?.tryingSince !== undefined)
    await q.cancel(q.list()[0]!.id)
    release()
    await until(async () => (await store.get(id))?.folder === 'Sent')
    assert.equal(q.list().length, 0)
  })

  it('a cancelled entry that could not be filed (a crash, say) stays cancelled across a restart, and is not sent again', async () => {
    const down = new ScriptedDelivery(() => new DeliveryError('peer offline', false))
    const first = makeQueue(down, { delays: [60_000] })
    await first.start()
    const id = await submit(first, [toA])
    await until(() => first.list()[0]?.recipients[0]?.attempts === 1)
    // The store fails to file the message, as a crash between the two writes would leave it.
    const move = store.move.bind(store)
    store.move = async () => { throw new Error('disk full') }
    try {
      await assert.rejects(first.cancel(first.list()[0]!.id), /disk full/)
    } finally {
      store.move = move
    }
    await first.stop()
    assert.equal((await store.get(id))!.folder, 'Outbox')
    const up = new ScriptedDelivery(ok)
    const second = makeQueue(up)
    await second.start()
    second.retryNow()
    await until(async () => (await store.get(id))?.folder === 'Sent')
    await new Promise(resolve => setTimeout(resolve, 50))
    assert.equal(up.calls.length, 0)
    assert.equal(second.list().length, 0)
  })

  it('asks whether there is a relay at each attempt, so a relay set at run time is used at once', async () => {
    let relay = false
    const delivery = new ScriptedDelivery(ok)
    queue = outboundQueue({
      path: join(dir, 'queue'),
      domain: `${me.address}.onion`,
      retry: { delaysMs: [30], delayedNoticeAfterAttempts: 5 },
      concurrency: 4,
      hasRelay: () => relay
    }, { logger: silentLogger(), store, delivery, cipher })
    await queue.start()
    const refused = await submit(queue, ['early@example.org'])
    await until(async () => (await store.get(refused))?.folder === 'Sent')
    assert.equal(delivery.calls.length, 0)
    relay = true
    const sent = await submit(queue, ['late@example.org'])
    await until(async () => (await store.get(sent))?.folder === 'Sent')
    assert.deepEqual(delivery.calls.map(c => c.envelope.to), [['late@example.org']])
  })

  it('a legacy recipient waiting on an unreachable relay is delivered once the relay is set right at run time', async () => {
    const relay = new SMTPServer({ disabledCommands: ['STARTTLS', 'AUTH'], logger: false, onData (stream, _session, callback) { stream.resume(); stream.on('end', () => { received++; callback() }) } })
    let received = 0
    await new Promise<void>(resolve => relay.listen(0, '127.0.0.1', () => resolve()))
    const d = createDelivery({ onionKey: me, relay: { host: '127.0.0.1', port: 1, requireTls: false, verifyCertificate: true, viaTor: false }, idleConnectionMs: 1000 }, { logger: silentLogger(), socksEndpoint: () => ({ host: '127.0.0.1', port: 9 }) })
    try {
      const q = makeQueue(d, { delays: [60_000], hasRelay: () => d.hasRelay() })
      await q.start()
      const id = await submit(q, ['someone@example.org'])
      await until(() => q.list()[0]?.recipients[0]?.attempts === 1)
      assert.equal(q.list()[0]!.recipients[0]!.state, 'pending')
      assert.match(q.list()[0]!.recipients[0]!.lastResult ?? '', /connection refused/)
      d.setRelay({ host: '127.0.0.1', port: (relay.server.address() as AddressInfo).port, requireTls: false, verifyCertificate: true, viaTor: false })
      assert.equal(q.retry(q.list()[0]!.id), true)
      await until(async () => (await store.get(id))?.folder === 'Sent')
      assert.equal(received, 1)
    } finally {
      await queue?.stop()
      queue = undefined
      await d.stop()
      await new Promise<void>(resolve => relay.close(() => resolve()))
    }
  })

  describe('copies (an encrypted message: one for To and Cc, one per Bcc recipient)', () => {
    // Three recipients at one onion: without copies they would share one envelope.
    const a2 = `a2@${peerA.address}.onion`
    const hidden = `hidden@${peerA.address}.onion`

    it('sends each recipient its own copy, copies never in one envelope, and the Bcc copy to nobody else', async () => {
      const delivery = new ScriptedDelivery(ok)
      const q = makeQueue(delivery)
      await q.start()
      const { id, shared, secret } = await submitWithCopies(q, [toA, a2, toB], hidden)
      await until(async () => (await store.get(id))?.folder === 'Sent')
      const sent = delivery.calls.map(c => ({ destination: c.destination, to: [...c.envelope.to].sort(), body: c.envelope.raw.toString() }))
      const sorted = (xs: typeof sent): typeof sent => [...xs].sort((x, y) => `${x.destination} ${x.to.join()}`.localeCompare(`${y.destination} ${y.to.join()}`))
      assert.deepEqual(sorted(sent), sorted([
        { destination: `${peerA.address}.onion`, to: [toA, a2].sort(), body: shared.toString() },
        { destination: `${peerA.address}.onion`, to: [hidden], body: secret.toString() },
        { destination: `${peerB.address}.onion`, to: [toB], body: shared.toString() }
      ]))
      // The sender's own copy (with its Bcc field and plain body) went to no one.
      for (const call of sent) assert.doesNotMatch(call.body, /plain body|hidden@/)
      assert.deepEqual(q.recentlyFinished()[0]!.recipients.map(r => [r.address, r.copy, r.state]), [[toA, 0, 'delivered'], [a2, 0, 'delivered'], [toB, 0, 'delivered'], [hidden, 1, 'delivered']])
    })

    it('keeps the copies across a restart, sealed, and deletes them when the entry finishes', async () => {
      const down = new ScriptedDelivery(() => new DeliveryError('peer offline', false))
      const first = makeQueue(down, { delays: [60_000] })
      await first.start()
      const { id, raw, shared, secret } = await submitWithCopies(first, [toA], hidden)
      await until(() => first.list()[0]?.recipients.every(r => r.attempts === 1) === true)
      const entryId = first.list()[0]!.id
      assert.deepEqual((await queueKeys()).sort(), ['b!' + entryId, `b!${entryId}/0`, `b!${entryId}/1`, 'e!' + entryId, 's!format'])
      // Sealed: none of the bytes is on disk in the clear.
      const db = new ClassicLevel<string, Buffer>(join(dir, 'queue'), { valueEncoding: 'buffer' })
      for (const value of await db.values().all()) {
        for (const text of ['ciphertext for', 'plain body', 'hidden@']) assert.equal(value.includes(text), false, text)
      }
      assert.ok(cipher.open(`${entryId}/body/1`, (await db.get(`b!${entryId}/1`))!).equals(secret))
      assert.ok(cipher.open(`${entryId}/body`, (await db.get(`b!${entryId}`))!).equals(raw))
      await db.close()
      const up = new ScriptedDelivery(ok)
      const second = makeQueue(up, { delays: [60_000] })
      await second.start()
      second.retryNow()
      await until(async () => (await store.get(id))?.folder === 'Sent')
      assert.deepEqual(up.calls.map(c => [c.envelope.to, c.envelope.raw.toString()]).sort(), [[[toA], shared.toString()], [[hidden], secret.toString()]].sort())
      assert.deepEqual(await queueKeys(), ['s!format'])
    })

    it('deletes the copies of a cancelled entry too', async () => {
      const q = makeQueue(new ScriptedDelivery(() => new DeliveryError('peer offline', false)), { delays: [60_000] })
      await q.start()
      await submitWithCopies(q, [toA], hidden)
      await until(() => q.list()[0]?.recipients.every(r => r.attempts === 1) === true)
      await q.cancel(q.list()[0]!.id)
      assert.deepEqual(await queueKeys(), ['s!format'])
    })

    for (const bad of [
      { name: 'misses a recipient', copies: [{ to: [toA] }], error: /1 of the message's recipients are in none of its copies/ },
      { name: 'puts a recipient in two copies', copies: [{ to: [toA, toB] }, { to: [toB.toUpperCase()] }], error: /a recipient is in copies 0 and 1/ },
      { name: 'names someone who is not a recipient', copies: [{ to: [toA, toB] }, { to: [hidden] }], error: /names an address that is not one of its recipients/ },
      { name: 'has a copy for no one', copies: [{ to: [toA, toB] }, { to: [] }], error: /copy 1 of the message names no recipient/ }
    ]) {
      it(`refuses a list of copies that ${bad.name}, and queues nothing`, async () => {
        const delivery = new ScriptedDelivery(ok)
        const q = makeQueue(delivery)
        await q.start()
        const raw = Buffer.from(`From: <${from}>\r\n\r\nbody\r\n`)
        const stored = await store.add({ folder: 'Outbox', raw, from, to: [toA, toB] })
        await assert.rejects(q.enqueue({ storeId: stored.meta.id, from, to: [toA, toB], raw, copies: bad.copies.map(c => ({ ...c, raw })) }), { name: 'QueueError', message: bad.error })
        assert.deepEqual(q.list(), [])
        assert.deepEqual(await queueKeys(), ['s!format'])
        assert.deepEqual(delivery.calls, [])
      })
    }

    it('still delivers an entry written before copies and routes (no copy, no via)', async () => {
      const raw = Buffer.from(`From: <${from}>\r\nTo: <${toA}>\r\nSubject: old\r\nMessage-ID: <old@x>\r\n\r\nwritten by an older version\r\n`)
      const stored = await store.add({ folder: 'Outbox', raw, from, to: [toA] })
      const entryId = '0mwrzcyoa-d29cd283'
      // As the queue wrote entries before this change.
      const entry = { id: entryId, storeId: stored.meta.id, from, messageId: 'old@x', createdAt: 1795360600000, recipients: [{ address: toA, destination: `${peerA.address}.onion`, state: 'pending', attempts: 1, nextAttemptAt: 1795360602000, delayedNoticeSent: false, lastAttemptAt: 1795360600100, lastResult: 'peer offline' }] }
      const db = new ClassicLevel<string, Buffer>(join(dir, 'queue'), { valueEncoding: 'buffer' })
      await db.batch([
        { type: 'put', key: 's!format', value: Buffer.from('2') },
        { type: 'put', key: `e!${entryId}`, value: cipher.seal(entryId, Buffer.from(JSON.stringify(entry))) },
        { type: 'put', key: `b!${entryId}`, value: cipher.seal(`${entryId}/body`, raw) }
      ], { sync: true })
      await db.close()
      const delivery = new ScriptedDelivery(ok)
      const q = makeQueue(delivery)
      await q.start()
      q.retryNow()
      await until(async () => (await store.get(stored.meta.id))?.folder === 'Sent')
      assert.deepEqual(delivery.calls.map(c => [c.destination, c.envelope.to, c.envelope.raw.toString()]), [[`${peerA.address}.onion`, [toA], raw.toString()]])
      assert.deepEqual(await queueKeys(), ['s!format'])
    })
  })

  describe('learned routes (an ordinary address that may be reached at an onion mailbox)', () => {
    const alice = 'alice@example.com'
    const aliceOnion = `alice@${peerA.address}.onion`
    const routeOf = (address: string): string | undefined => address === alice ? aliceOnion : undefined

    it('delivers a routed address over Tor to its onion mailbox, keeps the address the sender wrote, and sends the rest to the relay', async () => {
      const delivery = new ScriptedDelivery(ok)
      const q = makeQueue(delivery, { hasRelay: true, routeOf })
      await q.start()
      const id = await submit(q, ['Alice@Example.com', 'bob@example.org'])
      assert.deepEqual(q.list()[0]!.recipients.map(r => [r.address, r.destination, r.via]), [[alice, `${peerA.address}.onion`, aliceOnion], ['bob@example.org', RELAY_DESTINATION, undefined]])
      await until(async () => (await store.get(id))?.folder === 'Sent')
      assert.deepEqual(delivery.calls.map(c => [c.destination, c.envelope.to]).sort(), [[`${peerA.address}.onion`, [aliceOnion]], [RELAY_DESTINATION, ['bob@example.org']]].sort())
      // The onion peer's answer is the routed recipient's.
      assert.deepEqual(q.recentlyFinished()[0]!.recipients.map(r => [r.address, r.state, r.lastResult]), [[alice, 'delivered', '250 2.0.0 ok'], ['bob@example.org', 'delivered', '250 2.0.0 ok']])
    })

    it('a routed recipient the onion mailbox refuses fails under the address the sender wrote', async () => {
      const delivery = new ScriptedDelivery((_d, e) => e.to.map(address => ({ address, ok: false, permanent: true, reply: `550 5.1.1 ${address}: no such user here` })))
      const q = makeQueue(delivery, { routeOf })
      await q.start()
      const id = await submit(q, [alice])
      await until(async () => (await store.get(id))?.folder === 'Sent')
      assert.deepEqual(delivery.calls.map(c => c.envelope.to), [[aliceOnion]])
      const dsn = (await store.get((await store.list('Inbox'))[0]!.id))!.raw.toString()
      assert.match(dsn, /Final-Recipient: rfc822; alice@example\.com/)
      assert.match(dsn, /Action: failed/)
    })

    it('a learned route that is not an onion mailbox is not used', async () => {
      const delivery = new ScriptedDelivery(ok)
      const q = makeQueue(delivery, { hasRelay: true, routeOf: () => 'alice@example.net' })
      await q.start()
      const id = await submit(q, [alice])
      await until(async () => (await store.get(id))?.folder === 'Sent')
      assert.deepEqual(delivery.calls.map(c => [c.destination, c.envelope.to]), [[RELAY_DESTINATION, [alice]]])
    })
  })

  it('queues an Outbox message that lost its queue entry in a crash', async () => {
    const raw = Buffer.from(`From: <${from}>\r\nMessage-ID: <orphan@x>\r\n\r\nbody\r\n`)
    const stored = await store.add({ folder: 'Outbox', raw, from, to: [toA], messageId: 'orphan@x' })
    const delivery = new ScriptedDelivery(ok)
    const q = makeQueue(delivery)
    await q.start()
    await until(async () => (await store.get(stored.meta.id))?.folder === 'Sent')
    assert.equal(delivery.calls.length, 1)
  })
})
