// The startup file: the only place that constructs services and wires them together.
//
//   store ─┬─ smtp-in (onion port 25 → 127.0.0.1) ◄── tor (own process or attached)
//          ├─ submission (127.0.0.1) ─► queue ─► delivery ─► tor SOCKS → peers' onions
//          │                                            └──► legacy relay (smarthost)
//          └─ control socket (status, queue)
import { join } from 'node:path'
import type { Logger } from './log/index.ts'
import type { NodeConfig } from './config/index.ts'
import { loadIdentity, type Identity } from './identity/index.ts'
import { levelMailStore, type MailStore } from './store/index.ts'
import { smtpIn } from './smtp-in/index.ts'
import { submission } from './submission/index.ts'
import { delivery } from './delivery/index.ts'
import { outboundQueue, type OutboundQueue, type QueueEntry } from './queue/index.ts'
import { torService, type TorService, type TorStatus } from './tor/index.ts'
import { controlServer, type ControlRequest } from './control/index.ts'
import { expandedSecretKey } from '../protocol/onion.ts'

export interface RecipientStatus {
  address: string
  state: 'queued' | 'delayed' | 'delivered' | 'failed'
  attempts: number
  nextAttemptAt?: string
  /** An attempt is under way since then. */
  tryingSince?: string
  lastResult?: string
}

export interface QueueStatusEntry {
  id: string
  messageId?: string
  createdAt: string
  recipients: RecipientStatus[]
}

export interface NodeStatus {
  address: string
  onion: string
  tor: TorStatus
  smtpInPort: number
  submissionPort: number
  queue: QueueStatusEntry[]
  connections: { opened: number, open: number }
}

export interface SmtorpNode {
  readonly identity: Identity
  readonly store: MailStore
  readonly queue: OutboundQueue
  readonly tor: TorService
  start (): Promise<void>
  stop (): Promise<void>
  status (): NodeStatus
  submissionPort (): number
}

function describeQueueEntry (entry: QueueEntry): QueueStatusEntry {
  return {
    id: entry.id,
    ...(entry.messageId !== undefined ? { messageId: entry.messageId } : {}),
    createdAt: new Date(entry.createdAt).toISOString(),
    recipients: entry.recipients.map(r => ({
      address: r.address,
      state: r.state === 'pending' ? (r.attempts > 0 ? 'delayed' : 'queued') : r.state,
      attempts: r.attempts,
      ...(r.state === 'pending' && r.tryingSince === undefined ? { nextAttemptAt: new Date(r.nextAttemptAt).toISOString() } : {}),
      ...(r.tryingSince !== undefined ? { tryingSince: new Date(r.tryingSince).toISOString() } : {}),
      ...(r.lastResult !== undefined ? { lastResult: r.lastResult } : {})
    }))
  }
}

export async function createNode (config: NodeConfig, logger: Logger): Promise<SmtorpNode> {
  const identity = await loadIdentity(config.dataDir, config.user)
  const store = levelMailStore({ path: join(config.dataDir, 'mail') })
  const tor = torService(config.tor.mode === 'own'
    ? { mode: 'own', dataDir: config.dataDir, torBinary: config.tor.torBinary, socksPort: config.tor.socksPort, extraTorrc: config.tor.extraTorrc }
    : { ...config.tor }, { logger })
  const inbound = smtpIn({
    onion: identity.onionKey.address,
    users: [config.user],
    port: config.smtpIn.port,
    maxMessageBytes: config.smtpIn.maxMessageBytes,
    maxMessagesPerPeerPerMinute: config.smtpIn.maxMessagesPerPeerPerMinute,
    maxConnections: config.smtpIn.maxConnections
  }, { logger, store })
  const outbound = delivery({
    onionKey: identity.onionKey,
    ...(config.relay !== undefined ? { relay: config.relay } : {}),
    idleConnectionMs: config.queue.idleConnectionMs
  }, { logger, socksEndpoint: () => tor.socksEndpoint() })
  const queue = outboundQueue({
    path: join(config.dataDir, 'queue'),
    domain: identity.domain,
    retry: { delaysMs: config.queue.retryDelaysMs, delayedNoticeAfterAttempts: config.queue.delayedNoticeAfterAttempts },
    concurrency: config.queue.concurrency,
    hasRelay: config.relay !== undefined
  }, { logger, store, delivery: outbound })
  const submit = submission({
    address: identity.address,
    password: identity.submissionPassword,
    host: config.submission.host,
    port: config.submission.port,
    requireAuth: config.submission.requireAuth,
    maxMessageBytes: config.smtpIn.maxMessageBytes
  }, { logger, store, queue })

  function status (): NodeStatus {
    const stats = outbound.stats()
    return {
      address: identity.address,
      onion: identity.domain,
      tor: tor.status(),
      smtpInPort: inbound.port(),
      submissionPort: submit.port(),
      queue: queue.list().map(describeQueueEntry),
      connections: { opened: stats.connectionsOpened, open: stats.open }
    }
  }

  const control = controlServer({ path: join(config.dataDir, 'control.sock') }, {
    async handle (request: ControlRequest) {
      switch (request.command) {
        case 'status': return status()
        case 'queue': return status().queue
        case 'retry': queue.retryNow(); return 'ok'
        default: throw new Error('unknown command')
      }
    }
  })

  const log = logger.child({ component: 'node' })
  return {
    identity,
    store,
    queue,
    tor,
    async start () {
      // Started in order; if one fails, the ones already running are stopped again.
      const running: Array<() => Promise<void>> = []
      try {
        await store.open(); running.push(async () => { await store.close() })
        await inbound.start(); running.push(async () => { await inbound.stop() })
        await tor.start(); running.push(async () => { await tor.stop() })
        await queue.start(); running.push(async () => { await queue.stop(); await outbound.stop() })
        await submit.start(); running.push(async () => { await submit.stop() })
        await control.start(); running.push(async () => { await control.stop() })
        await tor.publishOnion({ expandedSecretKey: expandedSecretKey(identity.onionKey.seed), virtualPort: 25, target: { host: '127.0.0.1', port: inbound.port() } })
      } catch (err) {
        for (const stop of running.reverse()) await stop().catch(() => {})
        throw err
      }
      log.info({ address: identity.address }, 'node started')
    },
    async stop () {
      await control.stop()
      await submit.stop()
      // Close peers' connections while tor still carries the goodbye, so they notice at once.
      await inbound.stop()
      await queue.stop()
      await outbound.stop()
      await tor.stop()
      await store.close()
      log.info('node stopped')
    },
    status,
    submissionPort: () => submit.port()
  }
}
