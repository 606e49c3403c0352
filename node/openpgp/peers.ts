// What the node knows of each correspondent's keys (spec/openpgp.md 2 and 3): the Autocrypt
// peer state (protocol/autocrypt.ts) and, on top of it, trust on first use: the first key seen
// for an address is pinned; a different key later is kept aside as "changed" until the owner
// decides; the owner may mark the pinned key verified after comparing fingerprints. Also the
// onion route the peer announced in signed mail (spec/smtorp.md 9).
//
// Kept in the vault as sealed records (spec/node-data.md): "openpgp-peer/<address>" per peer
// and "openpgp/peers", the list of addresses. All of it is also held in memory from the first
// unlock, so mail can be encrypted while the vault is locked (as the queue key is).
import * as openpgp from 'openpgp'
import type { PeerState } from '../../protocol/autocrypt.ts'
import { fingerprintOf } from './keys.ts'

export interface PinnedKey {
  fingerprint: string
  /** The public key, armored. */
  armored: string
  /** When it was pinned (ms since the epoch). */
  since: number
  /** Where it came from: an Autocrypt header, a lookup or import the owner accepted. */
  source: 'autocrypt' | 'imported' | 'lookup'
  /** The owner compared fingerprints and confirmed this key. */
  verified: boolean
}

export interface PeerRecord {
  address: string
  /** Autocrypt Level 1 peer state; keydata as base64. */
  autocrypt: StoredPeerState
  pinned?: PinnedKey
  /**
   * A key that differs from the pinned one, seen in the peer's mail, waiting for the owner;
   * `keptOldAt`: the owner chose to keep the pinned key (the changed one stays listed, and
   * its mail stays marked, until accepted or replaced by another).
   */
  changed?: PinnedKey & { seenAt: number, keptOldAt?: number }
  /** "local@<56>.onion": where mail for this address may go directly over Tor. */
  route?: { mailbox: string, learnedAt: number }
}

type StoredPeerState = Omit<PeerState, 'publicKey' | 'gossipKey'> & { publicKey?: string, gossipKey?: string }

export function toStored (state: PeerState): StoredPeerState {
  const { publicKey, gossipKey, ...rest } = state
  return {
    ...rest,
    ...(publicKey !== undefined ? { publicKey: publicKey.toString('base64') } : {}),
    ...(gossipKey !== undefined ? { gossipKey: gossipKey.toString('base64') } : {})
  }
}

export function fromStored (state: StoredPeerState): PeerState {
  const { publicKey, gossipKey, ...rest } = state
  return {
    ...rest,
    ...(publicKey !== undefined ? { publicKey: Buffer.from(publicKey, 'base64') } : {}),
    ...(gossipKey !== undefined ? { gossipKey: Buffer.from(gossipKey, 'base64') } : {})
  }
}

export interface PeerStorage {
  getRecord (kind: string, name: string): Promise<Buffer | undefined>
  putRecord (kind: string, name: string, value: Buffer | undefined): Promise<void>
}

const LIST = ['openpgp', 'peers'] as const
const PEER_KIND = 'openpgp-peer'

/** The peers, in memory, written through to the vault on every change. */
export class PeerBook {
  private readonly peers = new Map<string, PeerRecord>()
  private readonly keys = new Map<string, openpgp.PublicKey>()

  constructor (private readonly storage: PeerStorage) {}

  async load (): Promise<void> {
    this.peers.clear()
    this.keys.clear()
    const list = await this.storage.getRecord(...LIST)
    const addresses = list === undefined ? [] : JSON.parse(list.toString('utf8')) as string[]
    for (const address of addresses) {
      const value = await this.storage.getRecord(PEER_KIND, address)
      if (value !== undefined) this.peers.set(address, JSON.parse(value.toString('utf8')) as PeerRecord)
    }
  }

  get (address: string): PeerRecord | undefined {
    return this.peers.get(address.toLowerCase())
  }

  all (): PeerRecord[] {
    return [...this.peers.values()]
  }

  async save (record: PeerRecord): Promise<void> {
    const address = record.address.toLowerCase()
    const isNew = !this.peers.has(address)
    await this.storage.putRecord(PEER_KIND, address, Buffer.from(JSON.stringify(record)))
    this.peers.set(address, record)
    this.keys.delete(address)
    // The list is written after the record, so a crash between leaves an unlisted record (unused), never a dangling name.
    if (isNew) await this.storage.putRecord(...LIST, Buffer.from(JSON.stringify([...this.peers.keys()])))
  }

  /** The pinned key as an object, read once and kept. */
  async pinnedKey (address: string): Promise<openpgp.PublicKey | undefined> {
    const lower = address.toLowerCase()
    const cached = this.keys.get(lower)
    if (cached !== undefined) return cached
    const pinned = this.peers.get(lower)?.pinned
    if (pinned === undefined) return undefined
    const key = await openpgp.readKey({ armoredKey: pinned.armored })
    this.keys.set(lower, key)
    return key
  }
}

export function pinnedFrom (key: openpgp.PublicKey, source: PinnedKey['source'], now: number): PinnedKey {
  return { fingerprint: fingerprintOf(key), armored: key.armor(), since: now, source, verified: false }
}
