// The startup file: the only place that constructs services and wires them together.
//
//   vault ─┬─ smtp-in (onion port 25 → 127.0.0.1) ◄── tor (own process or attached)
//          ├─ submission (127.0.0.1) ─► queue ─► delivery ─► tor SOCKS → peers' onions
//          │                                            └──► legacy relay (smarthost)
//          ├─ control socket (status, queue, unlock, lock, scrub, backup)
//          ├─ backup scheduler ─► the owner's IMAP account (config backup.imap)
//          └─ web UI (127.0.0.1, ui/ through node/ui-backend/)
//
// The node starts with the vault locked: mail keeps arriving (sealed to the arrival key), and
// the outbound queue and submission wait for the first unlock. After that, locking stops
// reading mail, not sending it.
import { join } from 'node:path'
import type { Logger } from './log/index.ts'
import type { NodeConfig } from './config/index.ts'
import { loadIdentity, webUiPathKey, type Identity } from './identity/index.ts'
import type { MailStore } from './store/index.ts'
import { vault as createVault, VaultError, type ScrubReport, type UnlockSecret, type Vault, type VaultState } from './vault/index.ts'
import { smtpIn } from './smtp-in/index.ts'
import { submission } from './submission/index.ts'
import { delivery } from './delivery/index.ts'
import { outboundQueue, type OutboundQueue, type QueueEntry } from './queue/index.ts'
import { torService, type TorService, type TorStatus } from './tor/index.ts'
import { controlServer, type ControlRequest } from './control/index.ts'
import { CredentialStore } from './submission/credentials.ts'
import { uiBackend } from './ui-backend/index.ts'
import { uiServer, type UiServer } from '../ui/server.ts'
import { expandedSecretKey } from '../protocol/onion.ts'
import { choiceFromFlags, openPgpService, type OpenPgp } from './openpgp/index.ts'
import { RELAY_DESTINATION } from './delivery/index.ts'
import { backupToTarget, imapBackupTarget } from './backup/index.ts'
import { BackupScheduler, rememberInVault, type LastBackup } from './backup/scheduler.ts'
import { FriendsService, FRIENDS_VIRTUAL_PORT, type BackupState } from './friends/index.ts'

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
  /** Where the owner opens the web UI (its secret path included), when it is enabled. */
  webUi?: string
  queue: QueueStatusEntry[]
  connections: { opened: number, open: number }
  vault: {
    state: VaultState
    /** Seconds until another unlock attempt is allowed after wrong ones. */
    unlockDelaySeconds: number
    lastScrub?: ScrubReport
    scrubbing: boolean
  }
  /** Present when backup.imap is configured. */
  backup?: { target: string, running: boolean, last?: LastBackup }
  /** Present when friends are enabled. */
  friends?: BackupState & { count: number }
}


export interface SmtorpNode {
  readonly identity: Identity
  readonly store: MailStore
  readonly vault: Vault
  readonly queue: OutboundQueue
  readonly tor: TorService
  readonly openpgp: OpenPgp
  /** Friends: backups on their nodes and recovery shares (unless config.friends.enabled is false). */
  readonly friends: FriendsService | undefined
  /** The web UI, unless config.ui.enabled is false. */
  readonly ui: UiServer | undefined
  /** Start every service; with `unlock`, unlock the vault too (and start sending). */
  start (options?: { unlock?: UnlockSecret }): Promise<void>
  unlock (secret: UnlockSecret): Promise<void>
  lock (): Promise<void>
  scrub (): Promise<ScrubReport>
  /** Back up onto the configured IMAP account now; throws when none is configured. */
  backup (): Promise<LastBackup>
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

/** Tor's SOCKS port as a proxy URL (imapflow sends host names to a socks5 proxy unresolved). */
function socksUrl (endpoint: { host: string, port: number }): string {
  return `socks5://${endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}`
}

export async function createNode (config: NodeConfig, logger: Logger): Promise<SmtorpNode> {
  const log = logger.child({ component: 'node' })
  const identity = await loadIdentity(config.dataDir, config.user)
  const vault = createVault({
    dir: join(config.dataDir, 'vault'),
    k: config.vault.dataShards,
    m: config.vault.parityShards,
    passphraseKdf: { memoryKiB: config.vault.passphraseMemoryKiB, iterations: config.vault.passphraseIterations, parallelism: 1 },
    logger: logger.child({ component: 'vault' })
  })
  const store: MailStore = vault
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
  }, {
    logger,
    socksEndpoint: () => tor.socksEndpoint(),
    refreshOnion: (onion) => { tor.refreshDescriptor(onion).catch(() => {}) }
  })
  // Mail is sent from the owner's ordinary address when they have one (spec/smtorp.md 9);
  // the envelope to SMTorP peers always names the onion address (spec/smtorp.md 3.4).
  const sendAs = config.openpgp.address ?? identity.address
  const openpgp = openPgpService({
    address: sendAs,
    onionAddress: identity.address,
    ...(config.openpgp.name !== undefined ? { name: config.openpgp.name } : {}),
    preferEncrypt: config.openpgp.preferEncrypt,
    keyservers: config.openpgp.keyservers,
    wkd: config.openpgp.wkd
  }, { logger, vault, socks: () => tor.socksEndpoint() })
  const queue = outboundQueue({
    path: join(config.dataDir, 'queue'),
    domain: identity.domain,
    retry: { delaysMs: config.queue.retryDelaysMs, delayedNoticeAfterAttempts: config.queue.delayedNoticeAfterAttempts },
    concurrency: config.queue.concurrency,
    hasRelay: () => outbound.hasRelay(),
    routeOf: (address) => openpgp.routeOf(address)
  }, {
    logger,
    store,
    delivery: {
      // The relay sees the owner's ordinary address as the sender, when there is one.
      deliver: async (destination, envelope) => await outbound.deliver(destination, destination === RELAY_DESTINATION && envelope.from !== '' ? { ...envelope, from: sendAs } : envelope),
      stop: async () => { await outbound.stop() },
      stats: () => outbound.stats()
    },
    cipher: vault.queueCipher(),
    copiesFor: async (message) => (await openpgp.prepareOutgoing(message.raw, message.to, choiceFromFlags(message.flags))).copies
  })
  // Each mail client's own password, kept sealed in the vault (read at the first unlock).
  const credentials = new CredentialStore({}, {
    logger,
    load: async () => await vault.getRecord('settings', 'submission-credentials'),
    save: async (bytes) => { await vault.putRecord('settings', 'submission-credentials', bytes) }
  })
  const submit = submission({
    address: identity.address,
    aliases: sendAs !== identity.address ? [sendAs] : [],
    password: identity.submissionPassword,
    host: config.submission.host,
    port: config.submission.port,
    requireAuth: config.submission.requireAuth,
    maxMessageBytes: config.smtpIn.maxMessageBytes
  }, {
    logger,
    store,
    queue,
    credentials,
    prepare: async (raw, to) => await openpgp.prepareOutgoing(raw, to, 'auto'),
    // Once the queue runs (from the first unlock), mail is taken even while locked: the vault
    // seals it to the arrival key, and the queue its own copy under the queue key.
    refuseBecause: () => queueStarted ? undefined : 'The node is locked: unlock it ("smtorp unlock"), then send again'
  })

  // The queue reads its entries with the vault's queue key, so it starts at the first unlock;
  // later unlocks retry what waited for one.
  let queueStarted = false
  let queueStarting: Promise<void> | undefined
  async function afterUnlock (): Promise<void> {
    await backend.afterUnlock()
    backups?.afterUnlock()
    friends?.afterUnlock()
    if (queueStarted) {
      await queue.fileFinished()
      queue.retryNow()
      return
    }
    queueStarting ??= queue.start().then(() => { queueStarted = true }, (err: unknown) => {
      queueStarting = undefined
      log.error({ err: (err as Error).message }, 'The outbound queue could not start after unlock.')
      throw err
    })
    await queueStarting
  }
  vault.onUnlock(() => { afterUnlock().catch(() => {}) })

  let lastScrub: ScrubReport | undefined
  let scrubbing: Promise<ScrubReport> | undefined
  const scrubWatchers = new Set<(done: number, total: number) => void>()
  async function scrub (pauseMs = 0, onProgress?: (done: number, total: number) => void): Promise<ScrubReport> {
    if (onProgress !== undefined) scrubWatchers.add(onProgress)
    scrubbing ??= vault.scrub({ pauseMs, onProgress: (done, total) => { for (const watch of scrubWatchers) watch(done, total) } })
      .then(report => { lastScrub = report; return report })
      .finally(() => { scrubbing = undefined; scrubWatchers.clear() })
    return await scrubbing
  }

  const backend = uiBackend({
    dataDir: config.dataDir,
    ...(config.relay !== undefined ? { configRelay: config.relay } : {}),
    maxMessageBytes: config.smtpIn.maxMessageBytes,
    submission: { host: config.submission.host },
    sendAs
  }, {
    logger,
    identity,
    vault,
    queue,
    tor,
    delivery: outbound,
    credentials,
    openpgp,
    submissionPort: () => submit.port(),
    socksEndpoint: () => tor.socksEndpoint(),
    scrub: async (onProgress) => await scrub(0, onProgress),
    lastScrub: () => lastScrub,
    unlock: async (secret) => { await vault.unlock(secret); await afterUnlock() },
    // Both are made below; the UI asks for them only once the node runs.
    friends: () => friends,
    imapBackup: () => backups
  })
  // Constructed here so that a UI refused by its config (a non-loopback host) stops the start.
  const ui = config.ui.enabled
    ? uiServer({ host: config.ui.host, port: config.ui.port, allowNonLoopback: config.ui.allowNonLoopback, maxUploadBytes: config.smtpIn.maxMessageBytes, pathKey: await webUiPathKey(config.dataDir) }, { node: backend, logger })
    : undefined
  let scrubTimer: NodeJS.Timeout | undefined

  // Backups onto the owner's IMAP account: each run opens its own connection and closes it.
  const imapConfig = config.backup.imap
  const backups = imapConfig === undefined
    ? undefined
    : new BackupScheduler({
      everyMinutes: imapConfig.everyMinutes,
      afterNewMailMs: imapConfig.afterNewMailSeconds * 1000,
      description: `imap ${imapConfig.user}@${imapConfig.host}:${imapConfig.port}/${imapConfig.folder}`
    }, {
      logger,
      remember: rememberInVault(vault, 'imap'),
      ready: () => vault.state() === 'unlocked',
      run: async (onProgress) => {
        if (vault.state() !== 'unlocked') throw new Error('The vault is locked: unlock it, then back up.')
        const target = imapBackupTarget({
          host: imapConfig.host,
          port: imapConfig.port,
          secure: imapConfig.security === 'tls',
          doSTARTTLS: imapConfig.security === 'starttls',
          user: imapConfig.user,
          pass: imapConfig.password,
          folder: imapConfig.folder,
          ...(imapConfig.viaTor ? { proxy: socksUrl(tor.socksEndpoint()) } : {})
        }, { logger })
        try {
          return await backupToTarget({ vault, dataDir: config.dataDir, target, logger: logger.child({ component: 'backup' }), ...(onProgress !== undefined ? { onProgress } : {}) })
        } finally {
          await target.close().catch(() => {})
        }
      }
    })
  vault.onAdded(() => { backups?.newMail() })

  // Friends reach the node at port 4001 of its onion, through Tor only (config friends.direct
  // adds plain TCP for tests and LANs).
  const friends = config.friends.enabled
    ? await FriendsService.open({
      config: config.friends,
      dataDir: config.dataDir,
      identity,
      vault,
      socks: () => { try { return tor.socksEndpoint() } catch { return undefined } },
      ...(config.backup.imap !== undefined ? { imap: config.backup.imap } : {}),
      ownName: config.user,
      logger
    })
    : undefined
  async function backupNow (): Promise<LastBackup> {
    if (backups === undefined) throw new Error('No backup is configured: add a backup.imap section to config.yaml.')
    return await backups.backupNow()
  }

  function status (): NodeStatus {
    const stats = outbound.stats()
    return {
      address: identity.address,
      onion: identity.domain,
      tor: tor.status(),
      smtpInPort: inbound.port(),
      submissionPort: submit.port(),
      ...(ui !== undefined ? { webUi: `${ui.url()}/` } : {}),
      queue: queue.list().map(describeQueueEntry),
      connections: { opened: stats.connectionsOpened, open: stats.open },
      vault: { state: vault.state(), unlockDelaySeconds: vault.unlockDelaySeconds(), ...(lastScrub !== undefined ? { lastScrub } : {}), scrubbing: scrubbing !== undefined },
      ...(backups !== undefined ? { backup: { target: backups.description, running: backups.inProgress(), ...(backups.last() !== undefined ? { last: backups.last()! } : {}) } } : {}),
      ...(friends !== undefined ? { friends: { ...friends.backupState(), count: friends.book.friends().length } } : {})
    }
  }

  const control = controlServer({ path: join(config.dataDir, 'control.sock') }, {
    async handle (request: ControlRequest) {
      switch (request.command) {
        case 'status': return status()
        case 'queue': return status().queue
        case 'retry': queue.retryNow(); return 'ok'
        case 'unlock': await vault.unlock(request.secret); await afterUnlock(); return 'ok'
        case 'lock': await vault.lock(); return 'ok'
        case 'passphrase': await vault.changePassphrase(request.passphrase); return 'ok'
        case 'scrub': return await scrub()
        case 'backup': return await backupNow()
        default: return await friendsCommand(request)
      }
    }
  })

  /** The control socket's friends and recovery commands. */
  async function friendsCommand (request: ControlRequest): Promise<unknown> {
    if (friends === undefined) throw new Error('Friends are turned off in config.yaml (friends.enabled: false).')
    switch (request.command) {
      case 'friends': return await friends.friends()
      case 'invite': { const { code, expiresAt } = await friends.invite({ ...(request.quotaMiB !== undefined ? { quotaMiB: request.quotaMiB } : {}) }); return { code, expiresAt } }
      case 'accept': return await friends.accept(request.code, { ...(request.quotaMiB !== undefined ? { quotaMiB: request.quotaMiB } : {}) })
      case 'unfriend': return await friends.remove(request.onion)
      case 'backup-friends': return await friends.backupNow()
      case 'audit': return await friends.auditAndRepair()
      case 'custodians':
        if (request.appoint !== undefined) await friends.custody.appoint(request.appoint, request.threshold ?? 2)
        if (request.check === true) await friends.custody.check()
        return await friends.custody.custodians() ?? null
      case 'recovery-requests': return friends.custody.recoveryRequests()
      case 'approve': return await friends.custody.approve(request.id)
      case 'refuse': return friends.custody.refuse(request.id)
      default: throw new Error('unknown command')
    }
  }

  return {
    identity,
    store,
    vault,
    queue,
    tor,
    openpgp,
    friends,
    ui,
    async start (options = {}) {
      // Started in order; if one fails, the ones already running are stopped again.
      const running: Array<() => Promise<void>> = []
      try {
        await vault.open(); running.push(async () => { await vault.close() })
        openpgp.start(); running.push(async () => { await openpgp.stop() })
        backups?.start(); running.push(async () => { await backups?.stop() })
        if (vault.state() === 'uninitialized') throw new VaultError(`There is no vault in ${config.dataDir}: run "smtorp init" first.`)
        if (options.unlock !== undefined) await vault.unlock(options.unlock)
        await inbound.start(); running.push(async () => { await inbound.stop() })
        await tor.start(); running.push(async () => { await tor.stop() })
        if (friends !== undefined) { await friends.start(); running.push(async () => { await friends.stop() }) }
        if (vault.state() === 'unlocked') await afterUnlock()
        running.push(async () => { if (queueStarted) await queue.stop(); await outbound.stop() })
        await submit.start(); running.push(async () => { await submit.stop() })
        await control.start(); running.push(async () => { await control.stop() })
        if (ui !== undefined) { await ui.start(); running.push(async () => { await ui.stop() }) }
        await tor.publishOnion({
          expandedSecretKey: expandedSecretKey(identity.onionKey.seed),
          virtualPort: 25,
          target: { host: '127.0.0.1', port: inbound.port() },
          ...(friends !== undefined ? { extraPorts: [{ virtualPort: FRIENDS_VIRTUAL_PORT, target: { host: '127.0.0.1', port: friends.listenPort() } }] } : {})
        })
      } catch (err) {
        for (const stop of running.reverse()) await stop().catch(() => {})
        throw err
      }
      if (config.vault.scrubEveryHours > 0) {
        scrubTimer = setInterval(() => {
          scrub(config.vault.scrubPauseMs).catch((err: unknown) => { log.error({ err: (err as Error).message }, 'The background scrub failed.') })
        }, config.vault.scrubEveryHours * 3_600_000)
        scrubTimer.unref()
      }
      log.info({ address: identity.address, vault: vault.state() }, 'node started')
    },
    async stop () {
      clearInterval(scrubTimer)
      await ui?.stop()
      await control.stop()
      await submit.stop()
      // Close peers' connections while tor still carries the goodbye, so they notice at once.
      await inbound.stop()
      await queueStarting?.catch(() => {})
      if (queueStarted) await queue.stop()
      queueStarted = false
      await outbound.stop()
      await friends?.stop()
      await tor.stop()
      await scrubbing?.catch(() => {})
      await backups?.stop()
      await openpgp.stop()
      await credentials.flush().catch((err: unknown) => { log.error({ err: (err as Error).message }, 'Saving the mail client credentials failed; the last uses and failed logins since the last save are lost.') })
      await vault.close()
      log.info('node stopped')
    },
    status,
    async unlock (secret) { await vault.unlock(secret); await afterUnlock() },
    async lock () { await vault.lock() },
    scrub,
    backup: backupNow,
    submissionPort: () => submit.port()
  }
}
