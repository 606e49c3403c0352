// The friend invite, format version 1 (spec/friends.md, "Invites"): what one node gives
// another, as text or as a QR code of the same text, so that the other can become its friend.
//
//   record = version (1 byte, 0x01) | Ed25519 public key of the inviter's onion (32 bytes)
//            | one-time secret (16 bytes) | check (2 bytes: SHA-256 of the first 49 bytes, first 2)
//   text   = "smtorp-invite-1:" base32(record) (RFC 4648, lowercase, no padding; 82 characters)
//            [ "@" multiaddr ]   (only for tests and LAN set-ups: where to dial instead of the onion)
//
// The public key gives both the inviter's onion address and its libp2p peer id. The secret is
// shown once and accepted once, before it expires. The check catches a mistyped code; it is
// not a MAC. This module is pure.
import { createHash } from 'node:crypto'
import { base32Decode, base32Encode } from './base32.ts'
import { onionAddressFromPublicKey, publicKeyFromOnionAddress } from './onion.ts'

export const INVITE_VERSION = 1
export const INVITE_PREFIX = `smtorp-invite-${INVITE_VERSION}:`
export const INVITE_SECRET_BYTES = 16
const RECORD_BYTES = 1 + 32 + INVITE_SECRET_BYTES + 2

export interface Invite {
  /** The inviter's onion address, 56 characters. */
  onion: string
  secret: Buffer
  /** A multiaddr to dial instead of the onion (tests, LAN). */
  dial?: string
}

export class InviteError extends Error {
  override name = 'InviteError'
}

function check (head: Buffer): Buffer {
  return createHash('sha256').update(head).digest().subarray(0, 2)
}

export function formatInvite (invite: Invite): string {
  if (invite.secret.length !== INVITE_SECRET_BYTES) throw new InviteError(`an invite secret has ${INVITE_SECRET_BYTES} bytes`)
  const head = Buffer.concat([Buffer.from([INVITE_VERSION]), publicKeyFromOnionAddress(invite.onion), invite.secret])
  const text = INVITE_PREFIX + base32Encode(Buffer.concat([head, check(head)]))
  return invite.dial === undefined ? text : `${text}@${invite.dial}`
}

/** Parses an invite as pasted: surrounding white space and case do not matter. Throws InviteError. */
export function parseInvite (text: string): Invite {
  const trimmed = String(text).trim()
  const at = trimmed.indexOf('@')
  const code = (at === -1 ? trimmed : trimmed.slice(0, at)).replace(/\s+/g, '').toLowerCase()
  const dial = at === -1 ? undefined : trimmed.slice(at + 1).trim()
  if (!code.startsWith(INVITE_PREFIX)) throw new InviteError(`An invite starts with "${INVITE_PREFIX}".`)
  const body = code.slice(INVITE_PREFIX.length)
  if (!/^[a-z2-7]+$/.test(body)) throw new InviteError('The invite has characters that are not in its alphabet (a-z, 2-7).')
  const record = base32Decode(body)
  if (record.length !== RECORD_BYTES) throw new InviteError('The invite is too short or too long: check that it was copied whole.')
  if (record[0] !== INVITE_VERSION) throw new InviteError(`The invite has version ${record[0]}; this smtorp reads version ${INVITE_VERSION}.`)
  const head = record.subarray(0, RECORD_BYTES - 2)
  if (!check(head).equals(record.subarray(RECORD_BYTES - 2))) throw new InviteError('The invite does not check out: a character was changed or mistyped.')
  if (dial !== undefined && !/^\/[\w./:-]+$/.test(dial)) throw new InviteError('The address after "@" in the invite is not a multiaddr.')
  return {
    onion: onionAddressFromPublicKey(Buffer.from(record.subarray(1, 33))),
    secret: Buffer.from(record.subarray(33, 33 + INVITE_SECRET_BYTES)),
    ...(dial !== undefined ? { dial } : {})
  }
}
