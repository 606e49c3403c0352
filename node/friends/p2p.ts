// The node's libp2p host for friends (spec/friends.md): Noise for encryption and
// authentication, yamux for streams, and the node's onion key as its libp2p identity, so a
// peer id and an onion address name the same key (protocol/onion.ts) and a friend can be
// dialled knowing only one of them.
//
// Transport (tor-transport.ts): the node dials a friend's `/onion3/<address>:<port>` through
// tor's SOCKS port and listens on 127.0.0.1 behind a virtual port of its own onion service.
// Direct TCP dials exist only when a test or a LAN configuration asks for them (`direct:
// true`); without it, no connection to an IP address is ever made.
import { createLibp2p, type Libp2p } from 'libp2p'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPairFromSeed, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { onionAddressFromPublicKey, publicKeyFromOnionAddress } from '../../protocol/onion.ts'
import { torTransport } from './tor-transport.ts'
import { MAX_FRAME_BYTES } from '../../protocol/friends-wire.ts'

/** The virtual port of the libp2p host on the node's onion (beside port 25 for SMTP). */
export const FRIENDS_VIRTUAL_PORT = 4001

export interface P2PInit {
  /** The node's onion seed (identity/onion.seed): its libp2p identity key. */
  onionSeed: Uint8Array
  /** Where to listen: 127.0.0.1 and a port (the target of the onion service's virtual port). */
  listen: { host: string, port: number }
  /** Tor's SOCKS endpoint, for dialling onions. Without it, onions cannot be dialled. */
  socks?: () => { host: string, port: number } | undefined
  /** Allow plain TCP to IP addresses (tests and LAN set-ups only). */
  direct?: boolean
}

export type P2PHost = Libp2p

export async function createP2PHost (init: P2PInit): Promise<P2PHost> {
  const privateKey = await generateKeyPairFromSeed('Ed25519', init.onionSeed)
  const listenAddress = `/ip4/${init.listen.host}/tcp/${init.listen.port}`
  const direct = init.direct === true
  return await createLibp2p({
    privateKey,
    addresses: { listen: [listenAddress] },
    transports: [torTransport({ socks: init.socks ?? (() => undefined), direct })],
    connectionEncrypters: [noise()],
    // A frame (a shard) is read whole before it is handled; let a stream buffer one.
    streamMuxers: [yamux({ streamOptions: { maxReadBufferLength: MAX_FRAME_BYTES + 1024 } })],
    connectionGater: {
      // Only onions, unless direct connections were asked for (then loopback and LAN too,
      // which libp2p's default gater would refuse).
      denyDialMultiaddr: (ma) => !direct && !isOnionMultiaddr(ma)
    },
    // libp2p's defaults (6 s per address, 10 s per dial and inbound upgrade) are for the open
    // internet; a first connection to an onion takes seconds (descriptor, introduction,
    // rendezvous) and more on a busy Tor network.
    // Through Tor every inbound connection comes from 127.0.0.1, so libp2p's per-IP limit on new
    // inbound connections (5 a second) would reset friends who connect together.
    connectionManager: { maxConnections: 64, dialTimeout: 90_000, addressDialTimeout: 90_000, inboundUpgradeTimeout: 60_000, inboundConnectionThreshold: 1000, maxIncomingPendingConnections: 64 },
    start: true
  })
}

export function isOnionMultiaddr (ma: Multiaddr): boolean {
  return ma.toString().startsWith('/onion3/')
}

/** The peer id of a node, from its onion address (56 characters, with or without ".onion"). */
export function peerIdOfOnion (onion: string): PeerId {
  return peerIdFromPublicKey(publicKeyFromRaw(publicKeyFromOnionAddress(onion)))
}

/** The onion address (56 characters) of an Ed25519 peer id. */
export function onionOfPeerId (peer: PeerId | string): string {
  const id = typeof peer === 'string' ? peerIdFromString(peer) : peer
  if (id.type !== 'Ed25519' || id.publicKey === undefined) throw new Error(`${id.toString()} is not an Ed25519 peer id, so it names no onion`)
  return onionAddressFromPublicKey(Buffer.from(id.publicKey.raw))
}

/** The onion address of the node with this onion seed. */
export async function onionOfSeed (seed: Uint8Array): Promise<string> {
  const key = await generateKeyPairFromSeed('Ed25519', seed)
  return onionAddressFromPublicKey(Buffer.from(key.publicKey.raw))
}

/** `/onion3/<address>:<port>/p2p/<peer id>` */
export function onionMultiaddr (onion: string, port: number): Multiaddr {
  const label = onion.toLowerCase().replace(/\.onion$/, '')
  return multiaddr(`/onion3/${label}:${port}/p2p/${peerIdOfOnion(label).toString()}`)
}

/**
 * Where to dial a friend: its `dial` multiaddr (tests, LAN), else its onion at port 4001;
 * always bound to the friend's own peer id (421 is /p2p/): without it Noise would accept
 * whoever answers at that address, and a wrong one in the book must not be trusted either.
 */
export function friendAddress (friend: { onion: string, dial?: string | undefined }): Multiaddr {
  if (friend.dial === undefined) return onionMultiaddr(friend.onion, FRIENDS_VIRTUAL_PORT)
  const peer = peerIdOfOnion(friend.onion).toString()
  return multiaddr(friend.dial).decapsulateCode(421).encapsulate(`/p2p/${peer}`)
}
