// Autocrypt Level 1 (https://autocrypt.org/level1.html, release 1.1): the Autocrypt and
// Autocrypt-Gossip headers, the peer state kept per sender, and the encryption recommendation.
// Section names in the comments are the spec's headings (it has no section numbers).
//
// Keys are opaque here: `keydata` is the binary OpenPGP "Transferable Public Key" as bytes,
// checked only for being base64 and starting with an OpenPGP packet tag. Whether a key is
// revoked, expired or unusable is for the caller's OpenPGP code to say (`isKeyUsable`).
//
// Release 1.1 has no "reset" peer state (earlier drafts had one, set when mail arrived without
// a header). Its replacement is the staleness rule of "Preliminary Recommendation": a peer whose
// last Autocrypt header is more than 35 days older than their last mail is discouraged.
import { domainToASCII } from 'node:url'

export type PreferEncrypt = 'mutual' | 'nopreference'

/** A valid `Autocrypt` header ("The Autocrypt Header"). */
export interface AutocryptHeader {
  /** The address the header is for, as written. Compare with `canonicalAddress`. */
  addr: string
  preferEncrypt: PreferEncrypt
  /** Binary OpenPGP Transferable Public Key (RFC 4880 11.1). */
  keydata: Buffer
}

/** A valid `Autocrypt-Gossip` header ("Key Gossip"): same format, no prefer-encrypt. */
export interface AutocryptGossipHeader {
  addr: string
  keydata: Buffer
}

export class AutocryptError extends Error {
  override name = 'AutocryptError'
}

// "The Autocrypt Header": "A MUA MUST NOT send an Autocrypt header above 10 KiB in size
// (including the Autocrypt: prefix and folding whitespace) ... MUAs SHOULD treat such headers
// as invalid."
export const MAX_HEADER_BYTES = 10 * 1024
// RFC 5322 2.1.1: lines SHOULD be at most 78 characters. The spec's gossip example folds
// keydata into lines of a space and 76 base64 characters; we do the same.
const KEYDATA_LINE_CHARS = 76
const MAX_LINE_CHARS = 78
// RFC 4648 4, with padding, as the spec's examples write it.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
// An addr-spec without comments, quotes or brackets: exactly one "@", something on each side.
const ADDR = /^[^\s@<>()[\]",;\\]+@[^\s@<>()[\]",;\\]+$/

type HeaderKind = 'Autocrypt' | 'Autocrypt-Gossip'

interface ParsedAttributes {
  addr: string
  preferEncrypt: PreferEncrypt
  keydata: Buffer
}

/** Parse the value of an `Autocrypt:` header, folded or unfolded. Throws AutocryptError. */
export function parseAutocryptHeader (value: string): AutocryptHeader {
  const { addr, preferEncrypt, keydata } = parseAttributes(value, 'Autocrypt')
  return { addr, preferEncrypt, keydata }
}

/**
 * Parse the value of an `Autocrypt-Gossip:` header. "Key Gossip": same format as the
 * Autocrypt header; a prefer-encrypt attribute (which senders SHOULD NOT include) is ignored.
 */
export function parseAutocryptGossipHeader (value: string): AutocryptGossipHeader {
  const { addr, keydata } = parseAttributes(value, 'Autocrypt-Gossip')
  return { addr, keydata }
}

function parseAttributes (value: string, kind: HeaderKind): ParsedAttributes {
  if (Buffer.byteLength(`${kind}: ${value}`, 'utf8') > MAX_HEADER_BYTES) throw new AutocryptError(`the ${kind} header is larger than 10 KiB`)
  // RFC 5322 2.2.3: unfolding removes CRLF before white space. Any other control character
  // (a bare CR or LF included) has no business in this header.
  const unfolded = value.replace(/\r?\n(?=[ \t])/g, '')
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(unfolded)) throw new AutocryptError(`the ${kind} header contains control characters`)
  const seen = new Map<string, string>()
  let afterKeydata = false
  for (const part of unfolded.split(';')) {
    const attribute = part.trim()
    if (attribute === '') continue // a trailing ";" (as in the spec's Autocrypt-Draft-State example)
    const eq = attribute.indexOf('=')
    if (eq <= 0) throw new AutocryptError(`the ${kind} attribute ${JSON.stringify(attribute.slice(0, 40))} has no name=value form`)
    // The spec does not say whether names are case-sensitive; MIME parameter names are not
    // (RFC 2045 5.1), and reading "Addr" as an unknown critical attribute helps nobody.
    const name = attribute.slice(0, eq).trim().toLowerCase()
    const attrValue = attribute.slice(eq + 1).trim()
    // "For ease of parsing, the keydata attribute MUST be the last attribute in this header."
    if (afterKeydata) throw new AutocryptError(`keydata is not the last attribute of the ${kind} header`)
    if (seen.has(name)) throw new AutocryptError(`the ${kind} header has the attribute "${name}" twice`)
    seen.set(name, attrValue)
    if (name === 'keydata') afterKeydata = true
    // "If an attribute name starts with an underscore (_), it is a "non-critical" attribute
    // ... The MUA SHOULD ignore any unsupported non-critical attributes ... It MUST treat the
    // entire Autocrypt header as invalid if it encounters a "critical" attribute that it
    // doesn't support."
    if (name.startsWith('_') || name === 'addr' || name === 'prefer-encrypt' || name === 'keydata') continue
    throw new AutocryptError(`the ${kind} header has the unknown critical attribute "${name.slice(0, 40)}"`)
  }
  // "The addr attribute is mandatory, and contains the single recipient address this header
  // is valid for."
  const addr = seen.get('addr')
  if (addr === undefined || addr === '') throw new AutocryptError(`the ${kind} header has no addr attribute`)
  if (!ADDR.test(addr)) throw new AutocryptError(`the ${kind} addr is not a plain mail address`)
  // "The keydata attribute is mandatory ... a Base64 representation of the binary OpenPGP
  // Transferable Public Key." Folding whitespace inside it is not part of the data.
  const encoded = seen.get('keydata')?.replace(/[ \t]+/g, '')
  if (encoded === undefined || encoded === '') throw new AutocryptError(`the ${kind} header has no keydata`)
  if (!BASE64.test(encoded)) throw new AutocryptError(`the ${kind} keydata is not valid base64`)
  const keydata = Buffer.from(encoded, 'base64')
  // RFC 4880 4.2: bit 7 of a packet's first octet is always one. Anything else is not a key.
  if (keydata.length < 2 || (keydata[0]! & 0x80) === 0) throw new AutocryptError(`the ${kind} keydata is not an OpenPGP packet`)
  // "The prefer-encrypt attribute is optional and can only occur with the value mutual ... any
  // other value (or ... not ... at all) should [be interpreted] as nopreference."
  const preferEncrypt: PreferEncrypt = seen.get('prefer-encrypt') === 'mutual' ? 'mutual' : 'nopreference'
  return { addr, preferEncrypt, keydata }
}

/**
 * The value of an `Autocrypt:` header for outgoing mail ("Header injection in outbound mail"):
 * addr, prefer-encrypt only when mutual, keydata last and folded onto continuation lines, so
 * that `Autocrypt: ${value}` is ready to prepend. Throws AutocryptError if the header would be
 * invalid or larger than 10 KiB (the spec's MUST NOT).
 */
export function formatAutocryptHeader (header: AutocryptHeader): string {
  const attributes = [`addr=${header.addr}`]
  if (header.preferEncrypt === 'mutual') attributes.push('prefer-encrypt=mutual')
  return formatAttributes('Autocrypt', header.addr, attributes, header.keydata)
}

/**
 * The value of an `Autocrypt-Gossip:` header ("Key Gossip Injection in Outbound Messages":
 * addr and keydata, no prefer-encrypt). It belongs in the root MIME part of the encrypted
 * payload only, never in the clear.
 */
export function formatAutocryptGossipHeader (header: AutocryptGossipHeader): string {
  return formatAttributes('Autocrypt-Gossip', header.addr, [`addr=${header.addr}`], header.keydata)
}

function formatAttributes (kind: HeaderKind, addr: string, attributes: string[], keydata: Uint8Array): string {
  if (!ADDR.test(addr)) throw new AutocryptError(`the ${kind} addr is not a plain mail address`)
  if (keydata.length === 0) throw new AutocryptError(`the ${kind} header needs keydata`)
  attributes.push('keydata=')
  let head = attributes.join('; ')
  // Keep the first line within 78 characters when an address is long: one attribute a line.
  if (`${kind}: ${head}`.length > MAX_LINE_CHARS) head = attributes.join(';\r\n ')
  const base64 = Buffer.from(keydata).toString('base64')
  const lines: string[] = []
  for (let i = 0; i < base64.length; i += KEYDATA_LINE_CHARS) lines.push(` ${base64.slice(i, i + KEYDATA_LINE_CHARS)}`)
  const value = `${head}\r\n${lines.join('\r\n')}`
  if (Buffer.byteLength(`${kind}: ${value}`, 'utf8') > MAX_HEADER_BYTES) throw new AutocryptError(`the ${kind} header would be larger than 10 KiB`)
  return value
}

/**
 * An address canonicalized as "E-mail Address Canonicalization" says: the local part in lower
 * case (JavaScript's toLowerCase is locale-independent, the "empty" locale), the domain as
 * IDNA ASCII (punycode) in lower case.
 */
export function canonicalAddress (address: string): string {
  const text = address.trim()
  const at = text.lastIndexOf('@')
  if (at < 0) return text.toLowerCase()
  const domain = text.slice(at + 1)
  const ascii = domainToASCII(domain)
  return `${text.slice(0, at).toLowerCase()}@${ascii === '' ? domain.toLowerCase() : ascii}`
}

/**
 * The one Autocrypt header of a message to use, given the values of all its `Autocrypt`
 * headers and the (bare) address of its single From. "Updating Autocrypt Peer State": an MUA
 * "SHOULD examine all Autocrypt headers ... If there is more than one valid header, this
 * SHOULD be treated as an error, and all Autocrypt headers discarded as invalid." A header
 * whose addr differs from From is invalid ("The Autocrypt Header"), as is one that does not
 * parse. Undefined when no single valid header remains.
 */
export function autocryptHeaderFor (values: readonly string[], fromAddress: string): AutocryptHeader | undefined {
  const from = canonicalAddress(fromAddress)
  const valid: AutocryptHeader[] = []
  for (const value of values) {
    let header: AutocryptHeader
    try {
      header = parseAutocryptHeader(value)
    } catch (error) {
      if (error instanceof AutocryptError) continue // invalid: ignored, as the spec says
      throw error
    }
    if (canonicalAddress(header.addr) === from) valid.push(header)
  }
  return valid.length === 1 ? valid[0] : undefined
}

/**
 * The gossip headers of a decrypted message worth applying, given the values of the
 * `Autocrypt-Gossip` headers of its encrypted payload's root part and the addresses of its To,
 * Cc and Reply-To. "Updating Autocrypt Peer State from Key Gossip", step 1: a header whose addr
 * is none of those is ignored. The spec says nothing of two gossip headers for one address;
 * like two Autocrypt headers, both are dropped. Gossip found outside an encrypted part must not
 * be passed here ("Key Gossip": it SHOULD NOT be sent in the clear, so it is not trusted there).
 */
export function gossipHeadersFor (values: readonly string[], recipients: readonly string[]): AutocryptGossipHeader[] {
  const wanted = new Set(recipients.map(canonicalAddress))
  const byAddress = new Map<string, AutocryptGossipHeader[]>()
  for (const value of values) {
    let header: AutocryptGossipHeader
    try {
      header = parseAutocryptGossipHeader(value)
    } catch (error) {
      if (error instanceof AutocryptError) continue
      throw error
    }
    const addr = canonicalAddress(header.addr)
    if (!wanted.has(addr)) continue
    byAddress.set(addr, [...(byAddress.get(addr) ?? []), header])
  }
  return [...byAddress.values()].filter(headers => headers.length === 1).map(headers => headers[0]!)
}

/** What "Updating Autocrypt Peer State" looks at to decide whether to ignore a message. */
export interface AutocryptableInput {
  /** The Auto-Submitted header value, if any (RFC 3834). */
  autoSubmitted?: string
  /** The top-level Content-Type header value, if any. */
  contentType?: string
  /** How many addresses the From header holds. */
  fromAddressCount: number
  /** Whether the message is believed to be spam. */
  isSpam?: boolean
}

/**
 * Whether a message may update its sender's peer state. "Updating Autocrypt Peer State":
 * messages SHOULD be ignored when marked `Auto-Submitted: auto-replied` (RFC 3834), when the
 * content type is multipart/report (MDNs and DSNs, which may lack that header), when From holds
 * more than one address, or when the message is believed to be spam. A From without any
 * address has no sender to update, so it is ignored too.
 */
export function isAutocryptable (input: AutocryptableInput): boolean {
  if (input.fromAddressCount !== 1 || input.isSpam === true) return false
  const firstToken = (value: string | undefined): string => (value ?? '').split(';')[0]!.trim().toLowerCase()
  if (firstToken(input.autoSubmitted) === 'auto-replied') return false
  if (firstToken(input.contentType) === 'multipart/report') return false
  return true
}

/**
 * "Updating Autocrypt Peer State", effective date: "the sending time of the message as
 * indicated by its Date header, or the time of receipt if that date is in the future or
 * unavailable." Both in ms since the epoch.
 */
export function effectiveDate (date: number | undefined, receivedAt: number): number {
  if (date === undefined || !Number.isFinite(date) || date > receivedAt) return receivedAt
  return date
}

/**
 * What an MUA keeps per peer ("Communication Peers"), times in ms since the epoch. Every field
 * is optional: a peer known only from gossip has no last_seen, a peer that never sent an
 * Autocrypt header has no key. A missing field is the spec's null.
 */
export interface PeerState {
  /** Most recent effective date of all messages processed from this peer. */
  lastSeen?: number
  /** Most recent effective date of the messages from this peer with a valid Autocrypt header. */
  autocryptTimestamp?: number
  /** keydata of the youngest Autocrypt header seen from the peer. */
  publicKey?: Buffer
  /** prefer-encrypt of the youngest Autocrypt header seen from the peer. */
  preferEncrypt?: PreferEncrypt
  /** Most recent effective date of the messages with a valid Autocrypt-Gossip header about the peer. */
  gossipTimestamp?: number
  /** keydata of that gossip header. */
  gossipKey?: Buffer
}

export interface ReceivedMessage {
  /** The Date header in ms since the epoch, if the message has one that parses. */
  date?: number
  /** The single valid Autocrypt header (autocryptHeaderFor), if any. */
  header?: AutocryptHeader
  /** isAutocryptable of the message. */
  isAutocryptable: boolean
}

/**
 * The sender's peer state after a message from them ("Updating Autocrypt Peer State"). `now`
 * is the time of receipt. Returns the state unchanged (the same object) when the message is
 * ignored; never mutates its input.
 */
export function updateFromMessage (state: PeerState | undefined, message: ReceivedMessage, now: number): PeerState | undefined {
  if (!message.isAutocryptable) return state
  const date = effectiveDate(message.date, now)
  // 1. "If the message's effective date is older than the peers[from-addr].autocrypt_timestamp
  // value, then no changes are required, and the update process terminates."
  if (state?.autocryptTimestamp !== undefined && date < state.autocryptTimestamp) return state
  // 2. "If the message's effective date is more recent than peers[from-addr].last_seen then
  // set peers[from-addr].last_seen to the message's effective date."
  const next: PeerState = { ...state }
  if (next.lastSeen === undefined || date > next.lastSeen) next.lastSeen = date
  // 3. "If the Autocrypt header is unavailable, no further changes are required."
  if (message.header === undefined) return next
  // 4.-6. autocrypt_timestamp, public_key and prefer_encrypt from the header.
  next.autocryptTimestamp = date
  next.publicKey = message.header.keydata
  next.preferEncrypt = message.header.preferEncrypt
  return next
}

export interface ReceivedGossip {
  /** The Date header of the message that carried the gossip, in ms since the epoch. */
  date?: number
  /** keydata of the gossip header (gossipHeadersFor). */
  keydata: Buffer
}

/**
 * The gossiped peer's state after a gossip header about them ("Updating Autocrypt Peer State
 * from Key Gossip", steps 2-4; step 1 is gossipHeadersFor). `now` is the time of receipt.
 */
export function updateFromGossip (state: PeerState | undefined, gossip: ReceivedGossip, now: number): PeerState {
  const date = effectiveDate(gossip.date, now)
  // 2. "If peers[gossip-addr].gossip_timestamp is more recent than the message's effective
  // date, then the update process terminates."
  if (state?.gossipTimestamp !== undefined && state.gossipTimestamp > date) return state
  // 3.-4.
  return { ...state, gossipTimestamp: date, gossipKey: gossip.keydata }
}

/** "Recommendation structure": ui-recommendation. */
export type UiRecommendation = 'disable' | 'discourage' | 'available' | 'encrypt'

/** One recipient's recommendation: the UI state and the key to encrypt to (target-keys). */
export interface Recommendation {
  ui: UiRecommendation
  targetKey?: Buffer
}

export interface RecommendationInput {
  /** accounts[from-addr].prefer_encrypt: the user's own setting for the sending account. */
  ownPreferEncrypt: PreferEncrypt
  /** Whether the message is composed as a reply to an encrypted message. */
  replyToEncrypted: boolean
  /**
   * Whether a key is usable for encryption: false for a revoked or expired key, which is then
   * treated as absent ("Determine if encryption is possible"). Every key counts as usable
   * when left out.
   */
  isKeyUsable?: (key: Buffer) => boolean
}

// "Preliminary Recommendation": "If autocrypt_timestamp is more than 35 days older than
// last_seen, set preliminary-recommendation to discourage."
export const STALE_AFTER_MS = 35 * 24 * 60 * 60 * 1000

/** "Recommendations for single-recipient messages", for the recipient whose state is given. */
export function recommend (state: PeerState | undefined, input: RecommendationInput): Recommendation {
  // "Determine if encryption is possible": no peers[to-addr], or neither key usable: disable.
  if (state === undefined) return { ui: 'disable' }
  const usable = (key: Buffer | undefined): Buffer | undefined => key !== undefined && (input.isKeyUsable?.(key) ?? true) ? key : undefined
  const publicKey = usable(state.publicKey)
  const gossipKey = usable(state.gossipKey)
  let preliminary: 'discourage' | 'available'
  let targetKey: Buffer
  if (publicKey === undefined) {
    if (gossipKey === undefined) return { ui: 'disable' }
    // "Preliminary Recommendation": "If public_key is null, then set target-keys[to-addr] to
    // gossip_key and set preliminary-recommendation to discourage".
    preliminary = 'discourage'
    targetKey = gossipKey
  } else {
    targetKey = publicKey
    const stale = state.autocryptTimestamp !== undefined && state.lastSeen !== undefined &&
      state.lastSeen - state.autocryptTimestamp > STALE_AFTER_MS
    preliminary = stale ? 'discourage' : 'available'
  }
  // "Deciding to Encrypt by Default": encrypt when the preliminary recommendation is available
  // or discourage and the message is a reply to an encrypted message, or when it is available
  // and both peers[to-addr].prefer_encrypt and accounts[from-addr].prefer_encrypt are mutual.
  if (input.replyToEncrypted) return { ui: 'encrypt', targetKey }
  if (preliminary === 'available' && state.preferEncrypt === 'mutual' && input.ownPreferEncrypt === 'mutual') return { ui: 'encrypt', targetKey }
  return { ui: preliminary, targetKey }
}

/**
 * "Recommendations for messages to multiple addresses", the first matching rule winning:
 * any disable gives disable; all encrypt gives encrypt; any discourage gives discourage;
 * otherwise available. With no recipient at all there is nobody to encrypt to: disable (the
 * spec's rule 2 would say encrypt, vacuously).
 */
export function recommendForRecipients (recommendations: readonly UiRecommendation[]): UiRecommendation {
  if (recommendations.length === 0 || recommendations.includes('disable')) return 'disable'
  if (recommendations.every(ui => ui === 'encrypt')) return 'encrypt'
  if (recommendations.includes('discourage')) return 'discourage'
  return 'available'
}
