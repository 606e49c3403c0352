// smtorp's friends and recovery commands: friends | invite | accept | unfriend | custodians |
// requests | approve | refuse | audit, through the running node's control socket. `recover`,
// on a new machine without a node, is in recover.ts.
import QRCode from 'qrcode'
import { askNode } from '../control/index.ts'
import type { FriendView } from '../friends/index.ts'
import type { Friend } from '../friends/friend-book.ts'
import type { CustodianState, RecoveryRequest } from '../recovery/custody.ts'

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
  recover --ui --data NEWDIR [--owner ONION --custodian ONION ...] [--ui-port N]
                              the same, started and followed on a page in your browser
                              (the command prints its address)
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
