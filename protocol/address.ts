// Mail addresses as smtorp accepts them on the wire (RFC 5321 4.1.2 "Mailbox"), deliberately
// narrower than the RFC: no source routes (RFC 5321 4.1.1.3 says to ignore them; we refuse
// them), no address literals, no quoted local parts, no "%" or "!" routing hacks. Everything
// that could make a node forward mail somewhere other than the named domain is refused.
import { isOnionAddress } from './onion.ts'

export type RouteKind = 'onion' | 'legacy'

export interface MailAddress {
  /** Local part as given, lowercased (smtorp local parts are case-insensitive). */
  local: string
  /** Domain, lowercased, without a trailing dot. */
  domain: string
  /** `onion` for v3 onion domains (SMTorP), `legacy` for ordinary DNS domains (relay). */
  route: RouteKind
}

export class AddressError extends Error {
  override name = 'AddressError'
}

// RFC 5321 4.5.3.1.1 and 4.5.3.1.2: 64 octets of local part, 255 of domain.
const MAX_LOCAL = 64
const MAX_DOMAIN = 255
// Dot-atom of RFC 5322 3.2.3 without "%" and "!" (routing hacks) and without "/"-style oddities.
const LOCAL_PART = /^[a-z0-9](?:[a-z0-9._+=-]*[a-z0-9_+=-])?$/
const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
// Names that would route to this host or a private one however the DNS answers.
const LOCAL_DOMAINS = new Set(['localhost', 'localdomain', 'local', 'internal', 'invalid', 'test', 'example', 'home.arpa'])

export function parseAddress (input: string): MailAddress {
  // Before any case folding: toLowerCase() maps some non-ASCII letters to ASCII ones (KELVIN
  // SIGN U+212A becomes "k"), which would let a non-ASCII address pass as an ASCII one.
  if (/[^\x20-\x7e]/.test(input)) throw new AddressError('only printable ASCII is accepted in addresses')
  const text = input.trim()
  if (text.startsWith('@') || text.includes(':')) throw new AddressError('source routes are not accepted')
  const at = text.lastIndexOf('@')
  if (at <= 0 || at === text.length - 1) throw new AddressError('an address needs a local part and a domain')
  const local = text.slice(0, at).toLowerCase()
  const domain = text.slice(at + 1).toLowerCase().replace(/\.$/, '')
  if (local.includes('@')) throw new AddressError('an address has exactly one "@"')
  if (local.includes('%') || local.includes('!')) throw new AddressError('"%" and "!" routing is not accepted')
  if (local.startsWith('"')) throw new AddressError('quoted local parts are not accepted')
  if (local.length > MAX_LOCAL || !LOCAL_PART.test(local) || local.includes('..')) throw new AddressError('the local part is not a plain dot-atom')
  if (domain.startsWith('[')) throw new AddressError('address literals are not accepted')
  if (domain.length > MAX_DOMAIN) throw new AddressError('the domain is too long')
  const labels = domain.split('.')
  if (labels.length < 2 || !labels.every(label => DNS_LABEL.test(label))) throw new AddressError('the domain is not a valid host name')
  if (labels.every(label => /^[0-9]+$/.test(label)) || /^[0-9]+$/.test(labels[labels.length - 1]!)) throw new AddressError('IP addresses are not accepted as domains')
  const tld = labels[labels.length - 1]!
  if (LOCAL_DOMAINS.has(tld) || LOCAL_DOMAINS.has(labels.slice(-2).join('.'))) throw new AddressError('local and reserved domains are not accepted')
  if (tld === 'onion') {
    if (labels.length !== 2 || !isOnionAddress(labels[0]!)) throw new AddressError('the onion domain is not a valid v3 onion address')
    return { local, domain, route: 'onion' }
  }
  return { local, domain, route: 'legacy' }
}
