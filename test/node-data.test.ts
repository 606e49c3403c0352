// spec/node-data.md against the code: the queue entry given there as a test vector is read by
// the queue and retried, and a queue database of another format version is refused.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { outboundQueue, QueueError, QUEUE_FORMAT, type QueueEntry } from '../node/queue/index.ts'
import type { MailStore } from '../node/store/index.ts'
import { openTestVault, testQueueCipher } from './harness/vault.ts'
import { silentLogger } from '../node/log/index.ts'
import type { Delivery } from '../node/delivery/index.ts'
import { ScriptedDelivery } from './harness/scripted-delivery.ts'
import { waitFor } from './harness/nodes.ts'

const spec = readFileSync(new URL('../spec/node-data.md', import.meta.url), 'utf8')
const vector = JSON.parse(/```json\n(.*)\n```/.exec(spec)![1]!) as QueueEntry

// One key for the whole file: a queue reopened after a restart must read what it wrote.
const cipher = testQueueCipher()
let dir: string
let store: MailStore

function queueAt (path: string, delivery: Delivery): ReturnType<typeof outboundQueue> {
  return outboundQueue({ path, domain: 'x.onion', retry: { delaysMs: [1000], delayedNoticeAfterAttempts: 5 }, concurrency: 1, hasRelay: false }, { logger: silentLogger(), store, delivery, cipher })
}

describe('spec/node-data.md', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smtorp-node-data-'))
    store = (await openTestVault(join(dir, 'vault'))).vault
  })
  after(async () => {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('the queue entry vector has exactly the documented fields', () => {
    assert.deepEqual(Object.keys(vector).sort(), ['createdAt', 'from', 'id', 'messageId', 'recipients', 'storeId'])
    assert.deepEqual(Object.keys(vector.recipients[0]!).sort(), ['address', 'attempts', 'delayedNoticeSent', 'destination', 'lastAttemptAt', 'lastResult', 'nextAttemptAt', 'state'])
    assert.match(vector.id, /^[0-9a-z]{9}-[0-9a-f]{8}$/)
  })

  it('a queue database holding the vector is read, and the pending recipient is retried', async () => {
    const stored = await store.add({ folder: 'Outbox', raw: Buffer.from(`Message-ID: <${vector.messageId!}>\r\n\r\nhi\r\n`), from: vector.from, to: vector.recipients.map(r => r.address) })
    const path = join(dir, 'queue-vector')
    const db = new ClassicLevel<string, Buffer>(path, { valueEncoding: 'buffer' })
    await db.batch([
      { type: 'put', key: 's!format', value: Buffer.from(String(QUEUE_FORMAT)) },
      { type: 'put', key: `e!${vector.id}`, value: cipher.seal(vector.id, Buffer.from(JSON.stringify({ ...vector, storeId: stored.meta.id }))) }
    ], { sync: true })
    await db.close()
    const delivery = new ScriptedDelivery()
    const queue = queueAt(path, delivery)
    await queue.start()
    await waitFor('the vector entry to be delivered', async () => (await store.get(stored.meta.id))?.folder === 'Sent', 5000)
    assert.deepEqual(delivery.calls.map(s => [s.destination, s.envelope.from, s.envelope.to]), [[vector.recipients[0]!.destination, vector.from, [vector.recipients[0]!.address]]])
    await queue.stop()
  })

  it('a queue database of another format version is refused with a clear error', async () => {
    const path = join(dir, 'queue-v1')
    const db = new ClassicLevel<string, string>(path, { valueEncoding: 'utf8' })
    await db.put('s!format', '1', { sync: true }) // format 1 kept entries in the clear
    await db.close()
    const queue = queueAt(path, new ScriptedDelivery())
    await assert.rejects(queue.start(), (err: unknown) => err instanceof QueueError && /has format 1; this version reads format 2/.test(err.message))
  })
})
