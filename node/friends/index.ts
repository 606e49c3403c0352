// The node's friends (spec/friends.md): its libp2p host behind port 4001 of its onion, the
// friend book, friendship, the shards it holds for friends, the backup it keeps on friends
// (erasure-coded: any `dataShards` friends bring it back), audits and repair, and recovery
// shares (node/recovery/custody.ts). node.ts constructs one; the UI and the control socket
// talk to it through the methods below.
import { readKeySlots } from '../vault/key-slots.ts'
import { join } from 'node:path'
import QRCode from 'qrcode'
import type { FriendsConfig, ImapBackupConfig } from '../config/index.ts'
import type { Identity } from '../identity/index.ts'
import type { Logger } from '../log/index.ts'
import type { Vault } from '../vault/index.ts'
import { backupToTarget } from '../backup/mailbox-backup.ts'
import { BackupScheduler, rememberInVault, type LastBackup } from '../backup/scheduler.ts'
import { FriendBook, type Friend } from './friend-book.ts'
import { Friendship } from './friendship.ts'
import { createP2PHost, FRIENDS_VIRTUAL_PORT, type P2PHost } from './p2p.ts'
import { openShardHost, type ShardHost } from './shard-host.ts'
import { serveBackup } from './backup-protocol.ts'
import { friendsBackupKey, friendsBackupTarget, vaultPlacementStore, type AuditReport, type FriendsBackupTarget, type Holding, type RepairReport } from './friends-target.ts'
import { Custody } from '../recovery/custody.ts'
import type { KitContents, KitImap } from '../recovery/kit.ts'

export { FriendBook, type Friend } from './friend-book.ts'
export { FRIENDS_VIRTUAL_PORT } from './p2p.ts'

export interface FriendsServiceInit {
  config: FriendsConfig
  dataDir: string
  identity: Identity
  vault: Vault
  /** Tor's SOCKS endpoint, once tor runs. */
  socks: () => { host: string, port: number } | undefined
  /** The IMAP backup settings, for the recovery kit. */
  imap?: ImapBackupConfig
  ownName: string
  logger: Logger
}

export interface FriendView extends Friend {
  /** Bytes of our backup this friend holds, and how many shards. */
  holdsOfOurs: number
  shardsOfOurs: number
  /** Bytes of this friend's shards we hold. */
  weHoldOfTheirs: number
}

export interface BackupState {
  running: boolean
  last?: LastBackup
  /** The last backup that completed (the one friends hold now). */
  lastSuccess?: LastBackup
  /** Messages processed by the run under way, of how many. */
  progress?: { done: number, total: number }
  lastAudit?: { at: string, report: AuditReport }
  lastRepair?: { at: string, report: RepairReport }
  /** Friends with room, and how many are needed for a backup (dataShards + 1). */
  friends: number
  needed: number
}

export class FriendsService {
  readonly book: FriendBook
  private hostRef: P2PHost | undefined
  private shardsHeld: ShardHost | undefined
  private friendshipRef: Friendship | undefined
  private custodyRef: Custody | undefined
  private target: FriendsBackupTarget | undefined
  private readonly scheduler: BackupScheduler
  private auditTimer: NodeJS.Timeout | undefined
  private lastAudit: BackupState['lastAudit']
  private lastRepair: BackupState['lastRepair']
  private readonly log: Logger

  private constructor (private readonly init: FriendsServiceInit, book: FriendBook) {
    this.book = book
    this.log = init.logger.child({ component: 'friends' })
    this.scheduler = new BackupScheduler({
      everyMinutes: init.config.everyMinutes,
      afterNewMailMs: init.config.afterNewMailSeconds * 1000,
      description: 'friends'
    }, {
      logger: init.logger,
      remember: rememberInVault(init.vault, 'friends'),
      ready: () => init.vault.state() === 'unlocked' && this.book.friends().length > init.config.dataShards,
      run: async (onProgress) => {
        if (init.vault.state() !== 'unlocked') throw new Error('The vault is locked: unlock it, then back up.')
        const need = init.config.dataShards + 1
        if (this.book.friends().length < need) throw new Error(`A backup on friends needs at least ${need} friends; this node has ${this.book.friends().length}.`)
        const report = await backupToTarget({ vault: init.vault, dataDir: init.dataDir, target: this.backupTarget(), logger: this.log, ...(onProgress !== undefined ? { onProgress } : {}) })
        // The kit names the friends: custodians get it again when the friends changed.
        await this.custody.deliver().catch((err: unknown) => { this.log.warn({ err: (err as Error).message }, 'Giving the custodians the new recovery kit failed; it is tried again after the next backup.') })
        return report
      }
    })
  }

  static async open (init: FriendsServiceInit): Promise<FriendsService> {
    return new FriendsService(init, await FriendBook.open(init.dataDir))
  }

  get host (): P2PHost {
    if (this.hostRef === undefined) throw new Error('The friends service has not started.')
    return this.hostRef
  }

  get custody (): Custody {
    if (this.custodyRef === undefined) throw new Error('The friends service has not started.')
    return this.custodyRef
  }

  get friendship (): Friendship {
    if (this.friendshipRef === undefined) throw new Error('The friends service has not started.')
    return this.friendshipRef
  }

  /** The 127.0.0.1 port of the libp2p host: the target of the onion's port 4001. */
  listenPort (): number {
    const address = this.host.getMultiaddrs().map(a => a.toString()).find(a => a.startsWith('/ip4/127.0.0.1/tcp/'))
    if (address === undefined) throw new Error('The friends host listens nowhere.')
    return Number(address.split('/')[4])
  }

  /** A direct address for invites: only when config.friends.direct (tests, LAN). */
  directAddress (): string | undefined {
    return this.init.config.direct ? this.host.getMultiaddrs()[0]?.toString() : undefined
  }

  async start (): Promise<void> {
    const { config, identity, vault, dataDir } = this.init
    this.hostRef = await createP2PHost({ onionSeed: identity.onionKey.seed, listen: { host: '127.0.0.1', port: config.listenPort }, socks: this.init.socks, direct: config.direct })
    this.shardsHeld = await openShardHost({ dataDir, book: this.book, logger: this.log })
    await serveBackup(this.host, { book: this.book, shardHost: this.shardsHeld, logger: this.log })
    this.friendshipRef = new Friendship({
      host: this.host,
      book: this.book,
      ownName: () => this.init.ownName,
      onRemoved: async (onion) => { await this.shardsHeld?.dropOwner(onion) },
      ...(config.direct ? { directAddress: () => this.directAddress() } : {}),
      logger: this.log
    })
    await this.friendship.start()
    this.custodyRef = new Custody({ host: this.host, vault, book: this.book, kitContents: async () => await this.kitContents(), logger: this.log })
    await this.custody.start()
    this.scheduler.start()
    vault.onAdded(() => { this.scheduler.newMail() })
    if (config.auditEveryMinutes > 0) {
      // Friends' shards, and custodians' shares, are checked on the same beat.
      this.auditTimer = setInterval(() => {
        if (vault.state() !== 'unlocked') return
        this.auditAndRepair().catch(() => {})
        this.custody.check().catch((err: unknown) => { this.log.warn({ err: (err as Error).message }, 'Checking the custodians failed.') })
      }, config.auditEveryMinutes * 60_000)
      this.auditTimer.unref()
    }
  }

  /** The vault was unlocked: back up if one is due. */
  afterUnlock (): void {
    this.scheduler.afterUnlock()
  }

  async stop (): Promise<void> {
    clearInterval(this.auditTimer)
    await this.scheduler.stop()
    await this.target?.close().catch(() => {})
    this.target = undefined
    await this.hostRef?.stop()
  }

  // ---- friends ----

  async invite (options: { quotaMiB?: number, ttlHours?: number } = {}): Promise<{ code: string, expiresAt: string, qrSvg: string }> {
    const direct = this.directAddress()
    const { code, expiresAt } = await this.friendship.invite({
      quotaForThem: (options.quotaMiB ?? this.init.config.offerMiB) * 1024 * 1024,
      ...(options.ttlHours !== undefined ? { ttlMs: options.ttlHours * 3600_000 } : {}),
      ...(direct !== undefined ? { dial: direct } : {})
    })
    const qrSvg = await QRCode.toString(code, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 })
    return { code, expiresAt, qrSvg }
  }

  async accept (code: string, options: { quotaMiB?: number } = {}): Promise<Friend> {
    return await this.friendship.accept(code, { quotaForThem: (options.quotaMiB ?? this.init.config.offerMiB) * 1024 * 1024 })
  }

  async remove (onion: string): Promise<{ told: boolean }> {
    const result = await this.friendship.remove(onion)
    // Our shards on that friend are gone: place them elsewhere now.
    this.auditAndRepair().catch(() => {})
    return result
  }

  async setQuota (onion: string, quotaMiB: number): Promise<boolean> {
    return await this.book.update(onion, { quotaForThem: Math.round(quotaMiB * 1024 * 1024) })
  }

  /** Every friend, with the bytes held each way. */
  async friends (): Promise<FriendView[]> {
    const holdings = await this.holdings()
    const out: FriendView[] = []
    for (const f of this.book.friends()) {
      const h = holdings.find(x => x.onion === f.onion)
      out.push({ ...f, holdsOfOurs: h?.bytes ?? 0, shardsOfOurs: h?.shards ?? 0, weHoldOfTheirs: this.shardsHeld?.usage(f.onion) ?? 0 })
    }
    return out
  }

  private async holdings (): Promise<Holding[]> {
    if (this.init.vault.state() !== 'unlocked') return []
    try {
      return await this.backupTarget().holdings()
    } catch {
      return []
    }
  }

  // ---- the backup on friends ----

  backupTarget (): FriendsBackupTarget {
    this.target ??= friendsBackupTarget({
      host: this.host,
      book: this.book,
      key: friendsBackupKey(this.init.identity.onionKey.seed),
      placement: vaultPlacementStore(this.init.vault),
      dataShards: this.init.config.dataShards,
      logger: this.log
    })
    return this.target
  }

  async backupNow (): Promise<LastBackup> {
    return await this.scheduler.backupNow()
  }

  backupState (): BackupState {
    const last = this.scheduler.last()
    const lastSuccess = this.scheduler.lastSuccess()
    const progress = this.scheduler.progress()
    return {
      running: this.scheduler.inProgress(),
      ...(last !== undefined ? { last } : {}),
      ...(lastSuccess !== undefined ? { lastSuccess } : {}),
      ...(progress !== undefined ? { progress } : {}),
      ...(this.lastAudit !== undefined ? { lastAudit: this.lastAudit } : {}),
      ...(this.lastRepair !== undefined ? { lastRepair: this.lastRepair } : {}),
      friends: this.book.friends().filter(f => f.quotaFromThem > 0).length,
      needed: this.init.config.dataShards + 1
    }
  }

  /** Audits a sample of shards on every friend, then re-places what is missing. Vault unlocked. */
  async auditAndRepair (): Promise<{ audit: AuditReport, repair: RepairReport }> {
    if (this.init.vault.state() !== 'unlocked') throw new Error('The vault is locked: unlock it, then audit.')
    const target = this.backupTarget()
    const audit = await target.audit()
    this.lastAudit = { at: new Date().toISOString(), report: audit }
    const repair = await target.repair({ absentAfterMs: this.init.config.replaceAfterHours * 3600_000 })
    this.lastRepair = { at: new Date().toISOString(), report: repair }
    this.log.info({ ...audit, unreachable: audit.unreachable.length, replaced: repair.replaced, unplaced: repair.unplaced }, 'Friends were audited.')
    return { audit, repair }
  }

  // ---- recovery ----

  private async kitContents (): Promise<Omit<KitContents, 'format'>> {
    const slots = await readKeySlots(join(this.init.dataDir, 'vault'))
    if (slots === undefined) throw new Error('The vault has no key slots.')
    const imap = this.init.imap
    return {
      onionSeed: this.init.identity.onionKey.seed.toString('base64'),
      vaultId: slots.vaultId,
      friends: this.book.friends().map(f => ({ onion: f.onion, name: f.name, quotaForThem: f.quotaForThem, quotaFromThem: f.quotaFromThem, ...(f.dial !== undefined ? { dial: f.dial } : {}) })),
      ...(imap !== undefined ? { imap: { host: imap.host, port: imap.port, security: imap.security, user: imap.user, password: imap.password, folder: imap.folder, viaTor: imap.viaTor } satisfies KitImap } : {})
    }
  }
}

