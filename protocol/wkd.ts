// Where to look up an OpenPGP key for a mail address: the OpenPGP Web Key Directory
// (draft-koch-openpgp-webkey-service-19, section 3.1 "Key Discovery") and an HKP keyserver
// (draft-shaw-openpgp-hkp, now draft-ietf-openpgp-hkp: "/pks/lookup" with op=get). Only the
// URLs are made here; fetching them, and checking that a key found carries a User ID with the
// address, is the caller's work.
import { createHash } from 'node:crypto'
import { domainToASCII } from 'node:url'
import { encodeFiveBits } from './base32.ts'

export class KeyLookupError extends Error {
  override name = 'KeyLookupError'
}

// RFC 6189 5.1.6, the z-base-32 alphabet the draft names.
const ZBASE32 = 'ybndrfg8ejkmcpqxot1uwisza345h769'
const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/

function zbase32 (bytes: Uint8Array): string {
  return encodeFiveBits(bytes, ZBASE32)
}

/**
 * The 32-character name a Web Key Directory files a local part under. Draft section 3.1: "all
 * upper-case ASCII characters in a User ID are mapped to lowercase. Non-ASCII characters are not
 * changed." The result is SHA-1 hashed (over UTF-8) and z-base-32 encoded. toLowerCase() is not
 * used: it would also fold non-ASCII letters (and KELVIN SIGN into "k").
 */
export function wkdHash (localPart: string): string {
  const mapped = localPart.replace(/[A-Z]/g, c => c.toLowerCase())
  return zbase32(createHash('sha1').update(mapped, 'utf8').digest())
}

export interface WkdUrls {
  /** Section 3.1 advanced method, on the openpgpkey sub-domain. Try this first. */
  advanced: string
  /** Section 3.1 direct method, only when the openpgpkey sub-domain does not exist. */
  direct: string
}

interface SplitAddress {
  local: string
  /** IDNA ASCII, lower case. */
  domain: string
}

/** A bare address split for key lookup; throws KeyLookupError on anything that is not one. */
function splitAddress (address: string): SplitAddress {
  if (/[\x00-\x20\x7f]/.test(address)) throw new KeyLookupError('the address contains spaces or control characters')
  const at = address.lastIndexOf('@')
  if (at <= 0 || at === address.length - 1) throw new KeyLookupError('an address needs a local part and a domain')
  const local = address.slice(0, at)
  const given = address.slice(at + 1).replace(/\.$/, '')
  // Host names only: an address literal, a port, a path or a query would make the URL point
  // somewhere other than the address's domain.
  if (/[[\]/?#:\\@%]/.test(given)) throw new KeyLookupError('the domain is not a host name')
  const domain = domainToASCII(given)
  const labels = domain.split('.')
  if (domain === '' || labels.length < 2 || !labels.every(label => DNS_LABEL.test(label))) throw new KeyLookupError('the domain is not a host name')
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) throw new KeyLookupError('IP addresses are not host names')
  return { local, domain }
}

/**
 * The two Web Key Directory URLs for an address (draft section 3.1). The host and the domain
 * in the path are the domain in lower case (IDNA ASCII for an internationalized one); "l" is the
 * local part unchanged, percent-escaped. The draft has clients try the advanced method first and
 * fall back to the direct one only when the openpgpkey sub-domain does not exist (a server that
 * does not answer is no reason to fall back).
 */
export function wkdUrls (address: string): WkdUrls {
  const { local, domain } = splitAddress(address)
  const tail = `hu/${wkdHash(local)}?l=${encodeURIComponent(local)}`
  return {
    advanced: `https://openpgpkey.${domain}/.well-known/openpgpkey/${domain}/${tail}`,
    direct: `https://${domain}/.well-known/openpgpkey/${tail}`
  }
}

/**
 * The HKP URL that asks a keyserver for the keys of an address: `<base>/pks/lookup` with
 * op=get (return the keys), options=mr (machine-readable output) and search=<address>,
 * percent-escaped. `keyserverBase` is an http(s) URL (the draft's hkp:// and hkps:// schemes are
 * not taken: say http://host:11371 or https://host), optionally with a path prefix, without
 * query, fragment or credentials.
 */
export function hkpLookupUrl (keyserverBase: string, address: string): string {
  let base: URL
  try {
    base = new URL(keyserverBase)
  } catch {
    throw new KeyLookupError('the keyserver is not a URL')
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new KeyLookupError('the keyserver URL must be http or https (for hkps:// say https://, for hkp:// say http://host:11371)')
  if (base.search !== '' || keyserverBase.includes('?')) throw new KeyLookupError('the keyserver URL must not have a query')
  if (base.hash !== '' || keyserverBase.includes('#')) throw new KeyLookupError('the keyserver URL must not have a fragment')
  if (base.username !== '' || base.password !== '') throw new KeyLookupError('the keyserver URL must not carry credentials')
  splitAddress(address)
  const path = base.pathname.replace(/\/+$/, '')
  return `${base.origin}${path}/pks/lookup?op=get&options=mr&search=${encodeURIComponent(address)}`
}
