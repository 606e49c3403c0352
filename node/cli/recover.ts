// `smtorp recover` on a new machine, without a node: in the terminal, or with --ui on a page in
// the browser (ui/recover-server.ts). Both ask the custodians and restore the node through
// node/recovery/recover.ts, with a tor of their own (or --tor-socks), and every connection
// goes through it.
import { join } from 'node:path'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { randomBytes } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { createLogger, type Logger } from '../log/index.ts'
import { FriendBook } from '../friends/friend-book.ts'
import { createP2PHost, FRIENDS_VIRTUAL_PORT, onionMultiaddr, type P2PHost } from '../friends/p2p.ts'
import { friendsBackupKey, friendsBackupTarget, memoryPlacementStore } from '../friends/friends-target.ts'
import { imapBackupTarget, type BackupTarget } from '../backup/index.ts'
import { recover, writeFriendBookFromKit, type RecoverReport, type RecoveryEvent } from '../recovery/recover.ts'
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
  const direct = parseDirect(o.direct ?? [])
  const tor = o.torSocks !== undefined ? undefined : ownTor(logger)
  let env: RecoveryEnvironment | undefined
  try {
    env = new RecoveryEnvironment(tor === undefined ? parseHostPort(o.torSocks!) : await tor.socks, direct)
    const say = (e: RecoveryEvent): void => {
      if (o.json) return
      const who = (onion: string): string => `${onion.slice(0, 16)}…`
      switch (e.kind) {
        case 'asked': process.stdout.write(`Asked ${who(e.custodian)}: tell them the code ${e.code}; they approve when they see the same code.\n`); break
        case 'unreachable': process.stdout.write(`Could not reach ${who(e.custodian)} yet (${e.reason}); trying again.\n`); break
        case 'approved': process.stdout.write(`${who(e.custodian)} approved (share ${e.index}).\n`); break
        case 'refused': process.stdout.write(`${who(e.custodian)} refused: ${e.reason}.\n`); break
        case 'key-rebuilt': process.stdout.write(`The key is rebuilt from shares ${e.from.join(', ')}${e.rejected.length > 0 ? `; rejected: ${e.rejected.map(r => r.reason).join('; ')}` : ''}.\n`); break
        case 'restoring': process.stdout.write(`Restoring from ${e.from}...\n`); break
        case 'restore-progress': break
      }
    }
    const report = await env.recover({ owner: o.owner, custodians: o.custodians, from: o.from, newPassphrase: o.newPassphrase }, o.dataDir, o.waitMinutes * 60_000, say, logger)
    if (o.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n')
    else process.stdout.write(summary(report, o.dataDir))
    if (report.restore.damaged.length > 0) process.exitCode = 2
  } finally {
    await env?.close()
    await tor?.stop()
  }
}

/**
 * `smtorp recover --ui`: the same recovery, started and watched from a page on 127.0.0.1. The
 * page's address carries a key and is printed here only. The command ends when the owner
 * closes the recovery on the page, or on Ctrl-C.
 */
export async function recoverUiCommand (o: RecoverUiOptions): Promise<void> {
  const logger = createLogger({ level: 'warn' })
  if (!await isEmptyDir(o.dataDir)) throw new CliUsageError(`${o.dataDir} is not empty; recovery writes only into a new, empty data directory.`)
  const direct = parseDirect(o.direct ?? [])
  const progress: RecoverProgress = { phase: 'form', tor: { ready: false }, dataDir: o.dataDir, custodians: [] }
  let env: RecoveryEnvironment | undefined
  const tor = o.torSocks !== undefined ? undefined : ownTor(logger)
  const envReady: Promise<RecoveryEnvironment> = (async () => new RecoveryEnvironment(tor === undefined ? parseHostPort(o.torSocks!) : await tor.socks, direct))()
  envReady.then(e => { env = e; progress.tor.ready = true }, (err: unknown) => { progress.tor.error = (err as Error).message })

  let finished: () => void = () => {}
  const closed = new Promise<void>(resolve => { finished = resolve })
  let running: Promise<void> | undefined
  let exitCode = 1

  const onEvent = (e: RecoveryEvent): void => {
    const c = 'custodian' in e ? progress.custodians.find(x => x.onion === e.custodian) : undefined
    switch (e.kind) {
      case 'asked': if (c !== undefined) { c.phase = 'waiting'; c.code = e.code; delete c.detail } break
      case 'unreachable': if (c !== undefined) { c.phase = 'unreachable'; c.detail = e.reason } break
      case 'approved': if (c !== undefined) { c.phase = 'approved'; delete c.detail } progress.threshold = e.threshold; break
      case 'refused': if (c !== undefined) { c.phase = 'refused'; c.detail = e.reason } break
      case 'key-rebuilt': break
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
      const owner = bareOnion(request.owner)
      Object.assign(progress, { phase: 'asking', owner, custodians: request.custodians.map(c => ({ onion: bareOnion(c), phase: 'asking' })), deadline: Date.now() + o.waitMinutes * 60_000 })
      delete progress.error
      delete progress.restore
      delete progress.threshold
      running = (async () => {
        try {
          const e = await envReady
          const report = await e.recover(request, o.dataDir, o.waitMinutes * 60_000, onEvent, logger)
          progress.result = { onion: report.onion, messages: report.restore.messages, restored: report.restore.restored, damaged: report.restore.damaged.length }
          progress.phase = 'done'
          exitCode = report.restore.damaged.length > 0 ? 2 : 0
          process.stdout.write(summary(report, o.dataDir))
        } catch (err) {
          progress.phase = 'failed'
          progress.error = (err as Error).message
          process.stdout.write(`The recovery failed: ${(err as Error).message}\n`)
        }
      })()
    },
    finish: () => { finished() }
  }

  const server = recoverServer({ port: o.port }, { recovery, logger })
  await server.start()
  const stopOnSignal = (): void => { finished() }
  process.once('SIGINT', stopOnSignal)
  process.once('SIGTERM', stopOnSignal)
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
    process.off('SIGINT', stopOnSignal)
    process.off('SIGTERM', stopOnSignal)
    await server.stop()
    const interrupted = progress.phase === 'asking' || progress.phase === 'restoring'
    await env?.close()
    await tor?.stop()
    if (interrupted) {
      process.stdout.write(`The recovery was stopped before it finished; ${o.dataDir} may hold a partial restore: empty it before trying again.\n`)
      // The custodians' poll loops may still be sleeping; nothing of theirs is worth waiting for.
      process.exit(130)
    }
    await running
    process.exitCode = exitCode
  }
}

/** The hosts that speak for the new machine, and how to reach the custodians and friends. */
class RecoveryEnvironment {
  private readonly hosts: P2PHost[] = []

  constructor (private readonly socks: { host: string, port: number }, private readonly direct: Map<string, string>) {}

  async recover (request: RecoverRequest, dataDir: string, waitMs: number, onEvent: (e: RecoveryEvent) => void, logger: Logger): Promise<RecoverReport> {
    const scratch = await mkdtemp(join(tmpdir(), 'smtorp-recover-'))
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
        onEvent,
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
      return report
    } finally {
      // The hosts of one attempt end with it: a second attempt asks with a fresh key.
      await this.close()
      await rm(scratch, { recursive: true, force: true })
    }
  }

  async close (): Promise<void> {
    for (const host of this.hosts.splice(0)) await Promise.resolve(host.stop()).catch(() => {})
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
  if (custodians.length === 0) return 'Name at least one custodian by their onion address.'
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
    dir = await mkdtemp(join(tmpdir(), 'smtorp-recover-tor-'))
    if (stopped) throw new Error('stopped')
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
