// The friends' backup protocol, /smtorp/backup/1.0.0 (spec/backup.md part 3, section 15):
// a friend stores, fetches, lists, deletes and audits the shards it keeps on this node, and
// asks how much of its quota it uses. One request and one answer per stream (rpc.ts).
//
// Every request is answered from the caller's own namespace, named by the onion address of
// its authenticated peer id: a friend can read, overwrite and delete only its own shards, and
// no field of a request names an owner. A peer that is not in the friend book is refused with
// 'not-a-friend' before anything else is looked at.
import type { PeerId } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Frame, Header } from '../../protocol/friends-wire.ts'
import { isBlobName } from '../backup/target.ts'
import type { Logger } from '../log/index.ts'
import type { Friend, FriendBook } from './friend-book.ts'
import { friendAddress, onionOfPeerId, type P2PHost } from './p2p.ts'
import { RefuseRequest, request, serve, type Answer } from './rpc.ts'
import { isShardIndex, isShardMeta, MAX_META_CHARS, MAX_SHARD_INDEX, OverQuotaError, type HeldShard, type ShardHost } from './shard-host.ts'

export const BACKUP_PROTOCOL = '/smtorp/backup/1.0.0'
export const MAX_AUDIT_SHARDS = 256
export const MIN_AUDIT_NONCE_BYTES = 16
export const MAX_AUDIT_NONCE_BYTES = 64


export interface ServeBackupInit {
  book: FriendBook
  shardHost: ShardHost
  logger?: Logger
}

/** Registers the backup protocol's handler on the host. */
export async function serveBackup (host: P2PHost, init: ServeBackupInit): Promise<void> {
  const { book, shardHost, logger } = init
  await serve(host, BACKUP_PROTOCOL, async (frame, remote) => await handleBackupRequest(frame, remote, book, shardHost), {
    onError: (err) => logger?.error({ err: (err as Error).message }, 'A backup request from a friend failed on this node.')
  })
}

function bad (sentence: string): RefuseRequest {
  return new RefuseRequest('bad-request', sentence)
}

function shardName (header: Header): string {
  if (!isBlobName(header.name)) throw bad('name must be 1 to 64 lowercase hex characters')
  return header.name
}

function shardIndex (header: Header): number {
  if (!isShardIndex(header.index)) throw bad(`index must be an integer from 0 to ${MAX_SHARD_INDEX}`)
  return header.index
}

export async function handleBackupRequest (frame: Frame, remote: PeerId, book: FriendBook, shardHost: ShardHost): Promise<Answer> {
  let owner: string
  try {
    owner = onionOfPeerId(remote)
  } catch {
    throw new RefuseRequest('not-a-friend', 'this node does not know you as a friend')
  }
  if (!book.isFriend(owner)) throw new RefuseRequest('not-a-friend', 'this node does not know you as a friend')
  await book.seen(owner)
  const { header, body } = frame
  switch (header.op) {
    case 'put': {
      const name = shardName(header)
      const index = shardIndex(header)
      const meta = header.meta ?? ''
      if (!isShardMeta(meta)) throw bad(`meta must be a string of at most ${MAX_META_CHARS} characters`)
      try {
        await shardHost.put(owner, name, index, meta, body)
      } catch (err) {
        if (err instanceof OverQuotaError) throw new RefuseRequest('over-quota', err.message)
        throw err
      }
      return { header: { used: shardHost.usage(owner), quota: shardHost.quota(owner) } }
    }
    case 'get': {
      const bytes = await shardHost.get(owner, shardName(header), shardIndex(header))
      if (bytes === undefined) throw new RefuseRequest('not-found', 'this node holds no such shard of yours')
      return { body: bytes }
    }
    case 'list': {
      // The list goes in the body: a header is at most 64 KiB, a list of many shards is not.
      const shards = await shardHost.list(owner)
      return { header: { count: shards.length }, body: Buffer.from(JSON.stringify(shards), 'utf8') }
    }
    case 'delete': {
      const name = shardName(header)
      const index = header.index === undefined ? undefined : shardIndex(header)
      return { header: { deleted: await shardHost.delete(owner, name, index) } }
    }
    case 'audit': {
      const list = header.shards
      if (!Array.isArray(list) || list.length > MAX_AUDIT_SHARDS) throw bad(`shards must be a list of at most ${MAX_AUDIT_SHARDS} shards`)
      const shards = list.map((entry: unknown) => {
        if (typeof entry !== 'object' || entry === null) throw bad('each audited shard is an object with name, index and nonce')
        const e = entry as Header
        const nonce = typeof e.nonce === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(e.nonce) ? Buffer.from(e.nonce, 'base64') : undefined
        if (nonce === undefined || nonce.length < MIN_AUDIT_NONCE_BYTES || nonce.length > MAX_AUDIT_NONCE_BYTES) {
          throw bad(`each audit nonce is base64 of ${MIN_AUDIT_NONCE_BYTES} to ${MAX_AUDIT_NONCE_BYTES} bytes`)
        }
        return { name: shardName(e), index: shardIndex(e), nonce }
      })
      return { header: { proofs: await shardHost.audit(owner, shards) } }
    }
    case 'usage':
      return { header: { used: shardHost.usage(owner), quota: shardHost.quota(owner) } }
    default:
      throw bad('op must be one of put, get, list, delete, audit, usage')
  }
}

// ---- the owner's side ----

export interface ClientOptions {
  timeoutMs?: number
}

async function ask (host: P2PHost, friend: Friend, header: Header, body?: Uint8Array, options: ClientOptions = {}): Promise<Frame> {
  return await request(host, friendAddress(friend), BACKUP_PROTOCOL, header, body, options)
}

/** Stores a shard on the friend; resolves once the friend holds it durably. */
export async function putShard (host: P2PHost, friend: Friend, shard: { name: string, index: number, meta: string, bytes: Uint8Array }, options?: ClientOptions): Promise<{ used: number, quota: number }> {
  const answer = await ask(host, friend, { op: 'put', name: shard.name, index: shard.index, meta: shard.meta }, shard.bytes, options)
  return { used: Number(answer.header.used), quota: Number(answer.header.quota) }
}

/** The shard's bytes as the friend holds them; a friend without it refuses with 'not-found'. */
export async function getShard (host: P2PHost, friend: Friend, name: string, index: number, options?: ClientOptions): Promise<Buffer> {
  return (await ask(host, friend, { op: 'get', name, index }, undefined, options)).body
}

export async function listShards (host: P2PHost, friend: Friend, options?: ClientOptions): Promise<HeldShard[]> {
  const answer = await ask(host, friend, { op: 'list' }, undefined, options)
  let parsed: unknown
  try {
    parsed = JSON.parse(answer.body.toString('utf8'))
  } catch {
    parsed = undefined
  }
  if (!Array.isArray(parsed)) return []
  // What a friend says is checked like anything a peer sends.
  return parsed.filter((s): s is HeldShard => typeof s === 'object' && s !== null && isBlobName(s.name) && isShardIndex(s.index) &&
    Number.isSafeInteger(s.size) && isShardMeta(s.meta))
}

export async function deleteShards (host: P2PHost, friend: Friend, name: string, index?: number, options?: ClientOptions): Promise<number> {
  const answer = await ask(host, friend, index === undefined ? { op: 'delete', name } : { op: 'delete', name, index }, undefined, options)
  return Number(answer.header.deleted ?? 0)
}

/** For each shard, the friend's hex SHA-256(nonce || shard), or null where it says it has none. */
export async function auditShards (host: P2PHost, friend: Friend, shards: Array<{ name: string, index: number, nonce: Uint8Array }>, options?: ClientOptions): Promise<Array<string | null>> {
  const answer = await ask(host, friend, { op: 'audit', shards: shards.map(s => ({ name: s.name, index: s.index, nonce: Buffer.from(s.nonce).toString('base64') })) }, undefined, options)
  const proofs = Array.isArray(answer.header.proofs) ? answer.header.proofs : []
  return shards.map((_, i) => typeof proofs[i] === 'string' && /^[0-9a-f]{64}$/.test(proofs[i]) ? proofs[i] : null)
}

export async function usage (host: P2PHost, friend: Friend, options?: ClientOptions): Promise<{ used: number, quota: number }> {
  const answer = await ask(host, friend, { op: 'usage' }, undefined, options)
  return { used: Number(answer.header.used), quota: Number(answer.header.quota) }
}
