// Key lookup URLs: the Web Key Directory hash and URLs (draft-koch-openpgp-webkey-service 3.1,
// with the draft's Joe.Doe@Example.ORG example) and the HKP lookup URL; hostile addresses and
// keyserver URLs refused.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { KeyLookupError, hkpLookupUrl, wkdHash, wkdUrls } from './wkd.ts'

const refusal = (pattern: RegExp) => (error: unknown): boolean =>
  error instanceof KeyLookupError && error.name === 'KeyLookupError' && pattern.test(error.message)

describe('wkdHash', () => {
  const table: Array<[string, string, string]> = [
    // draft-koch-openpgp-webkey-service 3.1, the example address Joe.Doe@Example.ORG
    ['the draft\'s example', 'Joe.Doe', 'iy9q119eutrkn8s1mk4r39qejnbu3n5q'],
    ['ASCII upper case is folded', 'JOE.DOE', 'iy9q119eutrkn8s1mk4r39qejnbu3n5q'],
    ['already lower case', 'joe.doe', 'iy9q119eutrkn8s1mk4r39qejnbu3n5q'],
    // GnuPG's test user dewey@test.gnupg.org, as published under test.gnupg.org/.well-known
    ['GnuPG\'s test user', 'dewey', '1g8totoxbt4zf6na1sukczp5fiewr1oe']
  ]
  for (const [name, local, hash] of table) it(name, () => { assert.equal(wkdHash(local), hash) })

  it('is always 32 z-base-32 characters', () => {
    for (const local of ['', 'a', 'x'.repeat(64), 'jörg']) assert.match(wkdHash(local), /^[ybndrfg8ejkmcpqxot1uwisza345h769]{32}$/)
  })

  it('non-ASCII characters are not changed (draft 3.1)', () => {
    assert.equal(wkdHash('JÖRG'), wkdHash('jÖrg'))
    assert.notEqual(wkdHash('JÖRG'), wkdHash('jörg'))
  })

  it('KELVIN SIGN is not folded into "k"', () => {
    assert.notEqual(wkdHash('\u212a'), wkdHash('k'))
  })
})

describe('wkdUrls', () => {
  it('the draft\'s example, both methods', () => {
    assert.deepEqual(wkdUrls('Joe.Doe@Example.ORG'), {
      advanced: 'https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe',
      direct: 'https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe'
    })
  })

  const table: Array<[string, string, string]> = [
    ['"+" in the local part is percent-escaped in "l"', 'a+tag@example.org', `https://example.org/.well-known/openpgpkey/hu/${wkdHash('a+tag')}?l=a%2Btag`],
    ['"&" and "=" cannot add query parameters', 'a&l=b@example.org', `https://example.org/.well-known/openpgpkey/hu/${wkdHash('a&l=b')}?l=a%26l%3Db`],
    ['a non-ASCII local part is UTF-8 percent-escaped', 'jörg@example.org', `https://example.org/.well-known/openpgpkey/hu/${wkdHash('jörg')}?l=j%C3%B6rg`],
    ['an internationalized domain becomes IDNA ASCII', 'joe@Bücher.example', `https://xn--bcher-kva.example/.well-known/openpgpkey/hu/${wkdHash('joe')}?l=joe`],
    ['a trailing dot on the domain is dropped', 'joe@example.org.', `https://example.org/.well-known/openpgpkey/hu/${wkdHash('joe')}?l=joe`],
    ['the last "@" splits', '"a@b"@example.org', `https://example.org/.well-known/openpgpkey/hu/${wkdHash('"a@b"')}?l=%22a%40b%22`]
  ]
  for (const [name, address, direct] of table) it(name, () => { assert.equal(wkdUrls(address).direct, direct) })

  it('the advanced URL names the domain twice', () => {
    assert.equal(wkdUrls('joe@Bücher.example').advanced, `https://openpgpkey.xn--bcher-kva.example/.well-known/openpgpkey/xn--bcher-kva.example/hu/${wkdHash('joe')}?l=joe`)
  })

  const refused: Array<[string, string, RegExp]> = [
    ['no "@"', 'joe.example.org', /local part and a domain/],
    ['empty local part', '@example.org', /local part and a domain/],
    ['empty domain', 'joe@', /local part and a domain/],
    ['a space', 'joe doe@example.org', /spaces or control/],
    ['a CR LF', 'joe@example.org\r\nHost: evil.example', /spaces or control/],
    ['a path in the domain', 'joe@evil.example/x', /host name/],
    ['a query in the domain', 'joe@evil.example?x=', /host name/],
    ['a fragment in the domain', 'joe@evil.example#x', /host name/],
    ['a port in the domain', 'joe@example.org:8443', /host name/],
    ['a backslash in the domain', 'joe@evil.example\\x', /host name/],
    ['an address literal', 'joe@[127.0.0.1]', /host name/],
    ['an IPv4 address', 'joe@127.0.0.1', /IP address/],
    ['one label', 'joe@localhost', /host name/],
    ['an empty label', 'joe@example..org', /host name/],
    ['an underscore', 'joe@ex_ample.org', /host name/]
  ]
  for (const [name, address, pattern] of refused) it(`refused: ${name}`, () => { assert.throws(() => wkdUrls(address), refusal(pattern)) })
})

describe('hkpLookupUrl', () => {
  const table: Array<[string, string, string, string]> = [
    ['https keyserver', 'https://keys.openpgp.org', 'Joe.Doe@Example.ORG', 'https://keys.openpgp.org/pks/lookup?op=get&options=mr&search=Joe.Doe%40Example.ORG'],
    ['a trailing slash', 'https://keys.openpgp.org/', 'joe@example.org', 'https://keys.openpgp.org/pks/lookup?op=get&options=mr&search=joe%40example.org'],
    ['the HKP port over http', 'http://keyserver.example.net:11371', 'joe@example.org', 'http://keyserver.example.net:11371/pks/lookup?op=get&options=mr&search=joe%40example.org'],
    ['a path prefix', 'https://example.org/keys/', 'joe@example.org', 'https://example.org/keys/pks/lookup?op=get&options=mr&search=joe%40example.org'],
    ['an onion keyserver', 'http://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion', 'a+b@example.org', 'http://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion/pks/lookup?op=get&options=mr&search=a%2Bb%40example.org'],
    ['"&" in the address stays inside search', 'https://keys.openpgp.org', 'a&op=x@example.org', 'https://keys.openpgp.org/pks/lookup?op=get&options=mr&search=a%26op%3Dx%40example.org']
  ]
  for (const [name, base, address, url] of table) it(name, () => { assert.equal(hkpLookupUrl(base, address), url) })

  const refused: Array<[string, string, string, RegExp]> = [
    ['not a URL', 'keys.openpgp.org', 'joe@example.org', /not a URL/],
    ['hkps scheme', 'hkps://keys.openpgp.org', 'joe@example.org', /http or https/],
    ['ftp scheme', 'ftp://keys.example.org', 'joe@example.org', /http or https/],
    ['javascript scheme', 'javascript:alert(1)', 'joe@example.org', /http or https/],
    ['a query', 'https://keys.example.org/?x=1', 'joe@example.org', /query/],
    ['an empty query', 'https://keys.example.org/?', 'joe@example.org', /query/],
    ['a fragment', 'https://keys.example.org/#x', 'joe@example.org', /fragment/],
    ['credentials', 'https://user:secret@keys.example.org', 'joe@example.org', /credentials/],
    ['a bad address', 'https://keys.openpgp.org', 'joe', /local part and a domain/],
    ['an address with a path', 'https://keys.openpgp.org', 'joe@example.org/x', /host name/]
  ]
  for (const [name, base, address, pattern] of refused) it(`refused: ${name}`, () => { assert.throws(() => hkpLookupUrl(base, address), refusal(pattern)) })
})
