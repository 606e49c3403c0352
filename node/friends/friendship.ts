// Becoming friends and parting (spec/friends.md, "Friendship"), protocol /smtorp/friend/1.0.0.
//
// The inviter makes a one-time invite (protocol/friend-invite.ts) and hands it over out of
// band, as text or QR code. The invitee's node dials the inviter's onion and sends `accept`
// with the secret, its name and the storage it offers; the inviter takes the invite (once,
// before it expires), adds the invitee, and answers with its own name and the storage it
// offers. Each then lists the other. The peer ids are the onion keys, and Noise proved them,
// so neither side has to trust what the other claims to be.
//
// `remove` tells the other side we part; it drops us too. Each side then deletes what it held
// for the other (the owner of those shards re-places them: friends-target.ts).
import type { PeerId } from '@libp2p/interface'
import { formatInvite, parseInvite } from '../../protocol/friend-invite.ts'
import type { Logger } from '../log/index.ts'
import { FriendBook, cleanName, type Friend } from './friend-book.ts'
import { friendAddress, onionOfPeerId, type P2PHost } from './p2p.ts'
import { PeerRefusedError, RefuseRequest, request, serve } from './rpc.ts'

export const FRIEND_PROTOCOL = '/smtorp/friend/1.0.0'
/** An invite is good for a week unless the owner says otherwise. */
export const DEFAULT_INVITE_TTL_MS = 7 * 24 * 3600_000

export interface FriendshipInit {
  host: P2PHost
  book: FriendBook
  /** The name this node gives itself to new friends (the owner's user name). */
  ownName: () => string
  /**
   * Tests and LANs (config friends.direct): this node's direct address, sent with `accept` so
   * the inviter can dial back; and addresses sent to us are kept. Undefined: neither.
   */
  directAddress?: () => string | undefined
  /** Called after a friend was removed, by us or by them: delete what we held for them. */
  onRemoved?: (onion: string) => Promise<void>
  logger?: Logger
}

export class FriendshipError extends Error {
  override name = 'FriendshipError'
}


export class Friendship {
  constructor (private readonly init: FriendshipInit) {}

  async start (): Promise<void> {
    await serve(this.init.host, FRIEND_PROTOCOL, async (frame, remote) => await this.answer(frame.header, remote), {
      onError: (err) => this.init.logger?.warn({ err: (err as Error).message }, 'A friendship request failed on this node.')
    })
  }

  /**
   * A new invite: the text to hand over (also the content of its QR code) and when it expires.
   * `dial` puts a direct address in the invite (tests, LAN only).
   */
  async invite (options: { quotaForThem: number, ttlMs?: number, dial?: string }): Promise<{ code: string, expiresAt: string }> {
    const { secret, expiresAt } = await this.init.book.createInvite({ quotaForThem: options.quotaForThem, ttlMs: options.ttlMs ?? DEFAULT_INVITE_TTL_MS })
    const code = formatInvite({ onion: onionOfPeerId(this.init.host.peerId), secret, ...(options.dial !== undefined ? { dial: options.dial } : {}) })
    return { code, expiresAt }
  }

  /** Accepts an invite someone gave us: dials them, and on their yes lists them as a friend. */
  async accept (code: string, options: { quotaForThem: number, timeoutMs?: number }): Promise<Friend> {
    const invite = parseInvite(code)
    const own = onionOfPeerId(this.init.host.peerId)
    if (invite.onion === own) throw new FriendshipError('That invite is this node\'s own.')
    const address = friendAddress(invite)
    let answer
    try {
      answer = await request(this.init.host, address, FRIEND_PROTOCOL, {
        op: 'accept', secret: invite.secret.toString('base64'), name: this.init.ownName(), quota: options.quotaForThem,
        ...(this.init.directAddress?.() !== undefined ? { dial: this.init.directAddress() } : {})
      }, undefined, { timeoutMs: options.timeoutMs ?? 120_000 })
    } catch (err) {
      if (err instanceof PeerRefusedError) throw new FriendshipError(`The inviting node said no: ${err.message}`)
      throw new FriendshipError(`The inviting node could not be reached (${(err as Error).message}). It must be running and online; try again later.`, { cause: err })
    }
    const quota = answer.header.quota
    return await this.init.book.add({
      onion: invite.onion,
      name: typeof answer.header.name === 'string' ? answer.header.name : 'friend',
      quotaForThem: options.quotaForThem,
      quotaFromThem: typeof quota === 'number' && Number.isSafeInteger(quota) && quota >= 0 ? quota : 0,
      lastSeen: new Date().toISOString(),
      ...(invite.dial !== undefined ? { dial: invite.dial } : {})
    })
  }

  /** Parts with a friend: tells them (if they can be reached) and drops them from the book. */
  async remove (onion: string, options: { timeoutMs?: number } = {}): Promise<{ told: boolean }> {
    const friend = this.init.book.friend(onion)
    if (friend === undefined) throw new FriendshipError(`${onion} is not a friend.`)
    let told = true
    try {
      await request(this.init.host, friendAddress(friend), FRIEND_PROTOCOL, { op: 'remove' }, undefined, { timeoutMs: options.timeoutMs ?? 60_000 })
    } catch (err) {
      told = false
      this.init.logger?.info({ friend: friend.name, err: (err as Error).message }, 'The friend could not be told that the friendship ended; it is ended here.')
    }
    await this.init.book.remove(friend.onion)
    await this.init.onRemoved?.(friend.onion)
    return { told }
  }

  private async answer (header: Record<string, unknown>, remote: PeerId): Promise<{ header: Record<string, unknown> }> {
    const onion = onionOfPeerId(remote)
    switch (header.op) {
      case 'accept': {
        if (typeof header.secret !== 'string' || typeof header.name !== 'string' || typeof header.quota !== 'number' ||
            !Number.isSafeInteger(header.quota) || header.quota < 0) {
          throw new RefuseRequest('bad-request', 'accept needs secret, name and quota')
        }
        const invite = await this.init.book.takeInvite(Buffer.from(header.secret, 'base64'))
        if (invite === undefined) throw new RefuseRequest('forbidden', 'that invite is not valid: it was used already, it expired, or it was never made here')
        const dial = this.init.directAddress !== undefined && typeof header.dial === 'string' && /^\/ip[46]\/[\w.:]+\/tcp\/\d+(\/p2p\/\w+)?$/.test(header.dial) ? header.dial : undefined
        const friend = await this.init.book.add({ onion, name: cleanName(header.name), quotaForThem: invite.quotaForThem, quotaFromThem: header.quota, lastSeen: new Date().toISOString(), ...(dial !== undefined ? { dial } : {}) })
        this.init.logger?.info({ friend: friend.name }, 'A new friend accepted an invite.')
        return { header: { name: this.init.ownName(), quota: invite.quotaForThem } }
      }
      case 'remove': {
        if (await this.init.book.remove(onion)) {
          this.init.logger?.info('A friend ended the friendship.')
          await this.init.onRemoved?.(onion)
        }
        return { header: {} }
      }
      case 'hello': {
        if (!this.init.book.isFriend(onion)) throw new RefuseRequest('not-a-friend', 'this node does not know you as a friend')
        await this.init.book.seen(onion)
        return { header: { name: this.init.ownName() } }
      }
      default:
        throw new RefuseRequest('bad-request', 'unknown operation')
    }
  }
}
