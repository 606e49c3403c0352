// Mail addresses: what the node accepts on the wire and what it refuses (source routes, routing
// hacks, literals, local names, bad onions, control bytes, non-ASCII).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { AddressError, parseAddress, type MailAddress } from './address.ts'
import { onionKeyFromSeed } from './onion.ts'

// Seed 0x00..0x1f, and the Tor Project's published onion.
const ONION = onionKeyFromSeed(Buffer.from(Array.from({ length: 32 }, (_, i) => i))).address
const TOR = '2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid'
assert.equal(ONION, 'aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4bqead')

describe('accepted addresses', () => {
  const table: Array<[string, MailAddress]> = [
    [`alice@${ONION}.onion`, { local: 'alice', domain: `${ONION}.onion`, route: 'onion' }],
    [`bob@${TOR}.onion`, { local: 'bob', domain: `${TOR}.onion`, route: 'onion' }],
    [`Alice@${ONION.toUpperCase()}.ONION`, { local: 'alice', domain: `${ONION}.onion`, route: 'onion' }],
    [`alice@${ONION}.onion.`, { local: 'alice', domain: `${ONION}.onion`, route: 'onion' }],
    [` alice@${ONION}.onion `, { local: 'alice', domain: `${ONION}.onion`, route: 'onion' }],
    [`postmaster@${ONION}.onion`, { local: 'postmaster', domain: `${ONION}.onion`, route: 'onion' }],
    ['john.doe+tag@Example.COM', { local: 'john.doe+tag', domain: 'example.com', route: 'legacy' }],
    ['x_y=z-w@a-b.co.uk', { local: 'x_y=z-w', domain: 'a-b.co.uk', route: 'legacy' }],
    ['u@mail.example.org.', { local: 'u', domain: 'mail.example.org', route: 'legacy' }],
    ['u@1and1.com', { local: 'u', domain: '1and1.com', route: 'legacy' }],
    ['u@192.168.1.com', { local: 'u', domain: '192.168.1.com', route: 'legacy' }],
    ['u@xn--bcher-kva.example.net', { local: 'u', domain: 'xn--bcher-kva.example.net', route: 'legacy' }],
    [`${'a'.repeat(64)}@example.com`, { local: 'a'.repeat(64), domain: 'example.com', route: 'legacy' }],
    [`u@${'a'.repeat(63)}.com`, { local: 'u', domain: `${'a'.repeat(63)}.com`, route: 'legacy' }],
    [`u@${Array(63).fill('abc').join('.')}.com`, { local: 'u', domain: `${Array(63).fill('abc').join('.')}.com`, route: 'legacy' }] // 255 octets
  ]
  for (const [input, expected] of table) {
    it(JSON.stringify(input.length > 70 ? `${input.slice(0, 67)}...` : input), () => {
      assert.deepEqual(parseAddress(input), expected)
      assert.deepEqual(parseAddress(`${expected.local}@${expected.domain}`), expected, 'parsing is idempotent')
    })
  }
})

describe('refused addresses', () => {
  const onion = `${ONION}.onion`
  const flipped = `${ONION.slice(0, 5)}${ONION[5] === 'a' ? 'b' : 'a'}${ONION.slice(6)}.onion`
  const table: Array<[string, string, RegExp]> = [
    // RFC 5321 4.1.1.3 / C: source routes
    ['source route', `@a.com:u@${onion}`, /source route/],
    ['source route with two hops', `@a.com,@b.com:u@${onion}`, /source route/],
    ['colon in the local part', `a:b@${onion}`, /source route/],
    // RFC 1123 5.2.16 percent hack, UUCP bang paths
    ['percent hack', `u%v@${onion}`, /routing/],
    ['percent hack to a legacy host', `u%example.com@${onion}`, /routing/],
    ['bang path', `a!b@${onion}`, /routing/],
    ['quoted local part', `"q"@${onion}`, /quoted/],
    ['quoted local part with "@"', `"a@b"@${onion}`, /exactly one|quoted/],
    ['two "@"', `a@b@${onion}`, /exactly one/],
    // RFC 5321 4.1.3 address literals
    ['IPv4 literal', 'u@[127.0.0.1]', /literal/],
    ['IPv6 literal', 'u@[IPv6:::1]', /source route|literal/],
    ['IPv4 as a domain', 'u@127.0.0.1', /IP address/],
    ['IPv4 as a domain with a trailing dot', 'u@10.0.0.1.', /IP address/],
    ['numeric top-level label', 'u@example.123', /IP address/],
    ['hex IPv4 trick', 'u@0x7f.1', /IP address/],
    // names that resolve to this host or a private network
    ['localhost', 'u@localhost', /host name/],
    ['localhost with a dot', 'u@localhost.', /host name/],
    ['a name under localhost', 'u@evil.localhost', /reserved/],
    ['.local (mDNS)', 'u@x.local', /reserved/],
    ['.internal', 'u@x.internal', /reserved/],
    ['.test', 'u@x.test', /reserved/],
    ['.example', 'u@x.example', /reserved/],
    ['.invalid', 'u@x.invalid', /reserved/],
    ['.localdomain', 'u@x.localdomain', /reserved/],
    ['home.arpa', 'u@router.home.arpa', /reserved/],
    ['one label', 'u@com', /host name/],
    // onions
    ['not base32', 'u@bad-onion.onion', /onion/],
    ['a v2 onion', 'u@expyuzz4wqqyqhjn.onion', /onion/],
    ['checksum broken', `u@${flipped}`, /onion/],
    ['55 characters', `u@${ONION.slice(1)}.onion`, /onion/],
    ['subdomain of an onion', `u@www.${onion}`, /onion/],
    ['bare .onion', 'u@onion', /host name/],
    ['empty onion label', 'u@.onion', /host name/],
    ['two trailing dots', `u@${onion}..`, /host name/],
    // lengths and empty parts
    ['65-octet local part', `${'a'.repeat(65)}@${onion}`, /dot-atom/],
    ['64-octet label', `u@${'a'.repeat(64)}.com`, /host name/],
    ['256-octet domain', `u@${Array(63).fill('abc').join('.')}.comm`, /too long/],
    ['empty', '', /local part and a domain/],
    ['only "@"', '@', /source route/],
    ['no domain', 'u@', /local part and a domain/],
    ['no local part', `@${onion}`, /source route/],
    ['no "@"', 'alice', /local part and a domain/],
    ['empty label', 'u@a..com', /host name/],
    ['leading dot in the domain', 'u@.example.com', /host name/],
    ['leading hyphen in a label', 'u@-a.com', /host name/],
    ['trailing hyphen in a label', 'u@a-.com', /host name/],
    ['underscore in the domain', 'u@a_b.com', /host name/],
    ['leading dot in the local part', `.u@${onion}`, /dot-atom/],
    ['trailing dot in the local part', `u.@${onion}`, /dot-atom/],
    ['two dots in the local part', `a..b@${onion}`, /dot-atom/],
    ['space in the local part', `a b@${onion}`, /dot-atom/],
    ['angle brackets', `<u@${onion}>`, /dot-atom|host name/],
    ['comment', `u(comment)@${onion}`, /dot-atom/],
    ['slash', `a/b@${onion}`, /dot-atom/],
    // control bytes (command injection into a later SMTP line or header)
    ['NUL in the local part', `u\0@${onion}`, /printable ASCII/],
    ['NUL at the end', `u@${onion}\0`, /printable ASCII/],
    ['CR in the local part', `u\r@${onion}`, /printable ASCII/],
    ['LF then a command', `u@${onion}\nRCPT TO:<v@example.com>`, /printable ASCII/],
    ['CRLF at the end', `u@${onion}\r\n`, /printable ASCII/],
    ['tab before', `\tu@${onion}`, /printable ASCII/],
    ['DEL', `u\x7f@${onion}`, /printable ASCII/],
    // non-ASCII (no SMTPUTF8)
    ['non-ASCII local part', 'üser@example.com', /printable ASCII/],
    ['non-ASCII domain', 'u@exämple.com', /printable ASCII/],
    ['no-break space around', '\u00a0u@example.com', /printable ASCII/],
    ['fullwidth "@"', `u\uff20${onion}`, /printable ASCII/],
    ['Cyrillic "а" in an onion', `u@${ONION.replace('a', '\u0430')}.onion`, /printable ASCII/]
  ]
  for (const [name, input, error] of table) {
    it(name, () => {
      assert.throws(() => parseAddress(input), (err: Error) => err instanceof AddressError && error.test(err.message), `${JSON.stringify(input)} should be refused with ${error}`)
    })
  }

  // Regression: toLowerCase() ran before any check and maps KELVIN SIGN (U+212A) to ASCII "k",
  // so "\u212Aate@…" was accepted as "kate@…" and an onion written with it as the real onion.
  it('kelvin sign is not folded to "k" (non-ASCII letters that lowercase to ASCII)', () => {
    assert.equal('\u212A'.toLowerCase(), 'k')
    assert.throws(() => parseAddress('\u212Aate@example.com'), AddressError)
    assert.throws(() => parseAddress(`kate@${TOR.replace('k', '\u212A')}.onion`), AddressError)
    assert.throws(() => parseAddress('u@\u212A.example.com'), AddressError)
    assert.throws(() => parseAddress('\u0130@example.com'), AddressError) // İ lowercases to "i" + U+0307
  })
})
