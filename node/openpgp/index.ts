// The node's OpenPGP (spec/openpgp.md): the owner's key, what is known of each correspondent's
// key (Autocrypt Level 1 and trust on first use), signing and encrypting outgoing mail,
// reading incoming mail, routes announced in signed mail, and key lookup over Tor.
//
// Keys and peers live in sealed vault records; they are loaded at the first unlock and stay
// in memory until the process stops, as the queue key does, so mail handed to the node while
// the vault is locked is still signed and encrypted (spec/threat-model.md).
//
// Incoming mail is read once after it is stored (in arrival order, from a watermark kept in
// the vault, so mail that came while locked or before a crash is read at the next unlock):
// its security is recorded in its metadata, the peer state updated, a route learned. The
// stored bytes are never changed; a view decrypts again when it shows the message.
import * as openpgp from 'openpgp'
import { createHash } from 'node:crypto'
import type { Logger } from '../log/index.ts'
import type { Folder, MessageSecurity, StoredMessage, StoredMessageMeta } from '../store/mail-store.ts'
import {
  autocryptHeaderFor, canonicalAddress, formatAutocryptGossipHeader, formatAutocryptHeader, gossipHeadersFor,
  isAutocryptable, recommend, recommendForRecipients, updateFromGossip, updateFromMessage,
  type PeerState, type PreferEncrypt, type UiRecommendation
} from '../../protocol/autocrypt.ts'
import { parseHeaders, prependHeaders } from '../../protocol/message.ts'
import { sanitizeOutgoing } from '../../protocol/outgoing-headers.ts'
import { fieldValue, pgpMimeKind, splitEntity } from '../../protocol/pgp-mime.ts'
import { parseAddress } from '../../protocol/address.ts'
import {
  addressesOf, exportSecretKeyBackup, fingerprintOf, generateOwnKey, importSecretKey, minimalPublicKey,
  publicKeyFromBytes, readPublicKey, revokedPublicKey, OpenPgpKeyError, type OwnKeyRecord
} from './keys.ts'
import { readIncoming, type IncomingRead } from './incoming.ts'
import type { OutgoingCopy } from './outgoing.ts'
import { outgoingPool } from './outgoing-pool.ts'
import { PeerBook, fromStored, pinnedFrom, toStored, type PeerRecord } from './peers.ts'
import { lookupKey, type KeyLookupResult } from './key-lookup.ts'

export { OpenPgpKeyError, formatFingerprint } from './keys.ts'
export type { PeerRecord } from './peers.ts'
export type { KeyLookupResult, FoundKey } from './key-lookup.ts'

/** The header that announces a route (spec/smtorp.md 9); honoured only inside signed content. */
export const ROUTE_FIELD = 'SMTorP-Route'

export interface OpenPgpInit {
  /** The address new mail is sent from: the owner's ordinary address if set, else the onion one. */
  address: string
  /** The owner's onion mailbox (user@<56>.onion), announced as the route of `address` when they differ. */
  onionAddress: string
  name?: string
  /** Autocrypt prefer-encrypt of the owner (default mutual). */
  preferEncrypt?: PreferEncrypt
  /** HKP keyservers for lookups, reached only through Tor. */
  keyservers?: string[]
  /** Ask the Web Key Directory of a recipient's domain (through Tor). */
  wkd?: boolean
  lookupTimeoutMs?: number
}

/** What the service needs of the vault. */
export interface OpenPgpVault {
  state (): 'uninitialized' | 'locked' | 'unlocked'
  getRecord (kind: string, name: string): Promise<Buffer | undefined>
  putRecord (kind: string, name: string, value: Buffer | undefined): Promise<void>
  get (id: string): Promise<StoredMessage | undefined>
  annotate (id: string, note: { security?: MessageSecurity, subject?: string }): Promise<void>
  idsAfter (folder: Folder, after: string | undefined, limit: number): string[]
  setSearchContent (content: ((raw: Buffer) => Promise<Buffer | undefined>) | undefined): void
  onUnlock (listener: () => void): () => void
  onAdded (listener: (meta: StoredMessageMeta) => void): () => void
}

export interface OpenPgpComponents {
  logger: Logger
  vault: OpenPgpVault
  /** Tor's SOCKS endpoint, for key lookups. */
  socks: () => { host: string, port: number }
}

export class EncryptionRefusedError extends Error {
  override name = 'EncryptionRefusedError'
  constructor (readonly withoutKey: string[]) {
    super(`The message cannot be encrypted: there is no key for ${withoutKey.join(', ')}. Look their key up, or send it without encryption.`)
  }
}

export class OpenPgpNotReadyError extends Error {
  override name = 'OpenPgpNotReadyError'
  constructor () { super('The OpenPGP key is not loaded yet: unlock the vault first.') }
}

export interface OwnKeyInfo {
  fingerprint: string
  created: Date
  addresses: string[]
  armoredPublicKey: string
}

/** 'auto': encrypt when the recommendation says so, else sign; 'encrypt': encrypt or refuse; 'sign': sign only. */
export type EncryptionChoice = 'auto' | 'encrypt' | 'sign'

/**
 * Outbox flags that remember the owner's choice, so that copies made again after a crash
 * (queue/index.ts copiesFor) follow it (spec/node-data.md, "Queue").
 */
export const ENCRYPT_FLAG = '$Encrypt'
export const SIGN_ONLY_FLAG = '$SignOnly'

export function flagsForChoice (choice: EncryptionChoice): string[] {
  return choice === 'encrypt' ? [ENCRYPT_FLAG] : choice === 'sign' ? [SIGN_ONLY_FLAG] : []
}

export function choiceFromFlags (flags: readonly string[]): EncryptionChoice {
  return flags.includes(ENCRYPT_FLAG) ? 'encrypt' : flags.includes(SIGN_ONLY_FLAG) ? 'sign' : 'auto'
}

export interface RecipientSecurity {
  address: string
  /** Autocrypt's recommendation for this recipient, with TOFU on top (a changed key: discourage). */
  recommendation: UiRecommendation
  /** Which key would be used: the pinned one (verified or not), a gossiped one, or none. */
  key: 'verified' | 'pinned' | 'gossip' | 'none'
  fingerprint?: string
  /** A different key was seen and waits for the owner's decision. */
  changedKey?: string
  /** An onion mailbox learned for this address: mail goes there directly over Tor. */
  route?: string
}

export interface PreparedMessage {
  /** What the sender keeps (Outbox, then Sent): sanitized, with the Autocrypt header, readable. */
  stored: Buffer
  messageId: string
  /** What each recipient gets; undefined when everyone gets `stored` (a message already PGP-protected by the client). */
  copies?: OutgoingCopy[]
  encrypted: boolean
  signed: boolean
}

export interface PeerSummary {
  address: string
  lastSeen?: number
  preferEncrypt?: string
  pinned?: { fingerprint: string, since: number, verified: boolean, source: string }
  changed?: { fingerprint: string, seenAt: number, keptOldAt?: number }
  gossipOnly: boolean
  route?: string
}

export interface OpenPgp {
  start (): void
  stop (): Promise<void>
  ready (): boolean
  ownKey (): Promise<OwnKeyInfo>
  exportSecretKey (passphrase: string): Promise<string>
  importSecretKey (armored: string, passphrase: string | undefined): Promise<OwnKeyInfo>
  /** A new key; the old one is kept to read old mail. */
  regenerateKey (): Promise<OwnKeyInfo>
  /** Revoke the current key (returns the revoked public key to publish) and make a new one. */
  revokeKey (): Promise<{ revokedPublicKey: string, newKey: OwnKeyInfo }>
  peers (): PeerSummary[]
  peer (address: string): PeerSummary | undefined
  /** The owner compared fingerprints: mark the pinned key verified (the fingerprint must be the pinned one). */
  verifyPeer (address: string, fingerprint: string): Promise<void>
  /** The owner accepts the changed key: it becomes the pinned key. */
  acceptChangedKey (address: string, fingerprint: string): Promise<void>
  /** The owner keeps the pinned key and does not trust the changed one (recorded; nothing else changes). */
  keepPinnedKey (address: string, fingerprint: string): Promise<void>
  /** The owner accepts a key (looked up or pasted): pinned for every address of it, or for `address`. */
  importPeerKey (armored: string, address?: string): Promise<PeerSummary[]>
  lookupKey (address: string): Promise<KeyLookupResult>
  recipientSecurity (addresses: string[], options?: { replyToEncrypted?: boolean }): RecipientSecurity[]
  /** Whether mail to these recipients would be encrypted with `choice` 'auto'. */
  wouldEncrypt (addresses: string[], options?: { replyToEncrypted?: boolean }): boolean
  /** Sanitize, add Autocrypt, sign or encrypt a message (From must be the owner) for its envelope recipients. */
  prepareOutgoing (raw: Buffer, recipients: string[], choice: EncryptionChoice, options?: { replyToEncrypted?: boolean }): Promise<PreparedMessage>
  /** Read a stored message for display: decrypted, verified. */
  readMessage (raw: Buffer): Promise<IncomingRead>
  /** The onion mailbox learned for an ordinary address (sync, for the queue). */
  routeOf (address: string): string | undefined
  /** Read the Inbox mail not read yet (also done by itself after each unlock and each new message). */
  processNew (): Promise<number>
}

const OWN_KEY = ['openpgp', 'own-key'] as const
const WATERMARK = ['openpgp', 'read-through'] as const
const PROCESS_BATCH = 100
const PARSED_KEYS_KEPT = 1024
const RECENT_READS_KEPT = 32
const RECENT_READ_MAX_BYTES = 1024 * 1024

interface Loaded {
  record: OwnKeyRecord
  key: openpgp.PrivateKey
  /** The public key, armored, as the workers take it (encrypt-to-self). */
  armoredPublicKey: string
  /** Current key first, then retired ones. */
  decryptionKeys: openpgp.PrivateKey[]
  /** Keydata of the Autocrypt header, made once. */
  autocryptKeydata: Buffer
}

/** Make the owner's key and keep it in the (unlocked) vault; `smtorp init` calls this. */
export async function createOwnKey (vault: Pick<OpenPgpVault, 'putRecord'>, options: { addresses: string[], name?: string }): Promise<OwnKeyInfo> {
  const record = await generateOwnKey(options)
  await vault.putRecord(...OWN_KEY, Buffer.from(JSON.stringify(record)))
  const key = await openpgp.readPrivateKey({ armoredKey: record.armoredPrivateKey })
  return { fingerprint: fingerprintOf(key), created: key.getCreationTime(), addresses: addressesOf(key), armoredPublicKey: key.toPublic().armor() }
}

export function openPgpService (init: OpenPgpInit, components: OpenPgpComponents): OpenPgp {
  const log = components.logger.child({ component: 'openpgp' })
  const vault = components.vault
  const address = canonicalAddress(init.address)
  const onion = canonicalAddress(init.onionAddress)
  const ownAddresses = new Set([address, onion])
  const preferEncrypt = init.preferEncrypt ?? 'mutual'
  const peers = new PeerBook(vault)
  const pool = outgoingPool()
  let loaded: Loaded | undefined
  let loading: Promise<void> | undefined
  let chain: Promise<unknown> = Promise.resolve()
  const unsubscribe: Array<() => void> = []

  /** Run one thing at a time: reading mail, changing keys and peers never interleave. */
  async function serial<T> (work: () => Promise<T>): Promise<T> {
    const run = chain.then(work, work)
    chain = run.catch(() => {})
    return await run
  }

  async function load (): Promise<void> {
    let value = await vault.getRecord(...OWN_KEY)
    if (value === undefined) {
      // A node made before OpenPGP (`smtorp init` makes the key now): made at its first unlock.
      await createOwnKey(vault, { addresses: [...ownAddresses], ...(init.name !== undefined ? { name: init.name } : {}) })
      log.info('Made the owner\'s OpenPGP key.')
      value = await vault.getRecord(...OWN_KEY)
    }
    loaded = await loadRecord(JSON.parse((value as Buffer).toString('utf8')) as OwnKeyRecord)
    await peers.load()
  }

  async function loadRecord (record: OwnKeyRecord): Promise<Loaded> {
    const key = await openpgp.readPrivateKey({ armoredKey: record.armoredPrivateKey })
    const retired = await Promise.all(record.retired.map(async armoredKey => await openpgp.readPrivateKey({ armoredKey })))
    const sendAs = addressesOf(key).includes(address) ? address : addressesOf(key)[0] ?? address
    // The workers that sign and encrypt get the key too (outgoing-pool.ts).
    await pool.setKey(record.armoredPrivateKey)
    return { record, key, armoredPublicKey: key.toPublic().armor(), decryptionKeys: [key, ...retired], autocryptKeydata: Buffer.from(await minimalPublicKey(key, sendAs)) }
  }

  function mustBeLoaded (): Loaded {
    if (loaded === undefined) throw new OpenPgpNotReadyError()
    return loaded
  }

  async function saveOwn (record: OwnKeyRecord): Promise<OwnKeyInfo> {
    await vault.putRecord(...OWN_KEY, Buffer.from(JSON.stringify(record)))
    loaded = await loadRecord(record)
    return infoOf(loaded.key)
  }

  function infoOf (key: openpgp.PrivateKey | openpgp.PublicKey): OwnKeyInfo {
    return { fingerprint: fingerprintOf(key), created: key.getCreationTime(), addresses: addressesOf(key), armoredPublicKey: key.toPublic().armor() }
  }

  function onUnlock (): void {
    loading ??= serial(load).catch((err: unknown) => {
      loading = undefined
      log.error({ err: (err as Error).message }, 'The OpenPGP key could not be loaded; mail is not signed or decrypted until the next unlock.')
    })
    void loading.then(async () => await processNew()).catch((err: unknown) => { log.error({ err: (err as Error).message }, 'Reading new mail for OpenPGP failed; it is tried again at the next message.') })
  }

  // --- incoming ------------------------------------------------------------------------

  async function processNew (): Promise<number> {
    if (loaded === undefined || vault.state() !== 'unlocked') return 0
    return await serial(async () => {
      let count = 0
      for (let round = 0; round < 10_000 && vault.state() === 'unlocked'; round++) {
        const mark = (await vault.getRecord(...WATERMARK))?.toString('utf8')
        const ids = vault.idsAfter('Inbox', mark, PROCESS_BATCH)
        if (ids.length === 0) break
        let last: string | undefined
        for (const id of ids) {
          try {
            await processOne(id)
          } catch (err) {
            // Locked meanwhile: stop here; this message is read again at the next unlock.
            if (vault.state() !== 'unlocked') break
            // One bad message never holds up the rest: it is left as stored, and said so.
            log.warn({ message: id, err: (err as Error).message }, 'A message could not be read for OpenPGP; it is shown as stored.')
          }
          last = id
          count++
        }
        if (last === undefined) break
        await vault.putRecord(...WATERMARK, Buffer.from(last))
        if (last !== ids[ids.length - 1]) break
      }
      return count
    })
  }

  async function processOne (id: string): Promise<void> {
    const message = await vault.get(id)
    if (message === undefined) return
    const own = mustBeLoaded()
    const headers = parseHeaders(message.raw)
    const first = (name: string): string | undefined => headers.find(([key]) => key.toLowerCase() === name)?.[1]
    const fromAddresses = mailAddresses(first('from') ?? '')
    const from = fromAddresses.length === 1 ? fromAddresses[0] : undefined
    const now = Date.now()
    const dateValue = Date.parse(first('date') ?? '')
    const date = Number.isFinite(dateValue) ? dateValue : undefined
    const header = from === undefined ? undefined : autocryptHeaderFor(headers.filter(([k]) => k.toLowerCase() === 'autocrypt').map(([, v]) => v), from)
    const autocryptable = isAutocryptable({
      fromAddressCount: fromAddresses.length,
      ...(first('auto-submitted') !== undefined ? { autoSubmitted: first('auto-submitted') } : {}),
      ...(first('content-type') !== undefined ? { contentType: first('content-type') } : {})
    })
    const fromSelf = from !== undefined && ownAddresses.has(from)
    const existing = from === undefined || fromSelf ? undefined : peers.get(from)
    const headerKey = header !== undefined ? await keyFromKeydata(header.keydata) : undefined

    const result = await read(message.raw)
    const security: MessageSecurity = { ...result.security }

    let record: PeerRecord | undefined
    if (from !== undefined && !fromSelf) {
      record = existing !== undefined ? { ...existing } : { address: from, autocrypt: {} }
      const state = updateFromMessage(fromStored(record.autocrypt), { ...(date !== undefined ? { date } : {}), ...(header !== undefined && headerKey !== undefined ? { header } : {}), isAutocryptable: autocryptable }, now)
      if (state !== undefined) record.autocrypt = toStored(state)
      // TOFU (spec/openpgp.md 3): the first key seen is pinned; another one waits for the owner.
      let pinnedNow = false
      if (headerKey !== undefined && autocryptable) {
        const fingerprint = fingerprintOf(headerKey)
        if (record.pinned === undefined) {
          record.pinned = pinnedFrom(headerKey, 'autocrypt', now)
          pinnedNow = true
        } else if (record.pinned.fingerprint !== fingerprint && record.changed?.fingerprint !== fingerprint) {
          record.changed = { ...pinnedFrom(headerKey, 'autocrypt', now), seenAt: now }
          log.warn({ message: id }, 'A correspondent\'s key changed; it is not used until the owner accepts it.')
        }
      }
      if (security.signature === 'good' || security.signature === 'bad') {
        const pinned = record.pinned
        security.keyState = pinned !== undefined && security.signer === pinned.fingerprint
          ? (pinned.verified ? 'verified' : pinnedNow ? 'first-seen' : 'pinned')
          : security.signer === record.changed?.fingerprint ? 'changed' : 'other'
      }
      const trusted = security.signature === 'good' && (security.keyState === 'verified' || security.keyState === 'pinned' || security.keyState === 'first-seen')
      // Autocrypt Level 1 2.7: gossip is taken only from encrypted (and here: well-signed) mail.
      if (trusted && security.decrypted === true) await learnGossip(result.gossip, headers, date, now)
      const route = trusted ? routeIn(result, from) : undefined
      if (route !== undefined && record.route?.mailbox !== route) {
        record.route = { mailbox: route, learnedAt: now }
        log.info({ message: id }, 'Learned an onion route from a correspondent\'s signed mail.')
      }
      await peers.save(record)
    } else if (fromSelf && security.signature === 'good') {
      security.keyState = 'verified'
    }

    const protectedSubject = result.protectedFields?.find(f => f.key === 'subject')
    const plain = !security.encrypted && security.signature === 'none' && security.problem === undefined
    if (!plain || protectedSubject !== undefined) {
      await vault.annotate(id, { security, ...(protectedSubject !== undefined && security.encrypted ? { subject: decodeSubject(fieldValue(protectedSubject)) } : {}) })
    }
  }

  /** Keys from Autocrypt keydata, parsed once: the same sender's header comes with every message. */
  const parsedKeys = new Map<string, openpgp.PublicKey | undefined>()
  async function keyFromKeydata (keydata: Buffer): Promise<openpgp.PublicKey | undefined> {
    const id = createHash('sha256').update(keydata).digest('base64')
    if (parsedKeys.has(id)) return parsedKeys.get(id)
    const key = await publicKeyFromBytes(keydata)
    if (parsedKeys.size >= PARSED_KEYS_KEPT) parsedKeys.delete(parsedKeys.keys().next().value as string)
    parsedKeys.set(id, key)
    return key
  }

  /**
   * A message read with the keys that may have signed it. The last few results are kept, so the
   * reader and the search indexer, which both open a new message, decrypt it once.
   */
  const recentReads = new Map<string, Promise<IncomingRead>>()
  async function read (raw: Buffer): Promise<IncomingRead> {
    const own = mustBeLoaded()
    const headers = parseHeaders(raw)
    const fromAddresses = mailAddresses(headers.find(([k]) => k.toLowerCase() === 'from')?.[1] ?? '')
    const from = fromAddresses.length === 1 ? fromAddresses[0] : undefined
    const verificationKeys = await verificationKeysFor(headers, from)
    const hash = createHash('sha256').update(raw)
    for (const key of [...verificationKeys, ...own.decryptionKeys]) hash.update(fingerprintOf(key))
    const id = hash.digest('base64')
    // The promise is kept, so a second reader that comes while the first decrypts waits for it.
    const known = recentReads.get(id)
    if (known !== undefined) return await known
    const reading = readIncoming(raw, { decryptionKeys: own.decryptionKeys, verificationKeys })
    if (raw.length <= RECENT_READ_MAX_BYTES) {
      if (recentReads.size >= RECENT_READS_KEPT) recentReads.delete(recentReads.keys().next().value as string)
      recentReads.set(id, reading)
    }
    return await reading
  }

  /**
   * Keys that may have signed a message from `from` (spec/openpgp.md 4): its pinned key, a
   * changed key, the key of the message's own Autocrypt header, and the owner's for their own mail.
   */
  async function verificationKeysFor (headers: Array<[string, string]>, from: string | undefined): Promise<openpgp.PublicKey[]> {
    if (from === undefined) return []
    if (ownAddresses.has(from)) return [mustBeLoaded().key.toPublic()]
    const record = peers.get(from)
    const header = autocryptHeaderFor(headers.filter(([k]) => k.toLowerCase() === 'autocrypt').map(([, v]) => v), from)
    return uniqueKeys([
      await peers.pinnedKey(from),
      record?.changed !== undefined ? await openpgp.readKey({ armoredKey: record.changed.armored }) : undefined,
      header !== undefined ? await keyFromKeydata(header.keydata) : undefined
    ])
  }

  async function learnGossip (gossip: string[], headers: Array<[string, string]>, date: number | undefined, now: number): Promise<void> {
    const recipients = headers.filter(([k]) => ['to', 'cc'].includes(k.toLowerCase())).flatMap(([, v]) => mailAddresses(v))
    for (const g of gossipHeadersFor(gossip, recipients)) {
      const gossipAddress = canonicalAddress(g.addr)
      if (ownAddresses.has(gossipAddress)) continue
      if (await keyFromKeydata(g.keydata) === undefined) continue
      const record = peers.get(gossipAddress) ?? { address: gossipAddress, autocrypt: {} }
      record.autocrypt = toStored(updateFromGossip(fromStored(record.autocrypt), { ...(date !== undefined ? { date } : {}), keydata: g.keydata }, now))
      await peers.save(record)
    }
  }

  /** A route header inside the signed content, naming an onion mailbox, for an ordinary From address. */
  function routeIn (read: IncomingRead, from: string): string | undefined {
    const field = read.protectedFields?.find(f => f.key === ROUTE_FIELD.toLowerCase())
    if (field === undefined) return undefined
    const value = fieldValue(field).toLowerCase()
    try {
      if (parseAddress(from).route === 'onion') return undefined
      const mailbox = parseAddress(value)
      return mailbox.route === 'onion' ? `${mailbox.local}@${mailbox.domain}` : undefined
    } catch {
      return undefined
    }
  }

  // --- outgoing ------------------------------------------------------------------------

  function recipientSecurity (addresses: string[], options: { replyToEncrypted?: boolean } = {}): RecipientSecurity[] {
    return addresses.map(raw => {
      const a = canonicalAddress(raw)
      const record = peers.get(a)
      // TOFU decides the key, Autocrypt whether to encrypt by default: the pinned key stands in
      // for Autocrypt's public_key (recommend() only asks whether there is one, and we never
      // encrypt to its target key), so a changed key announced later does not count.
      const { publicKey: _announced, ...autocrypt } = fromStored(record?.autocrypt ?? {})
      const state: PeerState | undefined = record === undefined
        ? undefined
        : { ...autocrypt, ...(record.pinned !== undefined ? { publicKey: Buffer.from(record.pinned.fingerprint, 'hex') } : {}) }
      let recommendation = recommend(state, { ownPreferEncrypt: preferEncrypt, replyToEncrypted: options.replyToEncrypted === true }).ui
      if (record?.changed !== undefined && recommendation === 'encrypt') recommendation = 'discourage'
      const key: RecipientSecurity['key'] = record?.pinned !== undefined ? (record.pinned.verified ? 'verified' : 'pinned') : state?.gossipKey !== undefined ? 'gossip' : 'none'
      return {
        address: a,
        recommendation,
        key,
        ...(record?.pinned !== undefined ? { fingerprint: record.pinned.fingerprint } : {}),
        ...(record?.changed !== undefined ? { changedKey: record.changed.fingerprint } : {}),
        ...(record?.route !== undefined ? { route: record.route.mailbox } : {})
      }
    })
  }

  function wouldEncrypt (addresses: string[], options: { replyToEncrypted?: boolean } = {}): boolean {
    return recommendForRecipients(recipientSecurity(addresses, options).map(r => r.recommendation)) === 'encrypt'
  }

  /** The key mail to `a` is encrypted to (armored for the workers): the pinned one, else a gossiped one. */
  async function keyFor (a: string): Promise<{ armored: string, key: openpgp.PublicKey } | undefined> {
    const record = peers.get(a)
    const pinned = await peers.pinnedKey(a)
    if (pinned !== undefined && record?.pinned !== undefined) return { armored: record.pinned.armored, key: pinned }
    const gossip = record?.autocrypt.gossipKey
    const key = gossip === undefined ? undefined : await keyFromKeydata(Buffer.from(gossip, 'base64'))
    return key === undefined ? undefined : { armored: key.armor(), key }
  }

  async function prepareOutgoing (raw: Buffer, recipients: string[], choice: EncryptionChoice, options: { replyToEncrypted?: boolean } = {}): Promise<PreparedMessage> {
    if (loaded === undefined) await loading // the first unlock may still be loading the key
    const own = mustBeLoaded()
    const entity = splitEntity(raw)
    const fromField = entity.fields.find(f => f.key === 'from')
    const fromAddress = mailAddresses(fromField === undefined ? '' : fieldValue(fromField))[0] ?? address
    const domain = fromAddress.slice(fromAddress.lastIndexOf('@') + 1)
    const sanitized = sanitizeOutgoing(raw, domain, new Date())
    // A message the mail client already signed or encrypted goes as it is (sanitized outside).
    if (pgpMimeKind(splitEntity(sanitized.raw)) !== 'none') return { stored: sanitized.raw, messageId: sanitized.messageId, encrypted: false, signed: false }
    // Once only: a message prepared again (after a crash, queue/index.ts) has its header already.
    const hasAutocrypt = splitEntity(sanitized.raw).fields.some(f => f.key === 'autocrypt')
    const stored = hasAutocrypt ? sanitized.raw : prependHeaders(sanitized.raw, [`Autocrypt: ${formatAutocryptHeader({ addr: fromAddress, preferEncrypt, keydata: own.autocryptKeydata })}`])
    const to = [...new Set(recipients.map(canonicalAddress))]
    const visibleAddresses = new Set(entity.fields.filter(f => f.key === 'to' || f.key === 'cc').flatMap(f => mailAddresses(fieldValue(f))))
    const protectedExtra = announcesRoute(fromAddress) ? [`${ROUTE_FIELD}: ${onion}`] : []
    const encrypt = choice === 'encrypt' || (choice === 'auto' && wouldEncrypt(to, options))
    if (!encrypt) {
      const signed = await pool.sign(stored, protectedExtra)
      return { stored, messageId: sanitized.messageId, copies: [{ to, raw: signed }], encrypted: false, signed: true }
    }
    const keys = new Map<string, { armored: string, key: openpgp.PublicKey }>()
    const missing: string[] = []
    for (const a of to) {
      const key = ownAddresses.has(a) ? { armored: own.armoredPublicKey, key: own.key.toPublic() } : await keyFor(a)
      if (key === undefined) missing.push(a); else keys.set(a, key)
    }
    if (missing.length > 0) throw new EncryptionRefusedError(missing)
    const recipient = (a: string): { address: string, armoredKey: string } => ({ address: a, armoredKey: (keys.get(a) as { armored: string }).armored })
    const visible = to.filter(a => visibleAddresses.has(a))
    const blind = to.filter(a => !visibleAddresses.has(a))
    // Autocrypt Level 1 2.7: gossip each visible recipient's key to the others.
    const gossip = visible.length > 1
      ? await Promise.all(visible.map(async a => formatAutocryptGossipHeader({ addr: a, keydata: Buffer.from(await minimalPublicKey((keys.get(a) as { key: openpgp.PublicKey }).key, a)) })))
      : []
    const copies = await pool.encrypt(stored, { protectedExtra, ownKey: own.armoredPublicKey, visible: visible.map(recipient), blind: blind.map(recipient), gossip })
    return { stored, messageId: sanitized.messageId, copies, encrypted: true, signed: true }
  }

  /** spec/smtorp.md 9: mail from the owner's ordinary address names their onion mailbox. */
  function announcesRoute (fromAddress: string): boolean {
    if (fromAddress === onion || !ownAddresses.has(fromAddress)) return false
    try {
      return parseAddress(fromAddress).route !== 'onion'
    } catch {
      return false
    }
  }

  // --- keys and peers ------------------------------------------------------------------

  function summary (record: PeerRecord): PeerSummary {
    const a = record.autocrypt
    return {
      address: record.address,
      ...(a.lastSeen !== undefined ? { lastSeen: a.lastSeen } : {}),
      ...(a.preferEncrypt !== undefined ? { preferEncrypt: a.preferEncrypt } : {}),
      ...(record.pinned !== undefined ? { pinned: { fingerprint: record.pinned.fingerprint, since: record.pinned.since, verified: record.pinned.verified, source: record.pinned.source } } : {}),
      ...(record.changed !== undefined ? { changed: { fingerprint: record.changed.fingerprint, seenAt: record.changed.seenAt, ...(record.changed.keptOldAt !== undefined ? { keptOldAt: record.changed.keptOldAt } : {}) } } : {}),
      gossipOnly: record.pinned === undefined && a.gossipKey !== undefined,
      ...(record.route !== undefined ? { route: record.route.mailbox } : {})
    }
  }

  function mustPeer (a: string): PeerRecord {
    const record = peers.get(canonicalAddress(a))
    if (record === undefined) throw new OpenPgpKeyError(`No key is known for ${a}.`)
    return record
  }

  const sameFingerprint = (a: string, b: string): boolean => a.replace(/\s+/g, '').toUpperCase() === b.replace(/\s+/g, '').toUpperCase()

  return {
    start () {
      unsubscribe.push(vault.onUnlock(onUnlock))
      unsubscribe.push(vault.onAdded(meta => {
        if (meta.folder === 'Inbox') void processNew().catch((err: unknown) => { log.error({ err: (err as Error).message }, 'Reading new mail for OpenPGP failed; it is tried again at the next message.') })
      }))
      vault.setSearchContent(async raw => {
        if (loaded === undefined) await loading
        if (loaded === undefined) return undefined
        // Only encrypted mail needs another content; signed mail is indexed as it is stored.
        const kind = pgpMimeKind(splitEntity(raw))
        if (kind === 'signed' || (kind === 'none' && !raw.includes('-----BEGIN PGP MESSAGE-----'))) return undefined
        return (await read(raw)).display
      })
      if (vault.state() === 'unlocked') onUnlock()
    },
    async stop () {
      for (const u of unsubscribe.splice(0)) u()
      vault.setSearchContent(undefined)
      await chain.catch(() => {})
      await pool.stop()
    },
    ready: () => loaded !== undefined,
    async ownKey () { return infoOf(mustBeLoaded().key) },
    async exportSecretKey (passphrase) { return await exportSecretKeyBackup(mustBeLoaded().record.armoredPrivateKey, passphrase) },
    async importSecretKey (armored, passphrase) {
      const key = await importSecretKey(armored, passphrase)
      return await serial(async () => {
        const current = mustBeLoaded().record
        // An imported key has no stored revocation certificate; revokeKey makes one when asked.
        const record: OwnKeyRecord = { armoredPrivateKey: key, retired: [current.armoredPrivateKey, ...current.retired], revocationCertificate: '' }
        log.info('The owner imported an OpenPGP key.')
        return await saveOwn(record)
      })
    },
    async regenerateKey () {
      return await serial(async () => {
        const current = mustBeLoaded().record
        const fresh = await generateOwnKey({ addresses: [...ownAddresses], ...(init.name !== undefined ? { name: init.name } : {}) })
        log.info('Made a new OpenPGP key for the owner; the old one is kept to read old mail.')
        return await saveOwn({ ...fresh, retired: [current.armoredPrivateKey, ...current.retired] })
      })
    },
    async revokeKey () {
      return await serial(async () => {
        const current = mustBeLoaded().record
        const revokedPublic = current.revocationCertificate !== ''
          ? await revokedPublicKey(current)
          : (await openpgp.revokeKey({ key: await openpgp.readPrivateKey({ armoredKey: current.armoredPrivateKey }), format: 'armored' })).publicKey
        const fresh = await generateOwnKey({ addresses: [...ownAddresses], ...(init.name !== undefined ? { name: init.name } : {}) })
        const newKey = await saveOwn({ ...fresh, retired: [current.armoredPrivateKey, ...current.retired] })
        log.info('The owner revoked their OpenPGP key and a new one was made.')
        return { revokedPublicKey: revokedPublic, newKey }
      })
    },
    peers: () => peers.all().map(summary).sort((a, b) => a.address.localeCompare(b.address)),
    peer (a) {
      const record = peers.get(canonicalAddress(a))
      return record === undefined ? undefined : summary(record)
    },
    async verifyPeer (a, fingerprint) {
      await serial(async () => {
        const record = mustPeer(a)
        if (record.pinned === undefined || !sameFingerprint(record.pinned.fingerprint, fingerprint)) {
          throw new OpenPgpKeyError(`That is not the fingerprint of the key pinned for ${record.address}: compare again.`)
        }
        await peers.save({ ...record, pinned: { ...record.pinned, verified: true } })
      })
    },
    async acceptChangedKey (a, fingerprint) {
      await serial(async () => {
        const record = mustPeer(a)
        if (record.changed === undefined || !sameFingerprint(record.changed.fingerprint, fingerprint)) {
          throw new OpenPgpKeyError(`No changed key with that fingerprint is waiting for ${record.address}.`)
        }
        const { seenAt: _seen, keptOldAt: _kept, ...pinned } = record.changed
        const { changed: _dropped, ...rest } = record
        await peers.save({ ...rest, pinned: { ...pinned, since: Date.now(), verified: false } })
        log.info('The owner accepted a correspondent\'s changed key.')
      })
    },
    async keepPinnedKey (a, fingerprint) {
      await serial(async () => {
        const record = mustPeer(a)
        if (record.changed === undefined || !sameFingerprint(record.changed.fingerprint, fingerprint)) {
          throw new OpenPgpKeyError(`No changed key with that fingerprint is waiting for ${record.address}.`)
        }
        await peers.save({ ...record, changed: { ...record.changed, keptOldAt: Date.now() } })
      })
    },
    async importPeerKey (armored, forAddress) {
      const key = await readPublicKey(armored)
      await key.getEncryptionKey().catch(() => { throw new OpenPgpKeyError('This key cannot encrypt (it is revoked, expired or has no encryption subkey).') })
      const addresses = forAddress !== undefined ? [canonicalAddress(forAddress)] : addressesOf(key).map(canonicalAddress)
      if (forAddress !== undefined && !addressesOf(key).map(canonicalAddress).includes(addresses[0] as string)) {
        throw new OpenPgpKeyError(`This key is not for ${forAddress}: its addresses are ${addressesOf(key).join(', ') || 'none'}.`)
      }
      if (addresses.length === 0) throw new OpenPgpKeyError('This key names no e-mail address.')
      return await serial(async () => {
        const out: PeerSummary[] = []
        for (const a of addresses) {
          if (ownAddresses.has(a)) continue
          const record = peers.get(a) ?? { address: a, autocrypt: {} }
          const { changed: _dropped, ...rest } = record
          const updated: PeerRecord = { ...rest, pinned: pinnedFrom(key, 'imported', Date.now()) }
          await peers.save(updated)
          out.push(summary(updated))
        }
        return out
      })
    },
    async lookupKey (a) {
      return await lookupKey(a, {
        socks: components.socks,
        keyservers: init.keyservers ?? [],
        wkd: init.wkd ?? false,
        ...(init.lookupTimeoutMs !== undefined ? { timeoutMs: init.lookupTimeoutMs } : {})
      })
    },
    recipientSecurity,
    wouldEncrypt,
    prepareOutgoing,
    readMessage: read,
    routeOf (a) {
      try {
        const lower = canonicalAddress(a)
        return parseAddress(lower).route === 'onion' ? undefined : peers.get(lower)?.route?.mailbox
      } catch {
        return undefined
      }
    },
    processNew
  }
}

function uniqueKeys (keys: Array<openpgp.PublicKey | undefined>): openpgp.PublicKey[] {
  const seen = new Set<string>()
  const out: openpgp.PublicKey[] = []
  for (const key of keys) {
    if (key === undefined) continue
    const fingerprint = fingerprintOf(key)
    if (seen.has(fingerprint)) continue
    seen.add(fingerprint)
    out.push(key)
  }
  return out
}

/** The addr-specs of an address list header (RFC 5322 3.4), lower-cased; display names and comments skipped. */
export function mailAddresses (value: string): string[] {
  const text = value.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\((?:[^()\\]|\\.)*\)/g, ' ')
  const out: string[] = []
  for (const m of text.matchAll(/<\s*([^<>\s@]+@[^<>\s@]+?)\s*>|([^\s<>,;:"()@]+@[^\s<>,;:"()@]+)/g)) {
    const a = (m[1] ?? m[2] ?? '').toLowerCase()
    if (a !== '') out.push(canonicalAddress(a))
  }
  return out
}

function decodeSubject (value: string): string {
  return value.replace(/[\x00-\x1f\x7f]/g, ' ').trim()
}
