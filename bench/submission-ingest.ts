/**
 * Submission ingest: how many messages per second the node's submission port accepts and
 * durably queues, beside Postfix 3.7 receiving the same smtp-source load in the same run.
 *
 *   node_modules/.bin/tsx bench/submission-ingest.ts [--messages 3000] [--rounds 3] [--sessions 20] [--size 5120]
 *
 * Load: smtp-source(1), `-d` (each of `--sessions` sessions reused for the next message),
 * `--size` payload bytes; sender the node's own address, recipient an onion address.
 *
 * The node side is built from its services directly, so no Tor is needed: the vault (`openTestVault`:
 * encrypted, sharded) + `outboundQueue` + `submission` with `requireAuth: false` (smtp-source cannot AUTH).
 * A 250 from the submission port means the message is synced into the store's Outbox and
 * its queue entry is synced into the queue's LevelDB (node/submission accept()).
 *
 * What "durably queued" is measured with: the queue is *started*, as in a running node, so
 * its scheduler (runDue on every enqueue) costs what it costs in production, but its Delivery
 * never finishes an attempt while the load runs: the attempts the queue starts (at most
 * `queue.concurrency`) are held and, after the count is checked, released as transient
 * failures. Nothing leaves the box and the measured work is ingest only. A second node
 * variant with the queue not started (enqueue works before start: classic-level opens
 * itself) isolates the scheduler's share; it is a diagnostic, not the headline figure.
 *
 * After each node run the store's Outbox and the queue must hold exactly `--messages`
 * messages, or the run fails. Postfix and the node run alternately `--rounds` times, since
 * the machine is noisy (Postfix against itself varies ~25%); medians are reported.
 */
import { parseArgs } from 'node:util'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openTestVault } from '../test/harness/vault.ts'
import { outboundQueue } from '../node/queue/index.ts'
import { submission } from '../node/submission/index.ts'
import { openPgpService } from '../node/openpgp/index.ts'
import { DeliveryError, type Delivery } from '../node/delivery/index.ts'
import { silentLogger } from '../node/log/index.ts'
import type { RecipientResult } from '../node/smtp-client/index.ts'
import { generateOnionKey } from '../protocol/onion.ts'
import { DEFAULT_RETRY_POLICY } from '../protocol/retry-schedule.ts'
import { runSmtpSource } from './lib/smtp-source.ts'
import { measurePostfixIngest } from './lib/postfix-baseline.ts'
import { median } from './lib/stats.ts'

export interface NodeIngestInit {
  messages: number
  sessions: number
  size: number
  /** Start the queue (production shape) or leave it stopped (scheduler excluded). */
  queueRunning: boolean
  /** Sign each message as a node does (node/openpgp prepareOutgoing), or queue it as submitted. */
  openpgp: boolean
}

export interface NodeIngestResult {
  perSecond: number
  seconds: number
  messages: number
}

/** A Delivery whose attempts wait until `release()`, then fail as transient. */
function heldDelivery (): Delivery & { release: () => void, attempts: () => number } {
  const waiting: Array<() => void> = []
  let attempts = 0
  let released = false
  return {
    async deliver (): Promise<RecipientResult[]> {
      attempts++
      if (!released) await new Promise<void>(resolve => { waiting.push(resolve) })
      throw new DeliveryError('benchmark: delivery is held', false)
    },
    async stop () {},
    stats () { return { connectionsOpened: 0, open: 0 } },
    release () {
      released = true
      for (const resolve of waiting.splice(0)) resolve()
    },
    attempts: () => attempts
  }
}

export async function measureNodeIngest (init: NodeIngestInit): Promise<NodeIngestResult> {
  const dir = await mkdtemp(join(tmpdir(), 'smtorp-bench-ingest-'))
  const logger = silentLogger()
  const key = generateOnionKey()
  const domain = `${key.address}.onion`
  const address = `me@${domain}`
  const recipient = `peer@${generateOnionKey().address}.onion`
  const store = (await openTestVault(join(dir, 'vault'))).vault
  const held = heldDelivery()
  const queue = outboundQueue({
    path: join(dir, 'queue'),
    domain,
    retry: DEFAULT_RETRY_POLICY,
    concurrency: 8, // the config default
    hasRelay: false
  }, { logger, store, delivery: held, cipher: store.queueCipher() })
  // As node/node.ts wires it: the owner's key made at the first unlock, every submitted
  // message sanitized, given an Autocrypt header and signed (no recipient key: signed only).
  const pgp = openPgpService({ address, onionAddress: address }, { logger, vault: store, socks: () => ({ host: '127.0.0.1', port: 9 }) })
  if (init.openpgp) {
    pgp.start()
    for (let i = 0; i < 500 && !pgp.ready(); i++) await new Promise(resolve => setTimeout(resolve, 10))
    if (!pgp.ready()) throw new Error('the OpenPGP key did not load')
  }
  const submit = submission({
    address,
    password: 'unused: requireAuth is off',
    port: 0,
    requireAuth: false,
    maxMessageBytes: 25 * 1024 * 1024
  }, { logger, store, queue, ...(init.openpgp ? { prepare: async (raw, to) => await pgp.prepareOutgoing(raw, to, 'auto') } : {}) })
  try {
    if (init.queueRunning) await queue.start()
    await submit.start()
    const sent = await runSmtpSource({
      host: '127.0.0.1',
      port: submit.port(),
      messages: init.messages,
      sessions: init.sessions,
      messageSize: init.size,
      from: address,
      to: recipient,
      timeoutMs: 150_000
    })
    await submit.stop()
    const outbox = (await store.list('Outbox')).length
    const queued = queue.list().length
    if (outbox !== init.messages || queued !== init.messages) {
      throw new Error(`after ${init.messages} accepted messages the Outbox holds ${outbox} and the queue ${queued}`)
    }
    return { perSecond: sent.perSecond, seconds: sent.seconds, messages: sent.messages }
  } finally {
    held.release()
    // stop() closes the queue's database, which opened itself on first use if never started.
    await queue.stop().catch(() => {})
    await submit.stop().catch(() => {})
    await pgp.stop()
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
}

const fmt = (n: number): string => n.toFixed(0)

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      messages: { type: 'string', default: '3000' },
      rounds: { type: 'string', default: '3' },
      sessions: { type: 'string', default: '20' },
      size: { type: 'string', default: '5120' },
      'no-idle-variant': { type: 'boolean', default: false },
      'no-unsigned-variant': { type: 'boolean', default: false }
    }
  })
  const messages = Number(values.messages)
  const rounds = Number(values.rounds)
  const sessions = Number(values.sessions)
  const size = Number(values.size)
  console.log(`submission ingest: smtp-source -d -s ${sessions} -l ${size} -m ${messages}, ${rounds} rounds, Postfix and node alternately`)

  const postfix: number[] = []
  const node: number[] = []
  const nodeIdle: number[] = []
  const nodeUnsigned: number[] = []
  for (let round = 1; round <= rounds; round++) {
    const p = await measurePostfixIngest({ messages, sessions, size })
    postfix.push(p.perSecond)
    const n = await measureNodeIngest({ messages, sessions, size, queueRunning: true, openpgp: true })
    node.push(n.perSecond)
    let idleText = ''
    if (!values['no-idle-variant']) {
      const i = await measureNodeIngest({ messages, sessions, size, queueRunning: false, openpgp: true })
      nodeIdle.push(i.perSecond)
      idleText = `, node with queue not started ${fmt(i.perSecond)} msg/s`
    }
    if (!values['no-unsigned-variant']) {
      const u = await measureNodeIngest({ messages, sessions, size, queueRunning: true, openpgp: false })
      nodeUnsigned.push(u.perSecond)
      idleText += `, node without OpenPGP ${fmt(u.perSecond)} msg/s`
    }
    console.log(`round ${round}: Postfix ${fmt(p.perSecond)} msg/s (Maildir delivery done at ${fmt(p.deliveredPerSecond)} msg/s), node ${fmt(n.perSecond)} msg/s${idleText}`)
  }
  const p = median(postfix)
  const n = median(node)
  console.log('')
  console.log(`median Postfix: ${fmt(p)} msg/s`)
  console.log(`median node:    ${fmt(n)} msg/s (every message signed, queue running, Outbox and queue each hold exactly ${messages} after every run)`)
  if (nodeIdle.length > 0) console.log(`median node, queue not started (diagnostic): ${fmt(median(nodeIdle))} msg/s`)
  if (nodeUnsigned.length > 0) console.log(`median node without OpenPGP (diagnostic): ${fmt(median(nodeUnsigned))} msg/s`)
  console.log(`ratio node/Postfix: ${(n / p).toFixed(2)} (goal >= 1)`)
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main()
}
