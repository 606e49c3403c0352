// Autocrypt Level 1 (release 1.1): the spec's example headers, hostile and broken headers,
// choosing the one header of a message, the peer-state update rules, and the recommendation
// for each kind of peer state.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  AutocryptError, MAX_HEADER_BYTES, STALE_AFTER_MS, autocryptHeaderFor, canonicalAddress, effectiveDate, formatAutocryptGossipHeader,
  formatAutocryptHeader, gossipHeadersFor, isAutocryptable, parseAutocryptGossipHeader, parseAutocryptHeader, recommend,
  recommendForRecipients, updateFromGossip, updateFromMessage, type AutocryptHeader, type PeerState, type RecommendationInput,
  type UiRecommendation
} from './autocrypt.ts'
import { headerValue, parseHeaders } from './message.ts'

// Autocrypt Level 1, "Example Autocrypt headers" (appendix/example-simple-autocrypt.eml),
// verbatim, with CRLF line ends as on the wire.
const SIMPLE_EML = [
  'Delivered-To: <bob@autocrypt.example>',
  'From: Alice <alice@autocrypt.example>',
  'To: Bob <bob@autocrypt.example>',
  'Subject: an Autocrypt header example using Ed25519+Cv25519 key',
  'Autocrypt: addr=alice@autocrypt.example; prefer-encrypt=mutual; keydata=',
  ' mDMEXEcE6RYJKwYBBAHaRw8BAQdArjWwk3FAqyiFbFBKT4TzXcVBqPTB3gmzlC/Ub7O1u120F2F',
  ' saWNlQGF1dG9jcnlwdC5leGFtcGxliJYEExYIAD4WIQTrhbtfozp14V6UTmPyMVUMT0fjjgUCXE',
  ' cE6QIbAwUJA8JnAAULCQgHAgYVCgkICwIEFgIDAQIeAQIXgAAKCRDyMVUMT0fjjkqLAP9frlijw',
  ' BJvA+HFnqCZcYIVxlyXzS5Gi5gMTpp37K73jgD/VbKYhkwk9iu689OYH4K7q7LbmdeaJ+RX88Y/',
  ' ad9hZwy4OARcRwTpEgorBgEEAZdVAQUBAQdAQv8GIa2rSTzgqbXCpDDYMiKRVitCsy203x3sE9+',
  ' eviIDAQgHiHgEGBYIACAWIQTrhbtfozp14V6UTmPyMVUMT0fjjgUCXEcE6QIbDAAKCRDyMVUMT0',
  ' fjjlnQAQDFHUs6TIcxrNTtEZFjUFm1M0PJ1Dng/cDW4xN80fsn0QEA22Kr7VkCjeAEC08VSTeV+',
  ' QFsmz55/lntWkwYWhmvOgE=',
  'Date: Tue, 22 Jan 2019 12:56:25 +0100',
  'Message-ID: <abe640bb-018d-4f9d-b4d8-1636d6164e22@autocrypt.example>',
  'MIME-Version: 1.0',
  'Content-Type: text/plain',
  '',
  'This is an example e-mail with Autocrypt header and Ed25519+Cv25519 key (key',
  'fingerprint: ) as defined in Level 1 revision 1.1.',
  ''
].join('\r\n')

// Autocrypt Level 1, "Example Autocrypt Gossip headers": the two headers of the decrypted
// payload (appendix/example-gossip-cleartext.eml), verbatim.
const BOB_GOSSIP = [
  'Autocrypt-Gossip: addr=bob@autocrypt.example; keydata=',
  ' mQGNBFoBt74BDAC8AMsjPY17kxodbfmHah38ZQipY0yfuo97WUBs2jeiFYlQdunPANi5VMgbAX+H',
  ' Qb8LBKKoUOmJQrONj1EXz5ILEHc/rSlbJjdmCE8cw9X+EN6PW1y9XNx1ohR1OGKjs9cVW87uPmz/',
  ' TkIslmfzVB6wjMIll8ax/Kb3IKr6wQXUT+JvJajWoVDOOD+7FPondqOxITXMEzinJtzqfEY6SB8q',
  ' +bwRP9bMSyGaJl0fxbqdUxU4iVj8b1JpxuhFtvZik8i06avrOPfYmSnqANBOECSmuC3Uf2plIHJR',
  ' Fd8o12j0lzdQQH3EAcG4dAdIuGHzxdLBQSQ8o8HvBDno9epaui42HDHKUji42mf9Bc9DK4wW6Szb',
  ' BGdefacEmowrwn1Ruc3TyFwfNLuM6AB3k0HhOftUz/4tFKWNlDxN/w6xT30GSE2pp21lu9xN1S6X',
  ' GXOstmDX40tgdMIfZVZqzDWfkZLVeKsE7Z/SNcKouS49FdipChdy0FuEi4ua3NBFb8ImK60AEQEA',
  ' AbQyZjJlMDk5ZDQtYmM5Yi00MGM4LWE2NmItMWE1YmM0MjFjYjRhQGF1dG9jcnlwdC5vcmeJAc4E',
  ' EwEKADgCGwMFCwkIBwIGFQoJCAsCBBYCAwECHgECF4AWIQRp5NnH84f8yaNXvfFHTviz1NECaAUC',
  ' WgG34wAKCRBHTviz1NECaLEtDACaozWd0RHFsA8scsp/J63hHmJplmE9eQiei3WTaypWOTwrNXFu',
  ' 2evLWETKM2JP5mKHU2EIq55lcXxUxUxVOzFZ6/4pJ7OJh8je9sg8/9aZCGLu+0B9VmTKEtOJRitG',
  ' y+AeosZUAKhPhLWvNwCnN3sjfBEuZ8p1febYy1ZqedA1yzr8F6FinBfAiVPXqVbEOCB9dQ2JVgjA',
  ' U/5joG6jDenTOIReerLFc90n3riZs6AFN8LtgDMjx6GJ45WjnpawEYeUd3jqMwZ5HrPkR3CMM3Kx',
  ' XCv8r6Si9UdXQsFonVb2ZI5narwCQpRLi0FwlvretzSOgKdtYOXDWXpgMw7npS0NqCTyYF8WG+Nq',
  ' Gq4cwKmlSmYYhvsxIwu134CrA5HNvESUaVPHlenRtfajeAHf2KiVx5Wt4tM/RSm+Ls+3U8wKnzGt',
  ' hNcfnmAhHZ4O+45Drmjc/RzWQMGTWLMQd4uEQ79bulcRXrdde+0sRGweBdLACIU9R8meLXUtwFRN',
  ' jY0/OQS5AY0EWgG3vgEMALLuoUYqjHxHWA5rtGWVgN7s36ypU7KLX8gWk0cz15K0j1K6x+RAQfq0',
  ' IkcMekC5ShdIt4B7P8+dwWPK75VsTnPk8mlm/QurSNx6KMpBDsr6qy3S6u8C8JicNgutEA3s3nAE',
  ' fkvnMmqzp9Z+g8BI5ZUjQAahlW3Qj7g/QKFHhSrYU/7TXGn7o9VvpvKF5HqLdhmpPWI/pUrO2sK5',
  ' 48R8q8MPXa9fdbE3edYWmAwMP69wYbyC2aW2OnKyI/jfcjiMDabGTSDysCmyJ2F5NU9gluOac6qE',
  ' CVCmC8LI2ddQp+h4A8QcVVRsvxYGg25d9Ii5dJVRupKTWWEy7Xak5xEECeEZC78y7HAsaA39M9JM',
  ' zsLD/szyrVuo7gXzgyoZJNQ6O+b+GrRVJEikrUTddbLaPq/v3hYZaGg3ECuBOy2ISf1OeC7S6ObF',
  ' jrSQ9WmIG6s5r2IjOaPX++9xrqh9uUAeEgO9dtDBMfEtW8X6buL9uSXM16z5z6E8L1BqGG4x56OI',
  ' owARAQABiQG2BBgBCgAgFiEEaeTZx/OH/MmjV73xR074s9TRAmgFAloBt74CGwwACgkQR074s9TR',
  ' Amg7YAv/cv5Yt3Ja/flXuFhk+TU6WMvz0ehbMIIegW42aW69k78vtEnhwZEYfvE0Vn8YO2/s+n8q',
  ' cimkJFm0TNYnmybO6lbCtJG03UsJ84H0zB2L5ws8hTfTHy3xqBqaz7hBxki9oK1rIcSeSPfbGa48',
  ' O8w1+FQswFht0L4BTCd/4OfdwLVWFPVgjk/UZn9vMKxMgtN9+VJ72hwKU/Rf3PnWI6DIKM6MA50a',
  ' YUHxZjYR2KBmq6LJ91rdJ+WUBV7EB2HwtCsx/6kA5gy4ZLQLhrhQz9fS5sjCwFH4mg0i3qTRGxWx',
  ' UwKVvwExHYbqvcEQvWw/l3PO6eNJd2qG1Y6uAI0K8Un3UmFeVRQBNmFyX52GqJvMtPdXcawrj081',
  ' Mq1XoBRs6qW+WpX8Uj11mu22c57BTUXJRbRr4TnTuuOQmT0egwFDe3x8vHSFmcf9OzG8iKR9ftUE',
  ' +F2ewrzzmm3XY8hy7QeUgBfClZVA6A3rsX4gGawjDo6ZRBbYwckINgGX/vQk6rGs'
].join('\r\n')

const CAROL_GOSSIP = [
  'Autocrypt-Gossip: addr=carol@autocrypt.example; keydata=',
  ' mQGNBFoBt8oBDADGqfZ6PqW05hUEO1dkKm+ixJXnbVriPz2tRkAqT7lTF4KBGitxo4IPv9RPIjJR',
  ' UMUo89ddyqQfiwKxdFCMDqFDnVRWlDaM+r8sauNJoIFwtTFuvUpkFeCI5gYvneEIIbf1r3Xx1pf5',
  ' sLzaERhrHMZMG2farrA+IBymPf/BRdcE3rkUU95ssna51/aEEA/YrCFAwcGq7yW70OmF1Km/SiCZ',
  ' V4/m0fae9+Xw+elWMb+Mav7xL1vbqGIIPVr0bZgg8rr4qnJeK/Nx9OvFDD/TepcUfWWUTd8mFYdE',
  ' P/2OJs5WGLjlQKUK7LNLDix7deGVhriugVGMsDn5BToj0EXlqi1khOGX2PGz/E+KOWBMnUdU7M1B',
  ' qeCfKIIDtwCx3bkLd+eRAvF7UPQ+nZV8c/BvDJSGL7Mak3wrd9P2YxmSFditPReemtGHsSE0KdJ7',
  ' Cbg5w4LqD9nTv2CETwFsZeP2YABqLe31d1fKEsxTJahVTmTWMkBSTaAmtTmbU2tZsr6nJJsAEQEA',
  ' AbQyNDRkYTliODUtZDgwYS00NmQzLWJjMGUtOTM2ZWMxN2Y5YWZkQGF1dG9jcnlwdC5vcmeJAc4E',
  ' EwEKADgCGwMFCwkIBwIGFQoJCAsCBBYCAwECHgECF4AWIQRNY57MDS/rhzDQVtfBq7jfn25RMgUC',
  ' WgG3/wAKCRDBq7jfn25RMsNkDACs+o9B41TQlTfx+vChiw2KNdlVGCFFSp2TwuiUjkqpLXHwk34N',
  ' pFAbiAUgNNg80Wh9Jkv7b0KX1+eapmkMbNpHWN7u2bMxjerKvp1uuuZNSYGB6YYDDQJrhUariEFm',
  ' eYNMV0r3NGKihfM41+E9rvbrUs4AIWdGn5Wx9mM78XzGy2WSxuI0fRN+zJ5dYphVI+VM8IR5Ah8f',
  ' b/g7c9Vttc1h3ICEuOkxJBcvSGafSc+KVj8SrsAjnh1vRD/RBwQmWN7Lay0+9GIWG7U1xLm5LjWb',
  ' 0vZ+9giGbZuzuKUtvAu05j6pxdVdNn2yXYKvM6RNTFrnzRZ0JSuB7JmcS8xUvJhl1Xk+lLa+x1eS',
  ' r5URQJ7weoqSffKyCojFMd+l3tfv3lfhCk+9VYqnxAq817ooTeRYH1rXn6vI5qxWjYqpF4Av+yiy',
  ' 77lj8ES7wRfTSmvHblZHYehr20kQr2ibRiv28XdOvxh5UDU4joNvV7btK+uQM0fqgdpPQd6RQQ97',
  ' BjJxI/W5AY0EWgG3ygEMAL2AepcoX8fAdRuyajftxM+9PBiARIu5Nvf8rVbI87+qvENEXoDWfT2I',
  ' /iGskpY+5KtnYnDfqo8ut/DgHg53Ea6gtdr1z6+FibmmoTXm81tXnTIMf2WhHMq/P343bHRWYqh4',
  ' V3qes1cAzugp8DF8sE4Jte1rCksRjzAWjlBD2X3g2WWSx2wZT4LsIAuDXW0xXSrlVzg8hSK4Xq+4',
  ' 6KxaRzG0H+N91X8mjlQMTV16aX5WVI6Rk8WDxpAmBny1CbKlUu/sRhN40Td3NMQj7bkpcnXeeceO',
  ' /JVbgLEvARG5mj14BWJMSdgXoI12o6/v7xPh+b3cpc7+W6zApvwyhDLaizHjDeS1SqT/BeeIQqiw',
  ' 4G75zwBkD3jLRPr/meO/z6J99hQVZYCnIQtZfxw4dZ6teJ1W7rfkn9BiX1dG94xi2poWR0T4TPjP',
  ' TAFTDSzWdLsPJvklb0/+nhHuGeYzTVEW7Y0yIZZXE5rVmTcuCpFPv+M6VrFfnlCdb5iSJZ341Ol9',
  ' owARAQABiQG2BBgBCgAgFiEETWOezA0v64cw0FbXwau4359uUTIFAloBt8oCGwwACgkQwau4359u',
  ' UTKySwv/caLupPaC7kudaEEWlwlY1KbrKAwPeS0RYIYaPGnrgDFj8e9ThaxMaogD8JRdJ35kZedm',
  ' wInRKvwSCE9NydkJNGBbUkXqInnnuqgq0nFELdwJkfk8+sOhnXDoCrUkAoS6IbUqQ9ua9gFF5kmj',
  ' +jKhwMnRR90k5refGrpp9C6lDTxGSOkNqt2Ca7/O6oBovckRNQln75xR04ikvBF9o3VZcfSyDxR+',
  ' eNEb2fMmp66vda8KYncvhBMC3Gi+ablNCfbMP9Lax+pzAB2xb1USBxQcJzDQBmhYLBESAx6IEDne',
  ' c6d9sMH9Y3GPq4aS4M9gFVCCVv+nUGzkYYEordIot2dKTPRQi2Cz//XXrVNglpXhdtDUgh0mKBuM',
  ' 6dYFLBDqcDrPcQabyGUJZyHknkQJkto0aSNmHqasjuVhS2N7UuHI+ILMUlSQpBQaCirTTz+CpwKU',
  ' Iy9qsd5eg/4Vvc2AezUv+A6p2DUNHgFMX2FfDus+EPO0wgeWbNaV601aE7UhyugB'
].join('\r\n')

const b = (text: string): Buffer => Buffer.from(text, 'latin1')
/** The value of a header line as it stands, still folded. */
const valueOf = (line: string): string => line.slice(line.indexOf(':') + 1).replace(/^ /, '')
const refusal = (pattern: RegExp) => (error: unknown): boolean =>
  error instanceof AutocryptError && error.name === 'AutocryptError' && pattern.test(error.message)

const DAY = 24 * 60 * 60 * 1000
// Short stand-ins for keys: an old-format public-key packet tag and a few bytes.
const KEY_1 = Buffer.from('98330401020304050607', 'hex')
const KEY_2 = Buffer.from('99018d0401020304050607', 'hex')
const KEY_1_B64 = KEY_1.toString('base64') // with "=" padding
const KEY_2_B64 = KEY_2.toString('base64')

describe('the spec\'s example headers', () => {
  it('Alice\'s Autocrypt header in the example message', () => {
    const raw = b(SIMPLE_EML)
    const value = headerValue(raw, 'Autocrypt')
    assert.ok(value !== undefined)
    const header = parseAutocryptHeader(value)
    assert.equal(header.addr, 'alice@autocrypt.example')
    assert.equal(header.preferEncrypt, 'mutual')
    assert.equal(header.keydata.length, 410)
    assert.equal(header.keydata[0], 0x98, 'an Ed25519 public-key packet comes first')
    assert.ok(header.keydata.includes('alice@autocrypt.example'), 'the user id is in the key')
    assert.deepEqual(autocryptHeaderFor(parseHeaders(raw).filter(([name]) => name === 'Autocrypt').map(([, v]) => v), 'alice@autocrypt.example'), header)
  })

  it('the same header still folded (CRLF and a space before each keydata line)', () => {
    const lines = SIMPLE_EML.split('\r\n')
    const start = lines.findIndex(line => line.startsWith('Autocrypt:'))
    const end = lines.findIndex(line => line.startsWith('Date:'))
    const folded = valueOf(lines.slice(start, end).join('\r\n'))
    assert.match(folded, /\r\n /)
    assert.deepEqual(parseAutocryptHeader(folded), parseAutocryptHeader(headerValue(b(SIMPLE_EML), 'Autocrypt')!))
  })

  for (const [who, line, addr] of [['Bob', BOB_GOSSIP, 'bob@autocrypt.example'], ['Carol', CAROL_GOSSIP, 'carol@autocrypt.example']] as const) {
    it(`${who}'s Autocrypt-Gossip header`, () => {
      const header = parseAutocryptGossipHeader(valueOf(line))
      assert.equal(header.addr, addr)
      assert.equal(header.keydata.length, 1758)
      assert.equal(header.keydata.subarray(0, 3).toString('hex'), '99018d', 'an RSA public-key packet of 397 octets')
    })

    it(`formatting ${who}'s gossip gives the spec's header byte for byte`, () => {
      const header = parseAutocryptGossipHeader(valueOf(line))
      assert.equal(`Autocrypt-Gossip: ${formatAutocryptGossipHeader(header)}`, line)
    })
  }
})

describe('formatAutocryptHeader', () => {
  const alice = parseAutocryptHeader(headerValue(b(SIMPLE_EML), 'Autocrypt')!)

  it('Alice\'s header: the spec\'s first line, keydata folded within 78 characters, round trip', () => {
    const line = `Autocrypt: ${formatAutocryptHeader(alice)}`
    const lines = line.split('\r\n')
    assert.equal(lines[0], 'Autocrypt: addr=alice@autocrypt.example; prefer-encrypt=mutual; keydata=')
    for (const continuation of lines.slice(1)) {
      assert.ok(continuation.length <= 78, `${continuation.length} characters`)
      assert.match(continuation, /^ [A-Za-z0-9+/=]+$/)
    }
    assert.deepEqual(parseAutocryptHeader(valueOf(line)), alice)
  })

  it('prepended to a message, it reads back through the header parser', async () => {
    const { prependHeaders } = await import('./message.ts')
    const raw = prependHeaders(b('From: alice@autocrypt.example\r\nSubject: hi\r\n\r\nbody\r\n'), [`Autocrypt: ${formatAutocryptHeader(alice)}`])
    assert.deepEqual(autocryptHeaderFor([headerValue(raw, 'Autocrypt')!], 'alice@autocrypt.example'), alice)
    assert.equal(headerValue(raw, 'Subject'), 'hi', 'the header block is intact')
  })

  it('nopreference leaves prefer-encrypt out', () => {
    const value = formatAutocryptHeader({ ...alice, preferEncrypt: 'nopreference' })
    assert.ok(value.startsWith('addr=alice@autocrypt.example; keydata=\r\n '))
    assert.equal(parseAutocryptHeader(value).preferEncrypt, 'nopreference')
  })

  it('a long address puts each attribute on its own line', () => {
    const addr = `${'a'.repeat(40)}@${'b'.repeat(20)}.example`
    const value = formatAutocryptHeader({ addr, preferEncrypt: 'mutual', keydata: KEY_2 })
    const lines = `Autocrypt: ${value}`.split('\r\n')
    assert.deepEqual(lines.slice(0, 3), [`Autocrypt: addr=${addr};`, ' prefer-encrypt=mutual;', ' keydata='])
    assert.deepEqual(parseAutocryptHeader(value), { addr, preferEncrypt: 'mutual', keydata: KEY_2 })
  })

  it('the gossip header never carries prefer-encrypt', () => {
    assert.equal(formatAutocryptGossipHeader({ addr: 'bob@b.example', keydata: KEY_1 }), `addr=bob@b.example; keydata=\r\n ${KEY_1_B64}`)
  })

  it('a key that would make the header larger than 10 KiB is refused (spec: MUST NOT send)', () => {
    const big = Buffer.alloc(7600, 0x99)
    assert.throws(() => formatAutocryptHeader({ addr: 'a@b.example', preferEncrypt: 'mutual', keydata: big }), refusal(/10 KiB/))
    const fits = Buffer.alloc(7000, 0x99)
    const value = formatAutocryptHeader({ addr: 'a@b.example', preferEncrypt: 'mutual', keydata: fits })
    assert.ok(Buffer.byteLength(`Autocrypt: ${value}`) <= MAX_HEADER_BYTES)
    assert.deepEqual(parseAutocryptHeader(value).keydata, fits)
  })

  it('an address that is not plain, or no key, is refused', () => {
    assert.throws(() => formatAutocryptHeader({ addr: 'Alice <a@b.example>', preferEncrypt: 'mutual', keydata: KEY_1 }), refusal(/plain mail address/))
    assert.throws(() => formatAutocryptHeader({ addr: 'a@b.example;x=y', preferEncrypt: 'mutual', keydata: KEY_1 }), refusal(/plain mail address/))
    assert.throws(() => formatAutocryptGossipHeader({ addr: 'a@b.example', keydata: Buffer.alloc(0) }), refusal(/needs keydata/))
  })
})

describe('accepted header variants', () => {
  const table: Array<[string, string, AutocryptHeader]> = [
    ['minimal: addr and keydata', `addr=a@b.example; keydata=${KEY_1_B64}`, { addr: 'a@b.example', preferEncrypt: 'nopreference', keydata: KEY_1 }],
    ['non-critical attribute ignored', `addr=a@b.example; _x=whatever; keydata=${KEY_1_B64}`, { addr: 'a@b.example', preferEncrypt: 'nopreference', keydata: KEY_1 }],
    ['non-critical attribute with an empty value', `addr=a@b.example; prefer-encrypt=mutual; _comment=; keydata=${KEY_1_B64}`, { addr: 'a@b.example', preferEncrypt: 'mutual', keydata: KEY_1 }],
    ['prefer-encrypt with another value means nopreference', `addr=a@b.example; prefer-encrypt=yes; keydata=${KEY_1_B64}`, { addr: 'a@b.example', preferEncrypt: 'nopreference', keydata: KEY_1 }],
    ['prefer-encrypt=nopreference', `addr=a@b.example; prefer-encrypt=nopreference; keydata=${KEY_1_B64}`, { addr: 'a@b.example', preferEncrypt: 'nopreference', keydata: KEY_1 }],
    ['attribute names in another case', `Addr=a@b.example; Prefer-Encrypt=mutual; KEYDATA=${KEY_1_B64}`, { addr: 'a@b.example', preferEncrypt: 'mutual', keydata: KEY_1 }],
    ['a trailing semicolon', `addr=a@b.example; keydata=${KEY_1_B64};`, { addr: 'a@b.example', preferEncrypt: 'nopreference', keydata: KEY_1 }],
    ['tabs and extra spaces', `\taddr = a@b.example ;\tprefer-encrypt = mutual ; keydata = ${KEY_2_B64} `, { addr: 'a@b.example', preferEncrypt: 'mutual', keydata: KEY_2 }],
    ['keydata folded with bare LF', `addr=a@b.example; keydata=\n ${KEY_2_B64.slice(0, 8)}\n ${KEY_2_B64.slice(8)}`, { addr: 'a@b.example', preferEncrypt: 'nopreference', keydata: KEY_2 }],
    ['keydata unfolded with spaces inside', `addr=a@b.example; keydata= ${KEY_2_B64.slice(0, 8)} ${KEY_2_B64.slice(8)}`, { addr: 'a@b.example', preferEncrypt: 'nopreference', keydata: KEY_2 }],
    ['the address is kept as written', `addr=Alice@B.Example; keydata=${KEY_1_B64}`, { addr: 'Alice@B.Example', preferEncrypt: 'nopreference', keydata: KEY_1 }]
  ]
  for (const [name, value, expected] of table) it(name, () => { assert.deepEqual(parseAutocryptHeader(value), expected) })

  it('a gossip header with prefer-encrypt (senders SHOULD NOT add it) is read, the attribute ignored', () => {
    assert.deepEqual(parseAutocryptGossipHeader(`addr=a@b.example; prefer-encrypt=mutual; keydata=${KEY_1_B64}`), { addr: 'a@b.example', keydata: KEY_1 })
  })
})

describe('refused headers', () => {
  const K = KEY_1_B64
  const table: Array<[string, string, RegExp]> = [
    // "The Autocrypt Header": critical attributes
    ['unknown critical attribute', `addr=a@b.example; foo=bar; keydata=${K}`, /unknown critical attribute "foo"/],
    ['a future version\'s critical attribute', `addr=a@b.example; version=2; keydata=${K}`, /unknown critical attribute "version"/],
    ['unknown critical attribute after prefer-encrypt', `addr=a@b.example; prefer-encrypt=mutual; type=2; keydata=${K}`, /critical/],
    // addr
    ['no addr', `prefer-encrypt=mutual; keydata=${K}`, /no addr/],
    ['empty addr', `addr=; keydata=${K}`, /no addr/],
    ['addr without "@"', `addr=alice; keydata=${K}`, /plain mail address/],
    ['addr with a display name', `addr=Alice <a@b.example>; keydata=${K}`, /plain mail address/],
    ['addr with two "@"', `addr=a@b@c.example; keydata=${K}`, /plain mail address/],
    ['addr twice', `addr=a@b.example; addr=c@d.example; keydata=${K}`, /"addr" twice/],
    // keydata
    ['no keydata', 'addr=a@b.example; prefer-encrypt=mutual', /no keydata/],
    ['empty keydata', 'addr=a@b.example; keydata=', /no keydata/],
    ['keydata of spaces only', 'addr=a@b.example; keydata=\r\n \r\n ', /no keydata/],
    ['keydata with characters outside base64', 'addr=a@b.example; keydata=mDME!!!!', /not valid base64/],
    ['keydata in base64url', 'addr=a@b.example; keydata=mDME-_-_', /not valid base64/],
    ['keydata cut short', 'addr=a@b.example; keydata=mDMEX', /not valid base64/],
    ['keydata with padding in the middle', 'addr=a@b.example; keydata=mD==mDME', /not valid base64/],
    ['keydata that is text, not a key', `addr=a@b.example; keydata=${Buffer.from('hello world').toString('base64')}`, /not an OpenPGP packet/],
    ['keydata of one byte', `addr=a@b.example; keydata=${Buffer.from([0x99]).toString('base64')}`, /not an OpenPGP packet/],
    ['keydata not last', `addr=a@b.example; keydata=${K}; prefer-encrypt=mutual`, /not the last attribute/],
    ['keydata twice', `addr=a@b.example; keydata=${K}; keydata=${K}`, /not the last attribute/],
    // form
    ['an attribute without "="', `addr=a@b.example; mutual; keydata=${K}`, /name=value/],
    ['an attribute with an empty name', `addr=a@b.example; =x; keydata=${K}`, /name=value/],
    ['empty value', '', /no addr/],
    ['semicolons only', ';;;', /no addr/],
    ['NUL byte', `addr=a@b.example;\x00 keydata=${K}`, /control characters/],
    ['bare CR (not folding)', `addr=a@b.example;\r keydata=${K}`, /control characters/],
    ['LF not followed by white space (header injection)', `addr=a@b.example; keydata=${K}\r\nBcc: x@y.example`, /control characters/],
    // "MUAs SHOULD treat such headers as invalid"
    ['larger than 10 KiB', `addr=a@b.example; keydata=${'A'.repeat(MAX_HEADER_BYTES)}`, /10 KiB/],
    ['larger than 10 KiB in a non-critical attribute', `addr=a@b.example; _pad=${'x'.repeat(MAX_HEADER_BYTES)}; keydata=${K}`, /10 KiB/]
  ]
  for (const [name, value, pattern] of table) {
    it(name, () => {
      assert.throws(() => parseAutocryptHeader(value), refusal(pattern))
      assert.throws(() => parseAutocryptGossipHeader(value), refusal(pattern), 'gossip has the same format')
    })
  }

  it('just under 10 KiB with the "Autocrypt: " prefix is accepted', () => {
    const keydata = Buffer.concat([KEY_1, Buffer.alloc(7620 - KEY_1.length, 7)])
    const value = `addr=a@b.example; keydata=${keydata.toString('base64')}`
    assert.ok(Buffer.byteLength(`Autocrypt: ${value}`) <= MAX_HEADER_BYTES)
    assert.deepEqual(parseAutocryptHeader(value).keydata, keydata)
  })
})

describe('autocryptHeaderFor: the one valid header of a message', () => {
  const alice = (extra = ''): string => `addr=alice@autocrypt.example;${extra} keydata=${KEY_1_B64}`
  const table: Array<[string, string[], string, string | undefined]> = [
    ['one valid header', [alice()], 'alice@autocrypt.example', 'alice@autocrypt.example'],
    ['From in another case', [alice()], 'Alice@AutoCrypt.Example', 'alice@autocrypt.example'],
    ['From with an IDN domain, addr in punycode', [`addr=a@xn--bcher-kva.example; keydata=${KEY_1_B64}`], 'a@Bücher.example', 'a@xn--bcher-kva.example'],
    ['addr differs from From: invalid', [alice()], 'mallory@autocrypt.example', undefined],
    ['no header', [], 'alice@autocrypt.example', undefined],
    ['two valid headers: all discarded', [alice(), `addr=alice@autocrypt.example; keydata=${KEY_2_B64}`], 'alice@autocrypt.example', undefined],
    ['the same valid header twice: all discarded', [alice(), alice()], 'alice@autocrypt.example', undefined],
    ['a valid header and one with an unknown critical attribute (a future version)', [alice(' version=2;'), alice()], 'alice@autocrypt.example', 'alice@autocrypt.example'],
    ['a valid header and garbage', ['garbage', alice()], 'alice@autocrypt.example', 'alice@autocrypt.example'],
    ['a valid header and one for someone else', [`addr=bob@autocrypt.example; keydata=${KEY_2_B64}`, alice()], 'alice@autocrypt.example', 'alice@autocrypt.example'],
    ['only invalid headers', ['garbage', alice(' foo=bar;')], 'alice@autocrypt.example', undefined]
  ]
  for (const [name, values, from, expected] of table) {
    it(name, () => { assert.equal(autocryptHeaderFor(values, from)?.addr, expected) })
  }
})

describe('canonicalAddress', () => {
  const table: Array<[string, string]> = [
    ['Alice@AutoCrypt.Example', 'alice@autocrypt.example'],
    [' bob@b.example ', 'bob@b.example'],
    ['Jörg@Bücher.example', 'jörg@xn--bcher-kva.example'],
    ['ÄB@x.example', 'äb@x.example']
  ]
  for (const [input, expected] of table) it(input, () => { assert.equal(canonicalAddress(input), expected) })
})

describe('gossipHeadersFor', () => {
  const gossip = [valueOf(BOB_GOSSIP), valueOf(CAROL_GOSSIP)]
  it('the spec\'s example: both recipients get their key', () => {
    assert.deepEqual(gossipHeadersFor(gossip, ['Bob@autocrypt.example', 'carol@autocrypt.example']).map(h => h.addr), ['bob@autocrypt.example', 'carol@autocrypt.example'])
  })
  it('gossip about an address not in To, Cc or Reply-To is ignored (step 1)', () => {
    assert.deepEqual(gossipHeadersFor(gossip, ['bob@autocrypt.example', 'dave@autocrypt.example']).map(h => h.addr), ['bob@autocrypt.example'])
  })
  it('two gossip headers for one address: both dropped', () => {
    const second = `addr=bob@autocrypt.example; keydata=${KEY_1_B64}`
    assert.deepEqual(gossipHeadersFor([...gossip, second], ['bob@autocrypt.example', 'carol@autocrypt.example']).map(h => h.addr), ['carol@autocrypt.example'])
  })
  it('an invalid gossip header is skipped', () => {
    assert.deepEqual(gossipHeadersFor(['addr=bob@autocrypt.example; x=1; keydata=AAAA', valueOf(CAROL_GOSSIP)], ['bob@autocrypt.example', 'carol@autocrypt.example']).map(h => h.addr), ['carol@autocrypt.example'])
  })
})

describe('isAutocryptable', () => {
  const table: Array<[string, Parameters<typeof isAutocryptable>[0], boolean]> = [
    ['an ordinary message', { contentType: 'text/plain; charset=utf-8', fromAddressCount: 1 }, true],
    ['no Content-Type', { fromAddressCount: 1 }, true],
    ['Auto-Submitted: auto-replied', { autoSubmitted: 'auto-replied', fromAddressCount: 1 }, false],
    ['Auto-Submitted: Auto-Replied with a parameter', { autoSubmitted: ' Auto-Replied; owner-email="a@b.example"', fromAddressCount: 1 }, false],
    ['Auto-Submitted: no', { autoSubmitted: 'no', fromAddressCount: 1 }, true],
    // The spec names auto-replied only; auto-generated mail (say a mailing list digest) counts.
    ['Auto-Submitted: auto-generated', { autoSubmitted: 'auto-generated', fromAddressCount: 1 }, true],
    ['multipart/report (an MDN)', { contentType: 'multipart/report; report-type=disposition-notification; boundary="x"', fromAddressCount: 1 }, false],
    ['Multipart/Report in another case', { contentType: 'Multipart/Report; report-type=delivery-status', fromAddressCount: 1 }, false],
    ['multipart/mixed', { contentType: 'multipart/mixed; boundary=x', fromAddressCount: 1 }, true],
    ['two addresses in From', { fromAddressCount: 2 }, false],
    ['no address in From', { fromAddressCount: 0 }, false],
    ['believed to be spam', { fromAddressCount: 1, isSpam: true }, false]
  ]
  for (const [name, input, expected] of table) it(name, () => { assert.equal(isAutocryptable(input), expected) })
})

describe('effectiveDate', () => {
  const now = Date.UTC(2024, 5, 1)
  const table: Array<[string, number | undefined, number]> = [
    ['the Date header when in the past', now - DAY, now - DAY],
    ['the Date header when equal to the time of receipt', now, now],
    ['the time of receipt when Date is in the future', now + 1, now],
    ['the time of receipt when there is no Date', undefined, now],
    ['the time of receipt when Date did not parse', NaN, now]
  ]
  for (const [name, date, expected] of table) it(name, () => { assert.equal(effectiveDate(date, now), expected) })
})

describe('updateFromMessage ("Updating Autocrypt Peer State")', () => {
  const T = Date.UTC(2024, 0, 1)
  const now = T + 400 * DAY
  const header = (keydata: Buffer, preferEncrypt: 'mutual' | 'nopreference' = 'nopreference'): AutocryptHeader => ({ addr: 'bob@b.example', preferEncrypt, keydata })
  const known: PeerState = Object.freeze({ lastSeen: T + 10 * DAY, autocryptTimestamp: T + 5 * DAY, publicKey: KEY_1, preferEncrypt: 'mutual' })

  it('a first message with a header creates the peer', () => {
    assert.deepEqual(updateFromMessage(undefined, { date: T, header: header(KEY_1, 'mutual'), isAutocryptable: true }, now),
      { lastSeen: T, autocryptTimestamp: T, publicKey: KEY_1, preferEncrypt: 'mutual' })
  })

  it('a first message without a header records last_seen only', () => {
    assert.deepEqual(updateFromMessage(undefined, { date: T, isAutocryptable: true }, now), { lastSeen: T })
  })

  it('a message to be ignored changes nothing', () => {
    assert.equal(updateFromMessage(undefined, { date: T, header: header(KEY_1), isAutocryptable: false }, now), undefined)
    assert.equal(updateFromMessage(known, { date: T + 20 * DAY, header: header(KEY_2), isAutocryptable: false }, now), known)
  })

  it('a newer header replaces key and preference (steps 2, 4-6)', () => {
    assert.deepEqual(updateFromMessage(known, { date: T + 20 * DAY, header: header(KEY_2), isAutocryptable: true }, now),
      { lastSeen: T + 20 * DAY, autocryptTimestamp: T + 20 * DAY, publicKey: KEY_2, preferEncrypt: 'nopreference' })
  })

  it('a newer message without a header moves last_seen only: key and preference stay (step 3; release 1.1 has no reset)', () => {
    assert.deepEqual(updateFromMessage(known, { date: T + 20 * DAY, isAutocryptable: true }, now),
      { ...known, lastSeen: T + 20 * DAY })
  })

  it('a message older than autocrypt_timestamp is ignored, with or without a header (step 1)', () => {
    assert.equal(updateFromMessage(known, { date: T + 4 * DAY, header: header(KEY_2), isAutocryptable: true }, now), known)
    assert.equal(updateFromMessage(known, { date: T + 4 * DAY, isAutocryptable: true }, now), known)
  })

  it('a header older than last_seen but newer than autocrypt_timestamp still updates the key (step 1 compares with autocrypt_timestamp only)', () => {
    assert.deepEqual(updateFromMessage(known, { date: T + 7 * DAY, header: header(KEY_2), isAutocryptable: true }, now),
      { lastSeen: T + 10 * DAY, autocryptTimestamp: T + 7 * DAY, publicKey: KEY_2, preferEncrypt: 'nopreference' })
  })

  it('a message without a header older than last_seen changes nothing', () => {
    assert.deepEqual(updateFromMessage(known, { date: T + 7 * DAY, isAutocryptable: true }, now), known)
  })

  it('a header with the same effective date as autocrypt_timestamp is applied ("older" is strict)', () => {
    assert.deepEqual(updateFromMessage(known, { date: T + 5 * DAY, header: header(KEY_2), isAutocryptable: true }, now)?.publicKey, KEY_2)
  })

  it('a Date in the future counts as the time of receipt', () => {
    assert.deepEqual(updateFromMessage(known, { date: now + 365 * DAY, header: header(KEY_2), isAutocryptable: true }, now),
      { lastSeen: now, autocryptTimestamp: now, publicKey: KEY_2, preferEncrypt: 'nopreference' })
  })

  it('a message without Date counts as the time of receipt', () => {
    assert.equal(updateFromMessage(known, { isAutocryptable: true }, now)?.lastSeen, now)
  })

  it('gossip fields are kept', () => {
    const state: PeerState = { ...known, gossipTimestamp: T, gossipKey: KEY_2 }
    const next = updateFromMessage(state, { date: T + 20 * DAY, header: header(KEY_1), isAutocryptable: true }, now)
    assert.equal(next?.gossipKey, KEY_2)
    assert.equal(next?.gossipTimestamp, T)
  })

  it('a peer that went on mailing without headers for more than 35 days is discouraged, until a header comes again', () => {
    const input: RecommendationInput = { ownPreferEncrypt: 'mutual', replyToEncrypted: false }
    let state = updateFromMessage(undefined, { date: T, header: header(KEY_1, 'mutual'), isAutocryptable: true }, now)
    assert.equal(recommend(state, input).ui, 'encrypt')
    state = updateFromMessage(state, { date: T + 35 * DAY, isAutocryptable: true }, now)
    assert.equal(recommend(state, input).ui, 'encrypt', '35 days is not more than 35 days')
    state = updateFromMessage(state, { date: T + 36 * DAY, isAutocryptable: true }, now)
    assert.equal(recommend(state, input).ui, 'discourage')
    state = updateFromMessage(state, { date: T + 37 * DAY, header: header(KEY_1, 'mutual'), isAutocryptable: true }, now)
    assert.equal(recommend(state, input).ui, 'encrypt')
  })
})

describe('updateFromGossip ("Updating Autocrypt Peer State from Key Gossip")', () => {
  const T = Date.UTC(2024, 0, 1)
  const now = T + 400 * DAY
  const known: PeerState = Object.freeze({ lastSeen: T + 10 * DAY, autocryptTimestamp: T + 5 * DAY, publicKey: KEY_1, preferEncrypt: 'mutual', gossipTimestamp: T + 3 * DAY, gossipKey: KEY_1 })

  it('gossip about an unknown peer gives a gossip-only peer', () => {
    assert.deepEqual(updateFromGossip(undefined, { date: T, keydata: KEY_2 }, now), { gossipTimestamp: T, gossipKey: KEY_2 })
  })
  it('newer gossip replaces the gossip key and leaves the rest (steps 3-4)', () => {
    assert.deepEqual(updateFromGossip(known, { date: T + 4 * DAY, keydata: KEY_2 }, now), { ...known, gossipTimestamp: T + 4 * DAY, gossipKey: KEY_2 })
  })
  it('older gossip is ignored (step 2)', () => {
    assert.equal(updateFromGossip(known, { date: T + 2 * DAY, keydata: KEY_2 }, now), known)
  })
  it('gossip as old as gossip_timestamp is applied ("more recent" is strict)', () => {
    assert.equal(updateFromGossip(known, { date: T + 3 * DAY, keydata: KEY_2 }, now).gossipKey, KEY_2)
  })
  it('a future Date counts as the time of receipt', () => {
    assert.equal(updateFromGossip(known, { date: now + DAY, keydata: KEY_2 }, now).gossipTimestamp, now)
  })
})

describe('recommend ("Recommendations for single-recipient messages")', () => {
  const T = Date.UTC(2024, 0, 1)
  const mutual: RecommendationInput = { ownPreferEncrypt: 'mutual', replyToEncrypted: false }
  const ownNopreference: RecommendationInput = { ownPreferEncrypt: 'nopreference', replyToEncrypted: false }
  const reply: RecommendationInput = { ownPreferEncrypt: 'nopreference', replyToEncrypted: true }
  const fresh = (preferEncrypt: 'mutual' | 'nopreference'): PeerState => ({ lastSeen: T + DAY, autocryptTimestamp: T, publicKey: KEY_1, preferEncrypt })
  const aged = (ms: number, preferEncrypt: 'mutual' | 'nopreference' = 'mutual'): PeerState => ({ lastSeen: T + ms, autocryptTimestamp: T, publicKey: KEY_1, preferEncrypt })
  const gossipOnly: PeerState = { gossipTimestamp: T, gossipKey: KEY_2 }
  const both: PeerState = { ...fresh('mutual'), gossipTimestamp: T, gossipKey: KEY_2 }
  const notKey1 = (key: Buffer): boolean => !key.equals(KEY_1)
  const never = (): boolean => false

  const table: Array<[string, PeerState | undefined, RecommendationInput, UiRecommendation, Buffer | undefined]> = [
    ['no peer state: disable', undefined, mutual, 'disable', undefined],
    ['a peer without any key: disable', { lastSeen: T }, mutual, 'disable', undefined],
    ['a key from gossip only: discourage', gossipOnly, mutual, 'discourage', KEY_2],
    ['a key from gossip only, in reply to an encrypted message: encrypt', gossipOnly, reply, 'encrypt', KEY_2],
    ['peer nopreference, own mutual: available', fresh('nopreference'), mutual, 'available', KEY_1],
    ['peer mutual, own mutual: encrypt', fresh('mutual'), mutual, 'encrypt', KEY_1],
    ['peer mutual, own nopreference: available', fresh('mutual'), ownNopreference, 'available', KEY_1],
    ['peer nopreference, own nopreference: available', fresh('nopreference'), ownNopreference, 'available', KEY_1],
    ['peer nopreference, in reply to an encrypted message: encrypt', fresh('nopreference'), reply, 'encrypt', KEY_1],
    ['last header exactly 35 days before last_seen: not stale', aged(STALE_AFTER_MS), mutual, 'encrypt', KEY_1],
    ['last header 35 days and 1 ms before last_seen: stale, discourage even if both mutual', aged(STALE_AFTER_MS + 1), mutual, 'discourage', KEY_1],
    ['stale, peer nopreference: discourage', aged(90 * DAY, 'nopreference'), ownNopreference, 'discourage', KEY_1],
    ['stale, in reply to an encrypted message: encrypt', aged(90 * DAY), reply, 'encrypt', KEY_1],
    ['an old key without later mail is not stale: staleness is against last_seen, not now', { lastSeen: T, autocryptTimestamp: T, publicKey: KEY_1, preferEncrypt: 'mutual' }, mutual, 'encrypt', KEY_1],
    ['both keys: the Autocrypt key is the target', both, mutual, 'encrypt', KEY_1],
    ['the Autocrypt key unusable (revoked, expired), no gossip key: disable', fresh('mutual'), { ...mutual, isKeyUsable: notKey1 }, 'disable', undefined],
    ['the Autocrypt key unusable, the gossip key usable: discourage with the gossip key', both, { ...mutual, isKeyUsable: notKey1 }, 'discourage', KEY_2],
    ['no key usable: disable, even in reply to an encrypted message', both, { ...reply, isKeyUsable: never }, 'disable', undefined]
  ]
  for (const [name, state, input, ui, targetKey] of table) {
    it(name, () => {
      const result = recommend(state, input)
      assert.equal(result.ui, ui)
      assert.equal(result.targetKey, targetKey)
    })
  }
})

describe('recommendForRecipients ("Recommendations for messages to multiple addresses")', () => {
  const table: Array<[UiRecommendation[], UiRecommendation]> = [
    [['encrypt', 'disable'], 'disable'],
    [['disable', 'discourage', 'available'], 'disable'],
    [['encrypt', 'encrypt', 'encrypt'], 'encrypt'],
    [['encrypt'], 'encrypt'],
    [['encrypt', 'discourage'], 'discourage'],
    [['available', 'discourage', 'encrypt'], 'discourage'],
    [['encrypt', 'available'], 'available'],
    [['available'], 'available'],
    [[], 'disable']
  ]
  for (const [recommendations, expected] of table) {
    it(`${JSON.stringify(recommendations)} → ${expected}`, () => { assert.equal(recommendForRecipients(recommendations), expected) })
  }
})
