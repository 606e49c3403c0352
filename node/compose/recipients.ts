// The address fields a person types (To, Cc, Bcc) read into mailboxes. RFC 5322 3.4 syntax,
// the parts people write: a list separated by commas (semicolons too, as Outlook users type
// them), each `addr`, `Name <addr>` or `"Last, First" <addr>`, with (comments) ignored. Every
// address must pass protocol/address.ts parseAddress, the node's own rule for where mail may go.
import { AddressError, parseAddress } from '../../protocol/address.ts'

export class ComposeError extends Error {
  override name = 'ComposeError'
}

export interface Recipient {
  /** Display name as written, unquoted; empty when there is none. */
  name: string
  /** The bare address, lowercased. */
  address: string
}

/** At most this many characters of an address field are read (a typed field, not a file). */
const MAX_FIELD_CHARS = 64 * 1024

/** Split on commas and semicolons outside "quotes", <angle brackets> and (comments). */
function splitList (field: string): string[] {
  const parts: string[] = []
  let current = ''
  let quoted = false
  let angle = false
  let comment = 0
  for (let i = 0; i < field.length; i++) {
    const c = field[i]!
    if (quoted) {
      current += c
      if (c === '\\' && i + 1 < field.length) current += field[++i]
      else if (c === '"') quoted = false
    } else if (comment > 0) {
      if (c === '\\' && i + 1 < field.length) i++
      else if (c === '(') comment++
      else if (c === ')') comment--
    } else if (c === '"') { quoted = true; current += c } else if (c === '(') comment = 1
    else if (c === '<') { angle = true; current += c } else if (c === '>') { angle = false; current += c } else if ((c === ',' || c === ';') && !angle) {
      parts.push(current)
      current = ''
    } else current += c
  }
  parts.push(current)
  return parts.map(p => p.trim()).filter(p => p.length > 0)
}

function unquote (name: string): string {
  const s = name.trim()
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) return s.slice(1, -1).replace(/\\(.)/g, '$1').trim()
  return s.replace(/\s+/g, ' ')
}

function recipient (part: string): Recipient {
  const open = part.lastIndexOf('<')
  let name = ''
  let address = part
  if (open >= 0) {
    const close = part.indexOf('>', open)
    if (close < 0) throw new ComposeError(`"${part}" is not an address: the "<" is never closed.`)
    name = unquote(part.slice(0, open))
    address = part.slice(open + 1, close).trim()
  }
  try {
    const parsed = parseAddress(address)
    return { name: name.replace(/[\x00-\x1f\x7f]/g, ''), address: `${parsed.local}@${parsed.domain}` }
  } catch (err) {
    if (!(err instanceof AddressError)) throw err
    throw new ComposeError(`"${address}" is not an address mail can be sent to: ${err.message}.`)
  }
}

/**
 * The address of each entry of a field as written, not checked: what the field will be read
 * as when sent (the same splitting as parseRecipients), for showing routes while typing.
 */
export function addressesAsTyped (field: string): string[] {
  return splitList(field.slice(0, MAX_FIELD_CHARS)).map(part => {
    const open = part.lastIndexOf('<')
    if (open < 0) return part
    const close = part.indexOf('>', open)
    return part.slice(open + 1, close < 0 ? undefined : close).trim()
  })
}

/** The mailboxes of an address field, in order, duplicates (same address) dropped. */
export function parseRecipients (field: string): Recipient[] {
  if (field.length > MAX_FIELD_CHARS) throw new ComposeError('An address field is too long.')
  const seen = new Set<string>()
  const out: Recipient[] = []
  for (const part of splitList(field)) {
    const r = recipient(part)
    if (seen.has(r.address)) continue
    seen.add(r.address)
    out.push(r)
  }
  return out
}

/** The bare, lowercased addresses of an address field; ComposeError names the first bad one. */
export function recipientsOf (field: string): string[] {
  return parseRecipients(field).map(r => r.address)
}

/** A mailbox as it is written in an address field, quoting the name (RFC 5322 3.2.4). */
export function formatRecipient (r: { name: string, address: string }): string {
  const name = r.name.replace(/[\x00-\x1f\x7f]/g, '').trim()
  return name.length > 0 ? `"${name.replace(/["\\]/g, '\\$&')}" <${r.address}>` : r.address
}
