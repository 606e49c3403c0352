// smtorp's friends and recovery commands: friends | invite | accept | unfriend | custodians |
// requests | approve | refuse | audit (through the running node's control socket), and
// recover (on a new machine, without a node).
import { join } from 'node:path'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { randomBytes } from 'node:crypto'
import QRCode from 'qrcode'
import { multiaddr } from '@multiformats/multiaddr'
import { askNode } from '../control/index.ts'
import { createLogger, type Logger } from '../log/index.ts'
import type { FriendView } from '../friends/index.ts'
import { FriendBook } from '../friends/friend-book.ts'
import { createP2PHost, FRIENDS_VIRTUAL_PORT, onionMultiaddr, type P2PHost } from '../friends/p2p.ts'
import { friendsBackupKey, friendsBackupTarget, memoryPlacementStore } from '../friends/friends-target.ts'
import { imapBackupTarget, type BackupTarget } from '../backup/index.ts'
import type { Friend } from '../friends/friend-book.ts'
import type { CustodianState, RecoveryRequest } from '../recovery/custody.ts'
import { recover, writeFriendBookFromKit, type RecoveryEvent } from '../recovery/recover.ts'
import type { KitContents } from '../recovery/kit.ts'
import { torService } from '../tor/index.ts'
import { isOnionAddress } from '../../protocol/onion.ts'

/** A command given wrongly, or a recovery that cannot go on: said in one line, no stack. */
export class CliUsageError extends Error {
  override name = 'CliUsageError'
}

export const FRIENDS_USAGE = `
friends and recovery (the node must be running, except for recover):
  friends                     your friends: last seen, storage each way, audits
  invite [--quota-mib N]      make a one-time invite (text and QR code) for a friend
  accept CODE [--quota-mib N] accept a friend's invite
  unfriend ONION              end a friendship (their shards of yours are placed elsewhere)
  backup --friends            back up onto your friends now
  audit                       check that friends still hold your shards, and repair
  custodians [--appoint ONION,ONION,... --threshold T] [--check]
                              who holds a recovery share of your key, and whether they
                              still do; --appoint makes a new t-of-n split among friends
  requests                    recovery requests from friends' new machines
  approve ID | refuse ID      approve a request once you checked its code with the person
  recover --owner ONION --custodian ONION [--custodian ONION ...] --data NEWDIR
          [--from friends|imap] [--wait-minutes 60] [--tor-socks HOST:PORT]
                              on a new machine: ask the custodians for their shares, and
                              bring the node back (same address, keys and mail) from the
                              friends or the IMAP account; asks for a new passphrase.
                              Without --tor-socks it starts its own tor.
`

export interface FriendsCliOptions {
  control: string
  json: boolean
  positionals: string[]
  quotaMiB?: number
  appoint?: string
  threshold?: number
  check?: boolean
}

function print<T> (value: T, json: boolean, format: (v: T) => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : format(value))
}

function mib (bytes: number): string {
  return bytes >= 1024 ** 3 ? `${(bytes / 1024 ** 3).toFixed(1)} GiB` : `${(bytes / 1024 ** 2).toFixed(1)} MiB`
}

/** Runs a friends command against the running node; returns false if `command` is not one. */
export async function friendsCommand (command: string, o: FriendsCliOptions): Promise<boolean> {
  const ask = async (request: Parameters<typeof askNode>[1], timeoutMs = 300_000): Promise<unknown> => await askNode(o.control, request, timeoutMs)
  switch (command) {
    case 'friends':
      print(await ask({ command: 'friends' }) as FriendView[], o.json, (list) => list.length === 0
        ? 'No friends yet: "smtorp invite" makes an invite to give someone.\n'
        : list.map(f => [
          `${f.name}  ${f.onion}.onion`,
          `  last seen     ${f.lastSeen ?? 'never'}`,
          `  holds of ours ${mib(f.holdsOfOurs)} in ${f.shardsOfOurs} shards (they offered ${mib(f.quotaFromThem)})`,
          `  we hold       ${mib(f.weHoldOfTheirs)} of theirs (we offered ${mib(f.quotaForThem)})`,
          `  audits        ${f.audits === undefined ? 'none yet' : `${f.audits.passed} passed, ${f.audits.failed} failed${f.audits.lastResult !== undefined ? ` (last: ${f.audits.lastResult})` : ''}`}`
        ].join('\n')).join('\n\n') + '\n')
      return true
    case 'invite': {
      const invite = await ask({ command: 'invite', ...(o.quotaMiB !== undefined ? { quotaMiB: o.quotaMiB } : {}) }) as { code: string, expiresAt: string }
      const qr = await QRCode.toString(invite.code, { type: 'terminal', small: true })
      print(invite, o.json, i => `Give this invite to your friend (it works once, until ${i.expiresAt}):\n\n${i.code}\n\n${qr}\n`)
      return true
    }
    case 'accept': {
      const code = o.positionals[1]
      if (code === undefined) throw new CliUsageError('accept needs the invite: smtorp accept smtorp-invite-1:...')
      const friend = await ask({ command: 'accept', code, ...(o.quotaMiB !== undefined ? { quotaMiB: o.quotaMiB } : {}) }) as Friend
      print(friend, o.json, f => `You and ${f.name} (${f.onion}.onion) are friends now. They offered ${mib(f.quotaFromThem)} for your backup.\n`)
      return true
    }
    case 'unfriend': {
      const onion = o.positionals[1]
      if (onion === undefined) throw new CliUsageError('unfriend needs the friend\'s onion address')
      const result = await ask({ command: 'unfriend', onion: onion.replace(/\.onion$/, '') }) as { told: boolean }
      print(result, o.json, r => r.told ? 'The friendship is ended on both sides.\n' : 'The friendship is ended here; the friend could not be told now.\n')
      return true
    }
    case 'audit': {
      const result = await ask({ command: 'audit' }, 3_600_000) as { audit: { checked: number, passed: number, failed: number, replaced: number, unreachable: string[] }, repair: { replaced: number, unplaced: number } }
      print(result, o.json, r => `audited ${r.audit.checked} shards: ${r.audit.passed} good, ${r.audit.failed} bad (${r.audit.replaced} re-placed), ${r.audit.unreachable.length} friends unreachable; repair re-placed ${r.repair.replaced}, ${r.repair.unplaced} still without a place\n`)
      return true
    }
    case 'custodians': {
      const appoint = o.appoint?.split(',').map(s => s.trim().replace(/\.onion$/, '')).filter(s => s !== '')
      const view = await ask({ command: 'custodians', ...(appoint !== undefined ? { appoint, threshold: o.threshold ?? 2 } : {}), ...(o.check === true ? { check: true } : {}) }) as { threshold: number, count: number, createdAt: string, custodians: CustodianState[] } | null
      print(view, o.json, v => v === null
        ? 'No custodians yet: "smtorp custodians --appoint ONION,ONION,ONION --threshold 2".\n'
        : [`Any ${v.threshold} of these ${v.count} custodians can bring your key back (split made ${v.createdAt}):`,
            ...v.custodians.map(c => `  ${c.name.padEnd(16)} ${c.onion}.onion  share ${c.index}: ${c.check === undefined ? 'not checked' : `${c.check.ok ? 'OK' : 'PROBLEM'}, ${c.check.message} (${c.check.at})`}`), ''].join('\n'))
      return true
    }
    case 'requests':
      print(await ask({ command: 'recovery-requests' }) as RecoveryRequest[], o.json, list => list.length === 0
        ? 'No recovery requests.\n'
        : list.map(r => `${r.id}  ${r.state.padEnd(8)} for ${r.ownerName ?? 'someone this node holds no share for'} (${r.owner}.onion)  code ${r.code}  since ${r.createdAt}${r.reason !== undefined ? `  (${r.reason})` : ''}`).join('\n') + '\n' +
          'Approve only after the person read you the same code: smtorp approve ID\n')
      return true
    case 'approve':
    case 'refuse': {
      const id = o.positionals[1]
      if (id === undefined) throw new CliUsageError(`${command} needs the request id (see "smtorp requests")`)
      const r = await ask({ command, id }) as RecoveryRequest
      print(r, o.json, x => `The request ${x.id} is ${x.state}.\n`)
      return true
    }
    default:
      return false
  }
}

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

/** `smtorp recover`: everything runs in this process, through Tor only. */
export async function recoverCommand (o: RecoverCliOptions): Promise<void> {
  const logger = createLogger({ level: 'warn' })
  const owner = o.owner.toLowerCase().replace(/\.onion$/, '')
  if (!isOnionAddress(owner)) throw new CliUsageError('--owner must be your old onion address (56 characters)')
  if (o.custodians.length === 0) throw new CliUsageError('recover needs at least one --custodian ONION')
  for (const c of o.custodians) if (!isOnionAddress(c)) throw new CliUsageError(`--custodian ${c} is not an onion address`)
  const direct = new Map((o.direct ?? []).map(pair => {
    const at = pair.indexOf('=')
    const onion = pair.slice(0, Math.max(at, 0)).replace(/\.onion$/, '')
    if (at < 0 || !isOnionAddress(onion) || !pair.slice(at + 1).startsWith('/')) throw new CliUsageError(`--direct ${pair} is not ONION=MULTIADDR (for tests and LANs)`)
    return [onion, pair.slice(at + 1)] as const
  }))

  const tor = o.torSocks !== undefined ? undefined : await startOwnTor(logger)
  const socks = o.torSocks !== undefined ? parseHostPort(o.torSocks) : tor!.socks
  const hosts: P2PHost[] = []
  const newHost = async (seed: Uint8Array): Promise<P2PHost> => {
    const host = await createP2PHost({ onionSeed: seed, listen: { host: '127.0.0.1', port: 0 }, socks: () => socks, direct: direct.size > 0 })
    hosts.push(host)
    return host
  }
  let scratch: string | undefined
  try {
    const asking = await newHost(randomBytes(32))
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
      }
    }
    scratch = await mkdtemp(join(tmpdir(), 'smtorp-recover-'))
    const scratchDir = scratch
    let kitUsed: KitContents | undefined
    const report = await recover({
      askingHost: asking,
      owner,
      custodians: o.custodians.map(c => {
        const onion = c.toLowerCase().replace(/\.onion$/, '')
        const dial = direct.get(onion)
        return { onion, dial: dial !== undefined ? multiaddr(dial) : onionMultiaddr(onion, FRIENDS_VIRTUAL_PORT) }
      }),
      dataDir: o.dataDir,
      newPassphrase: o.newPassphrase,
      waitMs: o.waitMinutes * 60_000,
      onEvent: say,
      logger,
      openTarget: async (kit): Promise<BackupTarget> => {
        kitUsed = kit
        const seed = Buffer.from(kit.onionSeed, 'base64')
        if (o.from === 'imap') {
          if (kit.imap === undefined) throw new CliUsageError('The recovery kit names no IMAP account: recover --from friends.')
          const i = kit.imap
          return imapBackupTarget({
            host: i.host, port: i.port, secure: i.security === 'tls', doSTARTTLS: i.security === 'starttls', user: i.user, pass: i.password, folder: i.folder,
            ...(i.viaTor ? { proxy: `socks5://${socks.host}:${socks.port}` } : {})
          }, { logger })
        }
        const book = await FriendBook.open(scratchDir)
        for (const f of kit.friends) {
          const dial = direct.get(f.onion)
          await book.add({ ...f, ...(dial !== undefined ? { dial } : {}) })
        }
        const host = await newHost(seed)
        return friendsBackupTarget({ host, book, key: friendsBackupKey(seed), placement: memoryPlacementStore(), logger })
      }
    })
    if (kitUsed !== undefined) await writeFriendBookFromKit(o.dataDir, kitUsed)
    print(report, o.json, r => [
      '',
      `Your node is back in ${o.dataDir}: ${r.onion}.onion`,
      `  messages restored: ${r.restore.restored} of ${r.restore.messages}${r.restore.damaged.length > 0 ? `, ${r.restore.damaged.length} damaged` : ''}`,
      '  the new passphrase is set; the recovery code is unchanged.',
      `Start it with "smtorp start --data ${o.dataDir}".`,
      ''
    ].join('\n'))
    if (report.restore.damaged.length > 0) process.exitCode = 2
  } finally {
    for (const host of hosts) await host.stop()
    await tor?.stop()
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true })
  }
}

function parseHostPort (text: string): { host: string, port: number } {
  const m = /^([\d.]+|\[[0-9a-fA-F:]+\]|localhost):(\d{1,5})$/.exec(text)
  if (m === null) throw new CliUsageError('--tor-socks must be HOST:PORT, e.g. 127.0.0.1:9050')
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) }
}

/** A tor of our own in a temporary directory, for as long as the recovery runs. */
async function startOwnTor (logger: Logger): Promise<{ socks: { host: string, port: number }, stop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'smtorp-recover-tor-'))
  const tor = torService({ mode: 'own', dataDir: dir }, { logger })
  await tor.start()
  await tor.waitForBootstrap(300_000)
  return { socks: tor.socksEndpoint(), stop: async () => { await tor.stop(); await rm(dir, { recursive: true, force: true }) } }
}
