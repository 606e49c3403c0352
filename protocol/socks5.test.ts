// SOCKS5 as Tor's SocksPort speaks it (RFC 1928, RFC 1929, tor's socks-extensions.txt).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { SOCKS_REPLIES, SOCKS_VERSION, socksAuthRequest, socksConnectReplyLength, socksConnectRequest, socksGreeting } from './socks5.ts'

const ONION = 'aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4bqead.onion'

describe('requests', () => {
  it('greeting (RFC 1928 3): version 5, one method', () => {
    assert.equal(SOCKS_VERSION, 5)
    assert.equal(socksGreeting(false).toString('hex'), '050100')
    assert.equal(socksGreeting(true).toString('hex'), '050102')
  })

  it('username/password (RFC 1929 2)', () => {
    assert.equal(socksAuthRequest('u', 'pw').toString('hex'), '01017502' + Buffer.from('pw').toString('hex'))
    assert.deepEqual(socksAuthRequest('é', 'x'), Buffer.from([1, 2, 0xc3, 0xa9, 1, 0x78]))
    assert.equal(socksAuthRequest('a'.repeat(255), 'b'.repeat(255)).length, 3 + 255 + 255)
    for (const [user, pass] of [['', 'x'], ['x', ''], ['a'.repeat(256), 'x'], ['x', 'b'.repeat(256)], ['é'.repeat(128), 'x']]) {
      assert.throws(() => socksAuthRequest(user!, pass!), /1 to 255 bytes/)
    }
  })

  it('CONNECT by domain name to an onion, port 25 (RFC 1928 4, ATYP 3)', () => {
    const request = socksConnectRequest(ONION, 25)
    assert.equal(request.subarray(0, 5).toString('hex'), '050100033e') // 0x3e = 62 characters: 56 + ".onion"
    assert.equal(request.subarray(5, 5 + 62).toString('ascii'), ONION)
    assert.equal(request.subarray(5 + 62).toString('hex'), '0019')
    assert.equal(request.length, 7 + 62)
  })

  it('CONNECT edge cases', () => {
    assert.equal(socksConnectRequest('a', 65535).toString('hex'), '050100030161ffff')
    assert.equal(socksConnectRequest('h'.repeat(255), 587).length, 7 + 255)
    assert.throws(() => socksConnectRequest('', 25), /1 to 255 bytes/)
    assert.throws(() => socksConnectRequest('h'.repeat(256), 25), /1 to 255 bytes/)
    assert.throws(() => socksConnectRequest('a', 65536), RangeError)
    assert.throws(() => socksConnectRequest('a', -1), RangeError)
  })
})

describe('CONNECT reply length', () => {
  const reply = (atyp: number, address: number[]): Buffer => Buffer.from([5, 0, 0, atyp, ...address, 0, 25])
  const table: Array<[string, Buffer, number]> = [
    ['nothing yet', Buffer.alloc(0), 0],
    ['four bytes', Buffer.from([5, 0, 0, 1]), 0],
    ['IPv4, complete', reply(1, [127, 0, 0, 1]), 10],
    ['IPv4, one byte short', reply(1, [127, 0, 0, 1]).subarray(0, 9), 0],
    ['IPv4, with data after it', Buffer.concat([reply(1, [0, 0, 0, 0]), Buffer.from('220 hello\r\n')]), 10],
    ['IPv6, complete', reply(4, Array(16).fill(0)), 22],
    ['IPv6, short', reply(4, Array(16).fill(0)).subarray(0, 21), 0],
    ['domain, complete', reply(3, [3, 0x61, 0x62, 0x63]), 10],
    ['domain, short', reply(3, [3, 0x61, 0x62, 0x63]).subarray(0, 9), 0],
    ['unknown address type: read the code and fail', reply(9, [0, 0, 0, 0]), 4],
    // tor's onion-service failure (0xf0) with a zero IPv4 address
    ['tor extended error', Buffer.from([5, 0xf0, 0, 1, 0, 0, 0, 0, 0, 0]), 10]
  ]
  for (const [name, data, length] of table) it(name, () => { assert.equal(socksConnectReplyLength(data), length) })
})

describe('reply codes', () => {
  it('RFC 1928 6 and tor ExtendedErrors, with whether waiting helps', () => {
    const transient = Object.entries(SOCKS_REPLIES).filter(([, r]) => r.transient).map(([code]) => Number(code))
    const permanent = Object.entries(SOCKS_REPLIES).filter(([, r]) => !r.transient).map(([code]) => Number(code))
    assert.deepEqual(transient, [0x01, 0x03, 0x04, 0x05, 0x06, 0xf0, 0xf1, 0xf2, 0xf3, 0xf7])
    assert.deepEqual(permanent, [0x02, 0x07, 0x08, 0xf4, 0xf5, 0xf6])
    assert.equal(SOCKS_REPLIES[0x00], undefined) // success is not a failure
    assert.match(SOCKS_REPLIES[0xf0]!.text, /descriptor not found/)
    assert.match(SOCKS_REPLIES[0xf6]!.text, /invalid/)
  })
})
