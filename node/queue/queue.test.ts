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
import { DeliveryError, RELAY_DESTINATION, type Delivery } from '../delivery/index.ts'
import type { RecipientResult } from '../smtp-client/index.ts'
import { ScriptedDelivery, acceptAll } from '../../test/harness/scripted-delivery.ts'
import { generateOnionKey } from '../../protocol/onion.ts'

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

function makeQueue (delivery: Delivery, options: { delays?: number[], hasRelay?: boolean, noticeAfter?: number, cipher?: QueueCipher } = {}): OutboundQueue {
  queue = outboundQueue({
    path: join(dir, 'queue'),
    domain: `${me.address}.onion`,
    retry: { delaysMs: options.delays ?? [30, 30, 30], delayedNoticeAfterAttempts: options.noticeAfter ?? 2 },
    concurrency: 4,
    hasRelay: options.hasRelay ?? false
  }, { logger: silentLogger(), store, delivery, cipher: options.cipher ?? cipher })
  return queue
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
