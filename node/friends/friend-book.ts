// The owner's friends and open invites, in `<dataDir>/friends/book.json` (spec/node-data.md).
//
// The book is a plain file, not a vault record: the node must know who its friends are while
// its vault is locked, to keep serving their shards (a friend's backup must not depend on our
// owner having typed a passphrase since the last restart). It holds onion addresses, names,
// quotas and counters, no secret: invite secrets are kept as SHA-256 hashes. The threat model
// says what this reveals to someone who takes the disk.
//
// Every change is written durably (temp file, fsync, rename) before the call resolves, one at
// a time.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileDurably } from '../identity/index.ts'
import { isOnionAddress } from '../../protocol/onion.ts'
import { INVITE_SECRET_BYTES } from '../../protocol/friend-invite.ts'

export const FRIEND_BOOK_FORMAT = 1
export const BOOK_FILE = join('friends', 'book.json')

export interface AuditSummary {
  passed: number
  failed: number
  /** ISO 8601 */
  lastAt?: string
  /** One sentence: "all 12 shards checked" or what failed. */
  lastResult?: string
}

export interface Friend {
  /** The friend's onion address, 56 characters: also its libp2p peer id (p2p.ts peerIdOfOnion). */
  onion: string
  /** What the owner calls this friend (the name the friend gave, until the owner renames it). */
  name: string
  /** ISO 8601 */
  addedAt: string
  /** Bytes of the friend's shards this node agrees to hold. */
  quotaForThem: number
  /** Bytes of our shards the friend agreed to hold. */
  quotaFromThem: number
  /** The last time the friend answered us or asked us anything (ISO 8601). */
  lastSeen?: string
  /** A multiaddr to dial instead of the onion: tests and LAN set-ups only. */
  dial?: string
  audits?: AuditSummary
}

export interface OpenInvite {
  /** hex SHA-256 of the secret */
  secretHash: string
  /** ISO 8601 */
  createdAt: string
  expiresAt: string
  /** The storage offered to whoever accepts. */
  quotaForThem: number
}

interface BookFile {
  format: number
  friends: Friend[]
  invites: OpenInvite[]
}

export class FriendBookError extends Error {
  override name = 'FriendBookError'
}

export class FriendBook {
  private book: BookFile = { format: FRIEND_BOOK_FORMAT, friends: [], invites: [] }
  private writing: Promise<void> = Promise.resolve()
  private readonly listeners = new Set<() => void>()

  private constructor (private readonly file: string) {}

  /** Reads `<dataDir>/friends/book.json`, or starts an empty book when there is none. */
  static async open (dataDir: string): Promise<FriendBook> {
    const book = new FriendBook(join(dataDir, BOOK_FILE))
    let text: string | undefined
    try {
      text = await readFile(book.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    if (text !== undefined) {
      let parsed: BookFile
      try {
        parsed = JSON.parse(text) as BookFile
      } catch {
        throw new FriendBookError(`${book.file} is not JSON: it is damaged. Restore it from a copy, or move it away to start with no friends.`)
      }
      if (parsed.format !== FRIEND_BOOK_FORMAT || !Array.isArray(parsed.friends) || !Array.isArray(parsed.invites)) {
        throw new FriendBookError(`${book.file} is not a friend book of format ${FRIEND_BOOK_FORMAT}.`)
      }
      book.book = parsed
    }
    return book
  }

  friends (): Friend[] {
    return this.book.friends.map(f => structuredClone(f))
  }

  /** The friend with this onion address (with or without ".onion"), if any. */
  friend (onion: string): Friend | undefined {
    const label = onion.toLowerCase().replace(/\.onion$/, '')
    const found = this.book.friends.find(f => f.onion === label)
    return found === undefined ? undefined : structuredClone(found)
  }

  isFriend (onion: string): boolean {
    return this.friend(onion) !== undefined
  }

  /** Adds the friend, or updates name, quotas and dial address of one already there. */
  async add (friend: Omit<Friend, 'addedAt'> & { addedAt?: string }): Promise<Friend> {
    if (!isOnionAddress(friend.onion)) throw new FriendBookError(`${friend.onion} is not an onion address.`)
    checkQuota(friend.quotaForThem)
    checkQuota(friend.quotaFromThem)
    const entry: Friend = { ...friend, onion: friend.onion.toLowerCase().replace(/\.onion$/, ''), name: cleanName(friend.name), addedAt: friend.addedAt ?? new Date().toISOString() }
    const existing = this.book.friends.find(f => f.onion === entry.onion)
    if (existing === undefined) this.book.friends.push(entry)
    else Object.assign(existing, entry, { addedAt: existing.addedAt })
    await this.save()
    return structuredClone(this.book.friends.find(f => f.onion === entry.onion)!)
  }

  /** Changes fields of a friend; returns false when it is not (or no longer) a friend. */
  async update (onion: string, patch: Partial<Pick<Friend, 'name' | 'quotaForThem' | 'quotaFromThem' | 'lastSeen' | 'audits' | 'dial'>>): Promise<boolean> {
    const entry = this.book.friends.find(f => f.onion === onion)
    if (entry === undefined) return false
    if (patch.quotaForThem !== undefined) checkQuota(patch.quotaForThem)
    if (patch.quotaFromThem !== undefined) checkQuota(patch.quotaFromThem)
    Object.assign(entry, patch, patch.name !== undefined ? { name: cleanName(patch.name) } : {})
    await this.save()
    return true
  }

  /** Notes that the friend was heard from now; written at most once a minute per friend. */
  async seen (onion: string, at = new Date()): Promise<void> {
    const entry = this.book.friends.find(f => f.onion === onion)
    if (entry === undefined) return
    if (entry.lastSeen !== undefined && at.getTime() - Date.parse(entry.lastSeen) < 60_000) return
    entry.lastSeen = at.toISOString()
    await this.save()
  }

  async remove (onion: string): Promise<boolean> {
    const before = this.book.friends.length
    this.book.friends = this.book.friends.filter(f => f.onion !== onion)
    if (this.book.friends.length === before) return false
    await this.save()
    return true
  }

  /** A new one-time invite secret; only its hash is kept. */
  async createInvite (options: { quotaForThem: number, ttlMs: number, now?: Date }): Promise<{ secret: Buffer, expiresAt: string }> {
    checkQuota(options.quotaForThem)
    const now = options.now ?? new Date()
    const secret = randomBytes(INVITE_SECRET_BYTES)
    const expiresAt = new Date(now.getTime() + options.ttlMs).toISOString()
    this.book.invites = this.book.invites.filter(i => Date.parse(i.expiresAt) > now.getTime())
    this.book.invites.push({ secretHash: hashSecret(secret), createdAt: now.toISOString(), expiresAt, quotaForThem: options.quotaForThem })
    await this.save()
    return { secret, expiresAt }
  }

  invites (): OpenInvite[] {
    return this.book.invites.filter(i => Date.parse(i.expiresAt) > Date.now()).map(i => structuredClone(i))
  }

  /** Takes the open invite with this secret (once), or returns undefined if none matches or it expired. */
  async takeInvite (secret: Uint8Array, now = new Date()): Promise<OpenInvite | undefined> {
    const hash = Buffer.from(hashSecret(secret), 'hex')
    const found = this.book.invites.find(i => timingSafeEqual(Buffer.from(i.secretHash, 'hex'), hash))
    if (found === undefined) return undefined
    this.book.invites = this.book.invites.filter(i => i !== found)
    await this.save()
    return Date.parse(found.expiresAt) > now.getTime() ? found : undefined
  }

  async cancelInvites (): Promise<void> {
    this.book.invites = []
    await this.save()
  }

  /** Called after every change is saved. */
  onChange (listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private async save (): Promise<void> {
    const snapshot = JSON.stringify(this.book, null, 2)
    const turn = this.writing.then(async () => {
      await mkdir(join(this.file, '..'), { recursive: true, mode: 0o700 })
      await writeFileDurably(this.file, snapshot)
    })
    this.writing = turn.catch(() => {})
    await turn
    for (const listener of this.listeners) listener()
  }
}

function hashSecret (secret: Uint8Array): string {
  return createHash('sha256').update(secret).digest('hex')
}

function checkQuota (bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new FriendBookError('A quota is a whole number of bytes, 0 or more.')
}

/** One line of at most 64 printable characters. */
export function cleanName (name: string): string {
  const cleaned = String(name).replace(/[\p{Cc}\p{Cf}]/gu, ' ').replace(/\s+/g, ' ').trim().slice(0, 64)
  return cleaned === '' ? 'friend' : cleaned
}
