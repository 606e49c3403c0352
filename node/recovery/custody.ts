// Recovery shares held by trusted contacts (spec/recovery.md part 2), protocol
// /smtorp/recovery/1.0.0, on both sides:
//
// - The owner appoints custodians among its friends: the master key is split t-of-n
//   (shares.ts), and each custodian's node is sent its share and the recovery kit (kit.ts: the
//   onion key, the vault id, the friends and the IMAP settings, sealed under a key derived from
//   the master key, so a custodian holds ciphertext and one share). The owner keeps the split in
//   its vault (record recovery/custodians) and checks now and then that each custodian still
//   holds its share: a fresh nonce, answered with SHA-256(nonce | share record).
// - A custodian keeps what it holds in its own vault (records custody/<owner onion>), and
//   answers recovery requests. A request comes from a new machine (any peer, not a friend: the
//   owner lost everything) and names the owner and an X25519 public key; the custodian's owner
//   sees it in the UI with a verification code derived from that key and approves it by hand
//   (after checking the code with the person, by phone or face to face). Only then is the share
//   and kit sealed to the requester's key with HPKE (release.ts); the requester polls for it.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { PeerId } from '@libp2p/interface'
import type { Logger } from '../log/index.ts'
import type { Vault } from '../vault/index.ts'
import type { FriendBook } from '../friends/friend-book.ts'
import { friendAddress, onionOfPeerId, type P2PHost } from '../friends/p2p.ts'
import { PeerRefusedError, RefuseRequest, request, serve } from '../friends/rpc.ts'
import { isOnionAddress } from '../../protocol/onion.ts'
import { encodeShare, formatShare, parseShare, ShareFormatError } from '../../protocol/recovery-share.ts'
import { splitMasterKey } from './shares.ts'
import { sealKit, type KitContents } from './kit.ts'
import { releaseCode, sealRelease } from './release.ts'

export const RECOVERY_PROTOCOL = '/smtorp/recovery/1.0.0'
const OWNER_RECORD: readonly [string, string] = ['recovery', 'custodians']
export const CUSTODY_KIND = 'custody'
export const CUSTODY_INDEX: readonly [string, string] = ['custody-index', 'owners']
/** Requests kept at once, and how long one waits for its custodian's decision. */
const MAX_REQUESTS = 32
const REQUEST_TTL_MS = 7 * 24 * 3600_000
const MAX_KIT_BYTES = 256 * 1024

export interface CustodianState {
  onion: string
  name: string
  /** Which share of the split this custodian holds (1 .. n). */
  index: number
  /** When the custodian's node took its share; absent while it has not. */
  deliveredAt?: string
  /** The last check of the share: when, and whether the custodian proved it holds it. */
  check?: { at: string, ok: boolean, message: string }
}

export interface CustodySplit {
  format: 1
  /** hex */
  setId: string
  threshold: number
  count: number
  createdAt: string
  custodians: Array<CustodianState & { share: string }>
}

export interface HeldShare {
  owner: string
  /** The owner's name as the custodian's friend book has it. */
  ownerName: string
  receivedAt: string
  share: string
  /** base64 of the sealed kit */
  kit: string
}

export interface RecoveryRequest {
  id: string
  /** The owner the request claims to be for. */
  owner: string
  ownerName?: string
  /** The new machine's (temporary) onion. */
  requester: string
  /** The code both screens show; the custodian checks it with the person before approving. */
  code: string
  createdAt: string
  state: 'pending' | 'approved' | 'refused'
  /** Why it was refused. */
  reason?: string
}

export class CustodyError extends Error {
  override name = 'CustodyError'
}

export interface CustodyInit {
  host: P2PHost
  vault: Vault
  book: FriendBook
  /** What goes into the recovery kit, read when shares are sent (the kit follows the friends). */
  kitContents: () => Promise<Omit<KitContents, 'format'>>
  logger?: Logger
}

interface PendingRequest extends RecoveryRequest {
  publicKey: Buffer
  sealed?: Buffer
}

export class Custody {
  private readonly requests = new Map<string, PendingRequest>()
  private readonly listeners = new Set<() => void>()

  constructor (private readonly init: CustodyInit) {}

  async start (): Promise<void> {
    await serve(this.init.host, RECOVERY_PROTOCOL, async (frame, remote) => await this.answer(frame.header, frame.body, remote), {
      onError: (err) => this.init.logger?.warn({ err: (err as Error).message }, 'A recovery request failed on this node.')
    })
  }

  /** Called when a recovery request arrives or changes (for the UI). */
  onChange (listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  // ---- the owner's side ----

  /** The current split and each custodian's state, or undefined when none was made. Vault unlocked. */
  async split (): Promise<CustodySplit | undefined> {
    const value = await this.init.vault.getRecord(...OWNER_RECORD)
    return value === undefined ? undefined : JSON.parse(value.toString('utf8')) as CustodySplit
  }

  /** The custodians without their shares, for the UI. */
  async custodians (): Promise<{ threshold: number, count: number, createdAt: string, custodians: CustodianState[] } | undefined> {
    const split = await this.split()
    if (split === undefined) return undefined
    return { threshold: split.threshold, count: split.count, createdAt: split.createdAt, custodians: split.custodians.map(({ share: _share, ...rest }) => rest) }
  }

  /**
   * Splits the master key t-of-n among these friends and sends each its share and the kit.
   * A new split replaces the old one: the old shares are dropped where they can be. Custodians
   * that cannot be reached now get theirs at the next `deliver()`.
   */
  async appoint (custodians: string[], threshold: number): Promise<CustodianState[]> {
    const onions = [...new Set(custodians.map(c => c.toLowerCase().replace(/\.onion$/, '')))]
    for (const onion of onions) {
      if (!this.init.book.isFriend(onion)) throw new CustodyError(`${onion} is not a friend: a custodian must be a friend first.`)
    }
    if (onions.length < 2) throw new CustodyError('Choose at least two custodians.')
    if (!Number.isInteger(threshold) || threshold < 2 || threshold > onions.length) throw new CustodyError(`The number of custodians needed must be between 2 and ${onions.length}.`)
    const old = await this.split()
    const master = this.init.vault.exportMasterKeyForRecovery()
    let shares
    try {
      shares = await splitMasterKey(master, { threshold, count: onions.length })
    } finally {
      master.fill(0)
    }
    const split: CustodySplit = {
      format: 1,
      setId: shares[0]!.setId.toString('hex'),
      threshold,
      count: onions.length,
      createdAt: new Date().toISOString(),
      custodians: onions.map((onion, i) => ({ onion, name: this.init.book.friend(onion)!.name, index: shares[i]!.index, share: formatShare(shares[i]!) }))
    }
    await this.save(split)
    if (old !== undefined) {
      for (const c of old.custodians) {
        if (onions.includes(c.onion)) continue // overwritten by the new share
        await this.call(c.onion, { op: 'drop' }).catch(() => {})
      }
    }
    await this.deliver()
    return (await this.custodians())!.custodians
  }

  /** Sends each custodian its share and the current kit (again). Returns how many took it. */
  async deliver (options: { onlyMissing?: boolean } = {}): Promise<number> {
    const split = await this.split()
    if (split === undefined) return 0
    const master = this.init.vault.exportMasterKeyForRecovery()
    let kit: Buffer
    try {
      kit = sealKit(master, Buffer.from(split.setId, 'hex'), { format: 1, ...await this.init.kitContents() })
    } finally {
      master.fill(0)
    }
    let delivered = 0
    for (const c of split.custodians) {
      if (options.onlyMissing === true && c.deliveredAt !== undefined) continue
      try {
        await this.call(c.onion, { op: 'hold', share: c.share }, kit)
        c.deliveredAt = new Date().toISOString()
        c.check = { at: c.deliveredAt, ok: true, message: 'took its share' }
        delivered++
      } catch (err) {
        c.check = { at: new Date().toISOString(), ok: false, message: `could not be given its share: ${(err as Error).message}` }
      }
    }
    await this.save(split)
    return delivered
  }

  /** Asks each custodian to prove it still holds its share (a fresh nonce each time). */
  async check (): Promise<CustodianState[]> {
    const split = await this.split()
    if (split === undefined) return []
    for (const c of split.custodians) {
      const nonce = randomBytes(32)
      const expected = proofOf(nonce, parseShare(c.share))
      try {
        const answer = await this.call(c.onion, { op: 'check', nonce: nonce.toString('base64') })
        const proof = typeof answer.proof === 'string' ? Buffer.from(answer.proof, 'hex') : Buffer.alloc(0)
        const ok = proof.length === expected.length && timingSafeEqual(proof, expected)
        c.check = { at: new Date().toISOString(), ok, message: ok ? 'holds its share' : 'answered with a wrong proof: its share is damaged or replaced' }
      } catch (err) {
        const message = err instanceof PeerRefusedError && err.code === 'not-found'
          ? 'no longer holds its share'
          : `could not be checked: ${(err as Error).message}`
        c.check = { at: new Date().toISOString(), ok: false, message }
      }
    }
    await this.save(split)
    return (await this.custodians())!.custodians
  }

  private async call (onion: string, header: Record<string, unknown>, body?: Uint8Array): Promise<Record<string, unknown>> {
    const friend = this.init.book.friend(onion)
    if (friend === undefined) throw new CustodyError(`${onion} is no longer a friend`)
    const answer = await request(this.init.host, friendAddress(friend), RECOVERY_PROTOCOL, header, body, { timeoutMs: 120_000 })
    await this.init.book.seen(friend.onion)
    return answer.header
  }

  private async save (split: CustodySplit): Promise<void> {
    await this.init.vault.putRecord(...OWNER_RECORD, Buffer.from(JSON.stringify(split), 'utf8'))
  }

  // ---- the custodian's side ----

  /** The shares this node holds for others. Vault unlocked. */
  async held (): Promise<HeldShare[]> {
    const out: HeldShare[] = []
    for (const owner of await this.heldOwners()) {
      const value = await this.init.vault.getRecord(CUSTODY_KIND, owner)
      if (value !== undefined) out.push(JSON.parse(value.toString('utf8')) as HeldShare)
    }
    return out
  }

  /** Recovery requests, newest first, without their keys. */
  recoveryRequests (): RecoveryRequest[] {
    this.expire()
    return [...this.requests.values()].reverse().map(({ publicKey: _k, sealed: _s, ...rest }) => rest)
  }

  /** The custodian's owner approved a request by hand: seal the share and kit to the requester. */
  async approve (id: string): Promise<RecoveryRequest> {
    const req = this.requests.get(id)
    if (req === undefined) throw new CustodyError('There is no such recovery request (it may have expired).')
    if (req.state !== 'pending') throw new CustodyError(`That request was already ${req.state}.`)
    const value = await this.init.vault.getRecord(CUSTODY_KIND, req.owner)
    if (value === undefined) {
      req.state = 'refused'
      req.reason = 'this node holds no share for that person'
      this.changed()
      throw new CustodyError('This node holds no recovery share for that person; the request was refused.')
    }
    const held = JSON.parse(value.toString('utf8')) as HeldShare
    req.sealed = await sealRelease(req.publicKey, req.id, { share: held.share, kit: held.kit })
    req.state = 'approved'
    this.init.logger?.info({ request: req.id }, 'A recovery request was approved; the share is released to the requester.')
    this.changed()
    return this.view(req)
  }

  refuse (id: string, reason = 'the custodian refused'): RecoveryRequest {
    const req = this.requests.get(id)
    if (req === undefined) throw new CustodyError('There is no such recovery request (it may have expired).')
    if (req.state !== 'pending') throw new CustodyError(`That request was already ${req.state}.`)
    req.state = 'refused'
    req.reason = reason
    this.changed()
    return this.view(req)
  }

  private async heldOwners (): Promise<string[]> {
    const value = await this.init.vault.getRecord(...CUSTODY_INDEX)
    return value === undefined ? [] : JSON.parse(value.toString('utf8')) as string[]
  }

  private async answer (header: Record<string, unknown>, body: Buffer, remote: PeerId): Promise<{ header: Record<string, unknown>, body?: Uint8Array }> {
    const onion = onionOfPeerId(remote)
    switch (header.op) {
      case 'hold': {
        const friend = this.friendOrRefuse(onion)
        this.unlockedOrBusy()
        if (typeof header.share !== 'string') throw new RefuseRequest('bad-request', 'hold needs a share')
        try {
          parseShare(header.share)
        } catch (err) {
          if (err instanceof ShareFormatError) throw new RefuseRequest('bad-request', `that is not a share: ${err.message}`)
          throw err
        }
        if (body.length === 0 || body.length > MAX_KIT_BYTES) throw new RefuseRequest('bad-request', `the kit must be 1 to ${MAX_KIT_BYTES} bytes`)
        const held: HeldShare = { owner: onion, ownerName: friend.name, receivedAt: new Date().toISOString(), share: header.share, kit: body.toString('base64') }
        await this.init.vault.putRecord(CUSTODY_KIND, onion, Buffer.from(JSON.stringify(held), 'utf8'))
        const owners = await this.heldOwners()
        if (!owners.includes(onion)) await this.init.vault.putRecord(...CUSTODY_INDEX, Buffer.from(JSON.stringify([...owners, onion]), 'utf8'))
        await this.init.book.seen(onion)
        this.init.logger?.info({ owner: friend.name }, 'Holding a recovery share for a friend.')
        this.changed()
        return { header: {} }
      }
      case 'check': {
        this.friendOrRefuse(onion)
        this.unlockedOrBusy()
        if (typeof header.nonce !== 'string') throw new RefuseRequest('bad-request', 'check needs a nonce')
        const nonce = Buffer.from(header.nonce, 'base64')
        if (nonce.length < 16 || nonce.length > 64) throw new RefuseRequest('bad-request', 'the nonce must be 16 to 64 bytes')
        const value = await this.init.vault.getRecord(CUSTODY_KIND, onion)
        if (value === undefined) throw new RefuseRequest('not-found', 'this node holds no share for you')
        const held = JSON.parse(value.toString('utf8')) as HeldShare
        await this.init.book.seen(onion)
        return { header: { proof: proofOf(nonce, parseShare(held.share)).toString('hex') } }
      }
      case 'drop': {
        this.friendOrRefuse(onion)
        this.unlockedOrBusy()
        await this.init.vault.putRecord(CUSTODY_KIND, onion, undefined)
        const owners = await this.heldOwners()
        await this.init.vault.putRecord(...CUSTODY_INDEX, Buffer.from(JSON.stringify(owners.filter(o => o !== onion)), 'utf8'))
        this.changed()
        return { header: {} }
      }
      case 'request': {
        // From anyone: the owner's new machine is not a friend of anybody yet.
        if (typeof header.owner !== 'string' || !isOnionAddress(header.owner) || typeof header.publicKey !== 'string') {
          throw new RefuseRequest('bad-request', 'request needs owner (an onion address) and publicKey')
        }
        const publicKey = Buffer.from(header.publicKey, 'base64')
        if (publicKey.length !== 32) throw new RefuseRequest('bad-request', 'publicKey must be an X25519 public key (32 bytes)')
        this.expire()
        const existing = [...this.requests.values()].find(r => r.requester === onion && r.state === 'pending')
        if (existing !== undefined) this.requests.delete(existing.id)
        if (this.requests.size >= MAX_REQUESTS) throw new RefuseRequest('busy', 'this custodian has too many open recovery requests; try again later')
        const owner = header.owner.toLowerCase().replace(/\.onion$/, '')
        const ownerName = this.init.book.friend(owner)?.name
        const req: PendingRequest = {
          id: randomBytes(12).toString('hex'),
          owner,
          ...(ownerName !== undefined ? { ownerName } : {}),
          requester: onion,
          code: releaseCode(publicKey),
          createdAt: new Date().toISOString(),
          state: 'pending',
          publicKey
        }
        this.requests.set(req.id, req)
        this.init.logger?.info({ request: req.id }, 'A recovery request arrived; it waits for approval in the web UI.')
        this.changed()
        return { header: { id: req.id, code: req.code, state: req.state } }
      }
      case 'poll': {
        const req = typeof header.id === 'string' ? this.requests.get(header.id) : undefined
        if (req === undefined || req.requester !== onion) throw new RefuseRequest('not-found', 'no such request: it expired, or this custodian restarted; ask again')
        if (req.state === 'approved') return { header: { state: 'approved' }, body: req.sealed }
        return { header: { state: req.state, ...(req.reason !== undefined ? { reason: req.reason } : {}) } }
      }
      default:
        throw new RefuseRequest('bad-request', 'unknown operation')
    }
  }

  private friendOrRefuse (onion: string): NonNullable<ReturnType<FriendBook['friend']>> {
    const friend = this.init.book.friend(onion)
    if (friend === undefined) throw new RefuseRequest('not-a-friend', 'this node does not know you as a friend')
    return friend
  }

  private unlockedOrBusy (): void {
    if (this.init.vault.state() !== 'unlocked') throw new RefuseRequest('busy', 'this custodian\'s vault is locked; try again later')
  }

  private expire (): void {
    const now = Date.now()
    for (const [id, r] of this.requests) if (now - Date.parse(r.createdAt) > REQUEST_TTL_MS) this.requests.delete(id)
  }

  private view (req: PendingRequest): RecoveryRequest {
    const { publicKey: _k, sealed: _s, ...rest } = req
    return rest
  }

  private changed (): void {
    for (const listener of this.listeners) listener()
  }
}

/** SHA-256(nonce | share record): what a custodian answers to prove it holds its share. */
export function proofOf (nonce: Uint8Array, share: Parameters<typeof encodeShare>[0]): Buffer {
  return createHash('sha256').update(nonce).update(encodeShare(share)).digest()
}
