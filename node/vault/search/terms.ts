// Which terms a message is indexed under, and which terms a query asks for. Pure: no keys,
// no disk. search-index.ts turns each term string into its opaque name (HMAC) before it
// goes anywhere near the disk.
//
// A word is a run of letters and digits (`/[\p{L}\p{N}]+/u`) after Unicode NFKC
// normalisation (UAX #15) and lowercasing, 1 to 64 UTF-16 code units long; longer runs
// (base64 junk, hashes) are not indexed. A tiny list of English stopwords is dropped both
// when indexing and from queries. Every word is indexed under the any-field term `*:word`;
// the words of From, To and Subject are also indexed under `from:word`, `to:word` and
// `subject:word`, so a qualified query only matches that header. Body words have no
// qualified term: an unqualified word already matches the body.
//
// Addresses: "alice@example.org" is not one word under that split, so it gives the words
// "alice", "example" and "org" like any other text, and the whole address is also indexed
// as one term (`*:alice@example.org`, plus `from:` / `to:` when it is in those headers), so
// the query `from:alice@example.org` matches that sender exactly and not "alice@example.net".
// Addresses in the subject and body get the whole-address `*:` term as well.

export type SearchField = 'from' | 'to' | 'subject'

/** The text of one message, as the search index sees it. */
export interface SearchText {
  /** The From header: display names and addresses, e.g. `Alice <alice@example.org>`. */
  from: string
  /** The To, Cc and Bcc headers together. */
  to: string
  subject: string
  /** The text body (or the HTML body turned into text), capped. */
  body: string
}

export const MAX_WORD_LENGTH = 64
/** RFC 5321 4.5.3.1.3: a path is at most 256 octets, so an address is at most 254. */
const MAX_ADDRESS_LENGTH = 254

/** Dropped when indexing and from queries; kept tiny so few real searches lose a word. */
export const STOPWORDS: ReadonlySet<string> = new Set([
  'a', 'an', 'and', 'are', 'as', 'at', 'be', 'by', 'for', 'in', 'is', 'it', 'of', 'on', 'or', 'the', 'to', 'was', 'with'
])

const WORD = /[\p{L}\p{N}]+/gu
// Local part and domain without the characters that delimit addresses in headers and text.
const ADDRESS = /[^\s<>()[\]",;:@]+@[^\s<>()[\]",;:@]+/gu
const WHOLE_ADDRESS = /^[^\s<>()[\]",;:@]+@[^\s<>()[\]",;:@]+$/u

export function normalizeText (text: string): string {
  return text.normalize('NFKC').toLowerCase()
}

/** The indexable words of normalised text, stopwords and over-long runs left out. */
export function wordsOf (normalized: string): string[] {
  const out: string[] = []
  for (const m of normalized.matchAll(WORD)) {
    const w = m[0]
    if (w.length <= MAX_WORD_LENGTH && !STOPWORDS.has(w)) out.push(w)
  }
  return out
}

/** Trailing dots end sentences, not addresses ("write to bob@example.org."). */
function cleanAddress (candidate: string): string | undefined {
  const address = candidate.replace(/\.+$/, '')
  if (address.length > MAX_ADDRESS_LENGTH || address.startsWith('@') || address.endsWith('@')) return undefined
  return address
}

function addressesOf (normalized: string): string[] {
  if (!normalized.includes('@')) return []
  const out: string[] = []
  for (const m of normalized.matchAll(ADDRESS)) {
    const address = cleanAddress(m[0])
    if (address !== undefined) out.push(address)
  }
  return out
}

export const anyTerm = (word: string): string => `*:${word}`
export const fieldTerm = (field: SearchField, word: string): string => `${field}:${word}`

/** Every term string `text` is indexed under, each once. */
export function documentTerms (text: SearchText): Set<string> {
  const terms = new Set<string>()
  const fields: Array<[SearchField | undefined, string]> = [['from', text.from], ['to', text.to], ['subject', text.subject], [undefined, text.body]]
  for (const [field, raw] of fields) {
    if (raw.length === 0) continue
    const normalized = normalizeText(raw)
    for (const w of wordsOf(normalized)) {
      terms.add(anyTerm(w))
      if (field !== undefined) terms.add(fieldTerm(field, w))
    }
    for (const address of addressesOf(normalized)) {
      terms.add(anyTerm(address))
      if (field === 'from' || field === 'to') terms.add(fieldTerm(field, address))
    }
  }
  return terms
}

const QUALIFIERS: ReadonlyMap<string, SearchField> = new Map([['from', 'from'], ['to', 'to'], ['cc', 'to'], ['subject', 'subject']])

/**
 * The term strings a query asks for, all of which a result must have (AND). Whitespace
 * separates parts; `from:`, `to:` (also `cc:`) and `subject:` qualify the part they prefix.
 * A part that is an address is one whole-address term; any other part gives its words, so
 * `from:example.org` asks for from:example AND from:org. Quotes are ignored: there are no
 * phrase queries (positions are not indexed). Stopwords drop out; an empty result means
 * the query asks for nothing, and search returns no documents.
 */
export function queryTerms (query: string): string[] {
  const terms = new Set<string>()
  for (const part of normalizeText(query).split(/\s+/u)) {
    if (part.length === 0) continue
    const colon = part.indexOf(':')
    const field = colon > 0 ? QUALIFIERS.get(part.slice(0, colon)) : undefined
    const value = (field === undefined ? part : part.slice(colon + 1)).replace(/^["'<(]+|[">)',;]+$/gu, '')
    const address = WHOLE_ADDRESS.test(value) ? cleanAddress(value) : undefined
    if (address !== undefined) {
      terms.add(field === undefined ? anyTerm(address) : fieldTerm(field, address))
      continue
    }
    for (const w of wordsOf(value)) terms.add(field === undefined ? anyTerm(w) : fieldTerm(field, w))
  }
  return [...terms]
}
