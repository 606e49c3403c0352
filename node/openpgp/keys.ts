// The owner's OpenPGP key (RFC 4880 v4, as Debian's GnuPG 2.2 reads them; spec/openpgp.md 1):
// an EdDSA (ed25519) primary key for certification and signing, and an ECDH (curve25519,
// "legacy" encoding) subkey for encryption, made by openpgp.js. RFC 9580 v6 keys and the new
// curve25519 encoding are avoided on purpose: GnuPG 2.2 refuses them.
import * as openpgp from 'openpgp'

export class OpenPgpKeyError extends Error {
  override name = 'OpenPgpKeyError'
}

/** The owner's key as kept in the vault's "openpgp/own-key" record (spec/node-data.md). */
export interface OwnKeyRecord {
  /** The current key, armored, without a passphrase: the vault record that holds it is sealed. */
  armoredPrivateKey: string
  /** Earlier keys (regenerated or replaced), kept so mail encrypted to them can still be read. */
  retired: string[]
  /** Armored revocation certificate of the current key, made with it; published only by `revoke`. */
  revocationCertificate: string
}

/** Every key smtorp makes or reads as its own must be one GnuPG 2.2 can use. */
const KEY_OPTIONS = { type: 'ecc', curve: 'curve25519Legacy' } as const

export async function generateOwnKey (options: { name?: string, addresses: string[], date?: Date }): Promise<OwnKeyRecord> {
  if (options.addresses.length === 0) throw new OpenPgpKeyError('A key needs at least one address.')
  const { privateKey, revocationCertificate } = await openpgp.generateKey({
    ...KEY_OPTIONS,
    userIDs: options.addresses.map(email => ({ email, ...(options.name !== undefined && options.name !== '' ? { name: options.name } : {}) })),
    ...(options.date !== undefined ? { date: options.date } : {}),
    format: 'armored'
  })
  return { armoredPrivateKey: privateKey, retired: [], revocationCertificate }
}

/** Fingerprint as upper-case hex, 40 digits for a v4 key. */
export function fingerprintOf (key: openpgp.Key): string {
  return key.getFingerprint().toUpperCase()
}

/** Four-digit groups, as people compare fingerprints aloud (GnuPG shows them so). */
export function formatFingerprint (fingerprint: string): string {
  return fingerprint.toUpperCase().replace(/(.{4})/g, '$1 ').trim()
}

/** The e-mail addresses of a key's user ids, lower-cased. */
export function addressesOf (key: openpgp.Key): string[] {
  return key.users.map(u => u.userID?.email?.toLowerCase() ?? '').filter(e => e !== '')
}

/**
 * The armored secret key under a passphrase, for the owner to keep as a backup: openpgp.js's
 * default S2K (iterated and salted SHA-256, AES-256), which GnuPG 2.2 imports.
 */
export async function exportSecretKeyBackup (armoredPrivateKey: string, passphrase: string): Promise<string> {
  if (passphrase.length < 8) throw new OpenPgpKeyError('Protect the key backup with a passphrase of at least 8 characters.')
  const key = await openpgp.readPrivateKey({ armoredKey: armoredPrivateKey })
  const locked = await openpgp.encryptKey({ privateKey: key, passphrase })
  return locked.armor()
}

/**
 * Read a secret key the owner imports (a backup, or a key from GnuPG: `gpg --export-secret-keys
 * --armor`), opening it with its passphrase, and check that it can sign and decrypt.
 * Returns it armored without a passphrase, for the sealed vault record.
 */
export async function importSecretKey (armored: string, passphrase: string | undefined): Promise<string> {
  let key: openpgp.PrivateKey
  try {
    key = await openpgp.readPrivateKey({ armoredKey: armored })
  } catch (err) {
    throw new OpenPgpKeyError(`This is not an armored OpenPGP secret key: ${(err as Error).message}`)
  }
  if (!key.isDecrypted()) {
    if (passphrase === undefined || passphrase === '') throw new OpenPgpKeyError('This key is protected by a passphrase: give it.')
    try {
      key = await openpgp.decryptKey({ privateKey: key, passphrase })
    } catch {
      throw new OpenPgpKeyError('The passphrase does not open this key.')
    }
  }
  try {
    await key.getSigningKey()
    await key.getEncryptionKey()
  } catch (err) {
    throw new OpenPgpKeyError(`This key cannot both sign and encrypt now: ${(err as Error).message}`)
  }
  return key.armor()
}

/** Read a public key someone gave (armored); a secret key given by mistake gives only its public part. */
export async function readPublicKey (armored: string): Promise<openpgp.PublicKey> {
  let keys: openpgp.Key[]
  try {
    keys = await openpgp.readKeys({ armoredKeys: armored })
  } catch (err) {
    throw new OpenPgpKeyError(`This is not an armored OpenPGP public key: ${(err as Error).message}`)
  }
  if (keys.length !== 1) throw new OpenPgpKeyError(`Give exactly one key; this text holds ${keys.length}.`)
  return (keys[0] as openpgp.Key).toPublic()
}

/** A public key from binary keydata (an Autocrypt header), or undefined when it is not one usable key. */
export async function publicKeyFromBytes (keydata: Uint8Array): Promise<openpgp.PublicKey | undefined> {
  try {
    const keys = await openpgp.readKeys({ binaryKeys: keydata })
    if (keys.length !== 1) return undefined
    const key = (keys[0] as openpgp.Key).toPublic()
    await key.getEncryptionKey()
    return key
  } catch {
    return undefined
  }
}

/**
 * Autocrypt Level 1 2.1.1: the keydata is the primary key, one user id with its self-signature,
 * and the encryption subkey with its binding: nothing more (no other user ids, no third-party
 * signatures), to keep headers small.
 */
export async function minimalPublicKey (key: openpgp.Key, address: string): Promise<Uint8Array> {
  const primaryUser = await key.getPrimaryUser()
  const user = key.users.find(u => u.userID?.email?.toLowerCase() === address.toLowerCase()) ?? primaryUser.user
  const encryption = await key.getEncryptionKey()
  const packets = new openpgp.PacketList<openpgp.AnyPacket>()
  packets.push(key.keyPacket as openpgp.AnyPacket)
  packets.push(user.userID as openpgp.AnyPacket)
  for (const sig of user.selfCertifications) packets.push(sig as openpgp.AnyPacket)
  const subkey = key.subkeys.find(s => s.getKeyID().equals(encryption.getKeyID()))
  if (subkey !== undefined) {
    packets.push(subkey.keyPacket as openpgp.AnyPacket)
    for (const sig of subkey.bindingSignatures) packets.push(sig as openpgp.AnyPacket)
  }
  return packets.write()
}

/** The current key revoked (reason: superseded or no longer used), armored public key. */
export async function revokedPublicKey (record: OwnKeyRecord): Promise<string> {
  const key = await openpgp.readPrivateKey({ armoredKey: record.armoredPrivateKey })
  const { publicKey } = await openpgp.revokeKey({ key, revocationCertificate: record.revocationCertificate, format: 'armored' })
  return publicKey
}
