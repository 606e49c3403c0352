// `smtorp recover` on a new machine, without a node: in the terminal, or with --ui on a page in
// the browser (ui/recover-server.ts). Both ask the custodians and restore the node through
// node/recovery/recover.ts, with a tor of their own (or --tor-socks), and every connection
// goes through it.
import { join } from 'node:path'
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { randomBytes } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { createLogger, type Logger } from '../log/index.ts'
import { FriendBook } from '../friends/friend-book.ts'
import { createP2PHost, FRIENDS_VIRTUAL_PORT, onionMultiaddr, type P2PHost } from '../friends/p2p.ts'
import { friendsBackupKey, friendsBackupTarget, memoryPlacementStore } from '../friends/friends-target.ts'
import { imapBackupTarget, type BackupTarget } from '../backup/index.ts'
import { recover, RecoveryFailedError, writeFriendBookFromKit, type RecoverReport, type RecoveryEvent } from '../recovery/recover.ts'
import type { KitContents } from '../recovery/kit.ts'
import { torService, type TorService } from '../tor/index.ts'
import { isOnionAddress } from '../../protocol/onion.ts'
import { recoverServer } from '../../ui/recover-server.ts'
import { RecoverInputError, type RecoverProgress, type RecoverRequest, type UiRecovery } from '../../ui/recover-api.ts'
import { CliUsageError } from './friends.ts'

export interface RecoverCliOptions {
  dataDir: string
  owner: string
  custodians: string[]
  from: 'friends' | 'imap'
  waitMinutes: number
  torSocks?: string
  newPassphrase: string
  json: boolean
  /** Tests and LANs: `onion=multiaddr` pairs to dial instead of the onions. */
  direct?: string[]
}

export interface RecoverUiOptions {
  dataDir: string
  /** What the command line named already, to fill the form with. */
  owner?: string
  custodians: string[]
  from: 'friends' | 'imap'
  waitMinutes: number
  torSocks?: string
  direct?: string[]
  /** The page's port on 127.0.0.1 (0: any free one). */
  port: number
}

/** `smtorp recover`: everything runs in this process, through Tor only. */
export async function recoverCommand (o: RecoverCliOptions): Promise<void> {
  const logger = createLogger({ level: 'warn' })
  const problem = requestProblem(o.owner, o.custodians)
  if (problem !== undefined) throw new CliUsageError(problem)
  if (!await isEmptyDir(o.dataDir)) throw new CliUsageError(notEmpty(o.dataDir))
  const direct = parseDirect(o.direct ?? [])
  const given = o.torSocks !== undefined ? parseHostPort(o.torSocks) : undefined
  const tor = given === undefined ? ownTor(logger) : undefined
  const attempt = new RecoveryAttempt(direct)
  const stop = async (): Promise<void> => { await attempt.close(); await tor?.stop() }
  const stopOnSignal = (): void => {
    process.stdout.write('\nStopped.\n')
    void stop().finally(() => process.exit(130))
  }
  for (const signal of SIGNALS) process.once(signal, stopOnSignal)
  try {
    const say = (e: RecoveryEvent): void => {
      if (o.json) return
      const who = (onion: string): string => `${onion.slice(0, 16)}…`
      switch (e.kind) {
        case 'asked': process.stdout.write(`Asked ${who(e.custodian)}: tell them the code ${e.code}; they approve when they see the same code.\n`); break
        case 'unreachable': process.stdout.write(`Could not reach ${who(e.custodian)} yet (${e.reason}); trying again.\n`); break
        case 'approved': process.stdout.write(`${who(e.custodian)} approved (share ${e.index}).\n`); break
        case 'refused': process.stdout.write(`${who(e.custodian)} refused: ${e.reason}.\n`); break
        case 'key-rebuilt': process.stdout.write(`The key is rebuilt from shares ${e.from.join(', ')}${e.rejected.length > 0 ? `; rejected: ${e.rejected.map(r => `${who(r.custodian)}: ${r.reason}`).join('; ')}` : ''}.\n`); break
        case 'restoring': process.stdout.write(`Restoring from ${e.from}...\n`); break
        case 'started': case 'restore-progress': break
      }
    }
    const socks = given ?? await tor!.socks
    const report = await attempt.run(socks, { owner: o.owner, custodians: o.custodians, from: o.from, newPassphrase: o.newPassphrase }, o.dataDir, o.waitMinutes * 60_000, say, logger)
    if (o.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n')
    else process.stdout.write(summary(report, o.dataDir))
    if (report.restore.damaged.length > 0) process.exitCode = 2
  } finally {
    for (const signal of SIGNALS) process.off(signal, stopOnSignal)
    await stop()
  }
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/**
 * `smtorp recover --ui`: the same recovery, started and watched from a page on 127.0.0.1. The
 * page's address carries a key and is printed here only. The command ends when the owner
 * closes the recovery on the page, or on Ctrl-C.
 */
export async function recoverUiCommand (o: RecoverUiOptions): Promise<void> {
  const logger = createLogger({ level: 'warn' })
  if (!await isEmptyDir(o.dataDir)) throw new CliUsageError(notEmpty(o.dataDir))
  const direct = parseDirect(o.direct ?? [])
  const given = o.torSocks !== undefined ? parseHostPort(o.torSocks) : undefined
  const progress: RecoverProgress = { phase: 'form', tor: { ready: given !== undefined }, dataDir: o.dataDir, custodians: [] }
  const tor = given === undefined ? ownTor(logger) : undefined
  tor?.socks.then(() => { progress.tor.ready = true }, (err: unknown) => { progress.tor.error = (err as Error).message })

  let finished: () => void = () => {}
  const closed = new Promise<void>(resolve => { finished = resolve })
  let current: RecoveryAttempt | undefined
  let running: Promise<void> | undefined
  let exitCode = 1

  /** Events of the attempt running now; those of an earlier attempt that still trickle in are dropped. */
  const eventsOf = (attempt: RecoveryAttempt) => (e: RecoveryEvent): void => {
    if (attempt !== current) return
    const c = 'custodian' in e ? progress.custodians.find(x => x.onion === e.custodian) : undefined
    switch (e.kind) {
      case 'started': progress.deadline = e.deadline; break
      case 'asked': if (c !== undefined) { c.phase = 'waiting'; c.code = e.code; delete c.detail } break
      case 'unreachable': if (c !== undefined) { c.phase = 'unreachable'; c.detail = e.reason } break
      case 'approved': if (c !== undefined) { c.phase = 'approved'; delete c.detail } progress.threshold = e.threshold; break
      case 'refused': if (c !== undefined) { c.phase = 'refused'; c.detail = e.reason } break
      case 'key-rebuilt':
        for (const r of e.rejected) {
          const row = progress.custodians.find(x => x.onion === r.custodian)
          if (row !== undefined) { row.phase = 'rejected'; row.detail = r.reason }
        }
        break
      case 'restoring': progress.phase = 'restoring'; progress.restore = { from: e.from, done: 0, total: 0 }; break
      case 'restore-progress': if (progress.restore !== undefined) { progress.restore.done = e.done; progress.restore.total = e.total } break
    }
  }

  const recovery: UiRecovery = {
    progress: () => progress,
    suggested: () => ({ ...(o.owner !== undefined ? { owner: o.owner } : {}), custodians: o.custodians, from: o.from }),
    start (request: RecoverRequest) {
      if (progress.phase === 'asking' || progress.phase === 'restoring') throw new RecoverInputError('A recovery is already running.')
      if (progress.phase === 'done') throw new RecoverInputError('The node is already recovered.')
      if (progress.tor.error !== undefined) throw new RecoverInputError(`Tor could not start (${progress.tor.error}), so no custodian can be asked.`)
      const problem = requestProblem(request.owner, request.custodians) ?? (request.newPassphrase.length < 8 ? 'The new passphrase must be at least 8 characters long.' : undefined)
      if (problem !== undefined) throw new RecoverInputError(problem)
      const attempt = new RecoveryAttempt(direct)
      current = attempt
      Object.assign(progress, { phase: 'asking', owner: bareOnion(request.owner), custodians: request.custodians.map(c => ({ onion: bareOnion(c), phase: 'asking' })) })
      for (const field of ['error', 'restore', 'threshold', 'deadline'] as const) delete progress[field]
      running = (async () => {
        try {
          const socks = given ?? await tor!.socks
          const report = await attempt.run(socks, request, o.dataDir, o.waitMinutes * 60_000, eventsOf(attempt), logger)
          progress.result = { onion: report.onion, messages: report.restore.messages, restored: report.restore.restored, damaged: report.restore.damaged.length, backupMadeAt: report.restore.created }
          progress.phase = 'done'
          exitCode = report.restore.damaged.length > 0 ? 2 : 0
          process.stdout.write(summary(report, o.dataDir))
        } catch (err) {
          if (attempt !== current) return
          progress.phase = 'failed'
          progress.error = (err as Error).message
          process.stdout.write(`The recovery failed: ${(err as Error).message}\n`)
        }
      })()
    },
    finish: () => { finished() }
  }

  const server = recoverServer({ port: o.port }, { recovery, logger })
  try {
    await server.start()
  } catch (err) {
    await tor?.stop()
    throw new CliUsageError(`The recovery page cannot listen on 127.0.0.1:${o.port}: ${(err as NodeJS.ErrnoException).code === 'EADDRINUSE' ? 'the port is in use; choose another with --ui-port, or 0 for any' : (err as Error).message}.`)
  }
  const stopOnSignal = (): void => { finished() }
  for (const signal of SIGNALS) process.once(signal, stopOnSignal)
  process.stdout.write([
    'Open this address in a browser on this machine to recover your node:',
    '',
    `    ${server.accessUrl()}`,
    '',
    'The address carries a key: do not share it. Press Ctrl-C to stop.',
    ''
  ].join('\n'))
  try {
    await closed
  } finally {
    for (const signal of SIGNALS) process.off(signal, stopOnSignal)
    await server.stop()
    const phase = progress.phase
    const attempt = current
    current = undefined // what the stopped attempt still reports goes nowhere
    await attempt?.close()
    await tor?.stop()
    if (phase === 'asking' || phase === 'restoring') {
      process.stdout.write(phase === 'restoring'
        ? `The recovery was stopped while restoring; what was restored into ${o.dataDir} so far is removed.\n`
        : 'The recovery was stopped before any key was rebuilt; nothing was written.\n')
      await attempt?.removePartialRestore()
      // The custodians' poll loops may still be sleeping; nothing of theirs is worth waiting for.
      process.exit(130)
    }
    await running
    process.exitCode = exitCode
  }
}

/**
 * One recovery attempt: the hosts that speak for the new machine (a throw-away one to ask the
 * custodians, one with the node's own key to fetch from the friends), its scratch directory,
 * and what it wrote. A failure once the restore has begun removes what was restored, so the
 * data directory is empty again and the next attempt can use it.
 */
class RecoveryAttempt {
  private readonly hosts: P2PHost[] = []
  private readonly scratch: string[] = []
  private restoreInto: { dir: string, existed: boolean } | undefined
  private socks: { host: string, port: number } = { host: '127.0.0.1', port: 9 }

  constructor (private readonly direct: Map<string, string>) {}

  async run (socks: { host: string, port: number }, request: RecoverRequest, dataDir: string, waitMs: number, onEvent: (e: RecoveryEvent) => void, logger: Logger): Promise<RecoverReport> {
    this.socks = socks
    const existed = await readdir(dataDir).then(() => true, () => false)
    const scratch = await mkdtemp(join(tmpdir(), 'smtorp-recover-'))
    this.scratch.push(scratch)
    try {
      const asking = await this.newHost(randomBytes(32))
      let kitUsed: KitContents | undefined
      const report = await recover({
        askingHost: asking,
        owner: bareOnion(request.owner),
        custodians: request.custodians.map(c => {
          const onion = bareOnion(c)
          const dial = this.direct.get(onion)
          return { onion, dial: dial !== undefined ? multiaddr(dial) : onionMultiaddr(onion, FRIENDS_VIRTUAL_PORT) }
        }),
        dataDir,
        newPassphrase: request.newPassphrase,
        waitMs,
        onEvent: (e) => {
          if (e.kind === 'restoring') this.restoreInto = { dir: dataDir, existed }
          onEvent(e)
        },
        logger,
        openTarget: async (kit): Promise<BackupTarget> => {
          kitUsed = kit
          const seed = Buffer.from(kit.onionSeed, 'base64')
          if (request.from === 'imap') {
            if (kit.imap === undefined) throw new CliUsageError('The recovery kit names no IMAP account: recover from your friends instead.')
            const i = kit.imap
            return imapBackupTarget({
              host: i.host, port: i.port, secure: i.security === 'tls', doSTARTTLS: i.security === 'starttls', user: i.user, pass: i.password, folder: i.folder,
              ...(i.viaTor ? { proxy: `socks5://${this.socks.host}:${this.socks.port}` } : {})
            }, { logger })
          }
          const book = await FriendBook.open(scratch)
          for (const f of kit.friends) {
            const dial = this.direct.get(f.onion)
            await book.add({ ...f, ...(dial !== undefined ? { dial } : {}) })
          }
          const host = await this.newHost(seed)
          return friendsBackupTarget({ host, book, key: friendsBackupKey(seed), placement: memoryPlacementStore(), logger })
        }
      })
      if (kitUsed !== undefined) await writeFriendBookFromKit(dataDir, kitUsed)
      this.restoreInto = undefined // done: it is the node now
      return report
    } catch (err) {
      if (this.restoreInto === undefined) throw err
      await this.removePartialRestore()
      throw new RecoveryFailedError(`${(err as Error).message} What was restored so far is removed: ${dataDir} is empty again.`, { cause: err })
    } finally {
      // The hosts of one attempt end with it: a second attempt asks with a fresh key.
      await this.close()
    }
  }

  /** Empties the data directory again after a restore that did not finish (it was empty before). */
  async removePartialRestore (): Promise<void> {
    const into = this.restoreInto
    this.restoreInto = undefined
    if (into === undefined) return
    await rm(into.dir, { recursive: true, force: true })
    if (into.existed) await mkdir(into.dir, { mode: 0o700 }).catch(() => {})
  }

  async close (): Promise<void> {
    for (const host of this.hosts.splice(0)) await Promise.resolve(host.stop()).catch(() => {})
    for (const dir of this.scratch.splice(0)) await rm(dir, { recursive: true, force: true })
  }

  private async newHost (seed: Uint8Array): Promise<P2PHost> {
    const host = await createP2PHost({ onionSeed: seed, listen: { host: '127.0.0.1', port: 0 }, socks: () => this.socks, direct: this.direct.size > 0 })
    this.hosts.push(host)
    return host
  }
}

function summary (r: RecoverReport, dataDir: string): string {
  return [
    '',
    `Your node is back in ${dataDir}: ${r.onion}.onion`,
    `  messages restored: ${r.restore.restored} of ${r.restore.messages}${r.restore.damaged.length > 0 ? `, ${r.restore.damaged.length} damaged` : ''}`,
    `  from the backup made ${r.restore.created}: mail that arrived after it is not in it.`,
    '  the new passphrase is set; the recovery code is unchanged.',
    `Start it with "smtorp start --data ${dataDir}".`,
    ''
  ].join('\n')
}

function bareOnion (text: string): string {
  return text.trim().toLowerCase().replace(/\.onion$/, '')
}

/** What is wrong with the owner and custodians given, in one sentence; undefined if nothing. */
function requestProblem (owner: string, custodians: string[]): string | undefined {
  if (!isOnionAddress(bareOnion(owner))) return 'The owner must be your old onion address (56 characters, on your recovery sheet).'
  if (custodians.length < 2) return 'Name at least two custodians by their onion addresses: a key is always split among two or more.'
  for (const c of custodians) if (!isOnionAddress(bareOnion(c))) return `${c} is not an onion address.`
  if (new Set(custodians.map(bareOnion)).size !== custodians.length) return 'A custodian is named twice.'
  return undefined
}

function parseDirect (pairs: string[]): Map<string, string> {
  return new Map(pairs.map(pair => {
    const at = pair.indexOf('=')
    const onion = bareOnion(pair.slice(0, Math.max(at, 0)))
    if (at < 0 || !isOnionAddress(onion) || !pair.slice(at + 1).startsWith('/')) throw new CliUsageError(`--direct ${pair} is not ONION=MULTIADDR (for tests and LANs)`)
    return [onion, pair.slice(at + 1)] as const
  }))
}

function notEmpty (dir: string): string {
  return `${dir} is not empty; recovery writes only into a new, empty data directory.`
}

async function isEmptyDir (dir: string): Promise<boolean> {
  const entries = await readdir(dir).catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return []; throw err })
  return entries.length === 0
}

function parseHostPort (text: string): { host: string, port: number } {
  const m = /^([\d.]+|\[[0-9a-fA-F:]+\]|localhost):(\d{1,5})$/.exec(text)
  if (m === null) throw new CliUsageError('--tor-socks must be HOST:PORT, e.g. 127.0.0.1:9050')
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) }
}

/**
 * A tor of our own in a temporary directory, for as long as the recovery runs. `stop` works at
 * any time, also while tor is still bootstrapping (then `socks` never resolves).
 */
function ownTor (logger: Logger): { socks: Promise<{ host: string, port: number }>, stop: () => Promise<void> } {
  let tor: TorService | undefined
  let dir: string | undefined
  let stopped = false
  const socks = (async () => {
    const made = await mkdtemp(join(tmpdir(), 'smtorp-recover-tor-'))
    if (stopped) {
      await rm(made, { recursive: true, force: true })
      throw new Error('stopped')
    }
    dir = made
    tor = torService({ mode: 'own', dataDir: dir }, { logger })
    await tor.start()
    await tor.waitForBootstrap(300_000)
    return tor.socksEndpoint()
  })()
  socks.catch(() => {}) // awaited by the users of it
  return {
    socks,
    stop: async () => {
      stopped = true
      await tor?.stop().catch(() => {})
      if (dir !== undefined) await rm(dir, { recursive: true, force: true })
    }
  }
}
