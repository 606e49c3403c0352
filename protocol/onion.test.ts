// Onion addresses and keys: published vectors (RFC 8032 7.1, the Tor Project's own onion),
// fixed seeds, hostile addresses, and an independent BigInt Ed25519 that checks the expanded
// key tor gets signs exactly like the seed does.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import {
  expandedSecretKey, generateOnionKey, isOnionAddress, isSmallOrderPublicKey, onionAddressFromPublicKey, onionKeyFromSeed,
  OnionAddressError, publicKeyFromOnionAddress, signWithOnionKey, verifyOnionSignature
} from './onion.ts'
import { base32Decode, base32Encode } from './base32.ts'

const counting = (first: number): Buffer => Buffer.from(Array.from({ length: 32 }, (_, i) => first + i))
const hex = (text: string): Buffer => Buffer.from(text, 'hex')

// RFC 8032 7.1, TEST 1 and TEST 2.
const RFC8032 = [
  {
    seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    onion: '25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid'
  },
  {
    seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
    onion: undefined
  }
]

// The Tor Project's published onion (www.torproject.org).
const TOR_PROJECT_ONION = '2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid'

// Seed 0x00..0x1f (also "key client" in spec/smtorp.md).
const SEED_0 = {
  publicKey: '03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8',
  address: 'aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4bqead',
  expanded: '3894eea49c580aef816935762be049559d6d1440dede12e6a125f1841fff8e6fa9d71862a3e5746b571be3d187b0041046f52ebd850c7cbd5fde8ee38473b649'
}

// A small, slow, independent Ed25519 (RFC 8032 5.1) for cross-checks only.
const ed25519 = (() => {
  const p = 2n ** 255n - 19n
  const L = 2n ** 252n + 27742317777372353535851937790883648493n
  const mod = (a: bigint, m = p): bigint => ((a % m) + m) % m
  const pow = (b: bigint, e: bigint): bigint => {
    let r = 1n
    b = mod(b)
    for (; e > 0n; e >>= 1n, b = b * b % p) if ((e & 1n) === 1n) r = r * b % p
    return r
  }
  const inv = (a: bigint): bigint => pow(a, p - 2n)
  const d = mod(-121665n * inv(121666n))
  const sqrtM1 = pow(2n, (p - 1n) / 4n)
  type Point = [bigint, bigint, bigint, bigint] // extended coordinates X, Y, Z, T
  const add = ([x1, y1, z1, t1]: Point, [x2, y2, z2, t2]: Point): Point => {
    const a = mod((y1 - x1) * (y2 - x2)); const b = mod((y1 + x1) * (y2 + x2))
    const c = mod(2n * d * t1 * t2); const dd = mod(2n * z1 * z2)
    const e = b - a; const f = dd - c; const g = dd + c; const h = b + a
    return [mod(e * f), mod(g * h), mod(f * g), mod(e * h)]
  }
  const multiply = (s: bigint, point: Point): Point => {
    let result: Point = [0n, 1n, 1n, 0n]
    for (; s > 0n; s >>= 1n, point = add(point, point)) if ((s & 1n) === 1n) result = add(result, point)
    return result
  }
  const encode = ([x, y, z]: Point): Buffer => {
    const zi = inv(z); const ax = mod(x * zi); const ay = mod(y * zi)
    const out = Buffer.from(ay.toString(16).padStart(64, '0'), 'hex').reverse()
    out[31]! |= Number(ax & 1n) << 7
    return out
  }
  const littleEndian = (bytes: Buffer): bigint => BigInt(`0x${Buffer.from(bytes).reverse().toString('hex') || '0'}`)
  const by = 4n * inv(5n) % p
  const recoverX = (y: bigint, sign: bigint): bigint | undefined => {
    const x2 = mod((y * y - 1n) * inv(d * y * y + 1n))
    if (x2 === 0n) return sign === 0n ? 0n : undefined
    let x = pow(x2, (p + 3n) / 8n)
    if (mod(x * x - x2) !== 0n) x = x * sqrtM1 % p
    if (mod(x * x - x2) !== 0n) return undefined
    return (x & 1n) === sign ? x : p - x
  }
  const base: Point = [recoverX(by, 0n)!, by, 1n, mod(recoverX(by, 0n)! * by)]
  const sha512 = (...parts: Buffer[]): bigint => littleEndian(createHash('sha512').update(Buffer.concat(parts)).digest())
  const torsion = (): Point[] => {
    // y of the order-8 points solves d y^4 + 2 y^2 - 1 = 0 (doubling lands on y = 0).
    const s = pow(mod(1n + d), (p + 3n) / 8n)
    const root = mod(s * s - 1n - d) === 0n ? s : s * sqrtM1 % p
    const y8 = [(-1n + root), (-1n - root)].map(v => mod(v * inv(d))).map(y2 => {
      const y = pow(y2, (p + 3n) / 8n)
      return mod(y * y - y2) === 0n ? y : mod(y * sqrtM1) * mod(y * sqrtM1) % p === y2 ? y * sqrtM1 % p : undefined
    }).find(y => y !== undefined)!
    const x8 = recoverX(y8, 0n)!
    const g: Point = [x8, y8, 1n, mod(x8 * y8)]
    return Array.from({ length: 8 }, (_, i) => multiply(BigInt(i), g))
  }
  return {
    publicKeyFromScalar: (scalar: Buffer): Buffer => encode(multiply(littleEndian(scalar), base)),
    signExpanded (expanded: Buffer, publicKey: Buffer, message: Buffer): Buffer {
      const a = littleEndian(expanded.subarray(0, 32))
      const r = mod(sha512(expanded.subarray(32), message), L)
      const R = encode(multiply(r, base))
      const k = mod(sha512(R, publicKey, message), L)
      const S = mod(r + k * a, L)
      return Buffer.concat([R, Buffer.from(S.toString(16).padStart(64, '0'), 'hex').reverse()])
    },
    /** The 8 torsion points, then other encodings of them: x sign bit set, y + p. */
    smallOrderEncodings (): Buffer[] {
      const points = torsion().map(encode)
      const signFlipped = points.map(b => { const c = Buffer.from(b); c[31]! ^= 0x80; return c })
      const plusP = points.map(b => littleEndian(b) & ((1n << 255n) - 1n)).filter(y => y + p < 2n ** 255n)
        .map(y => Buffer.from((y + p).toString(16).padStart(64, '0'), 'hex').reverse())
      return [...points, ...signFlipped, ...plusP]
    },
    /** Plain (cofactorless) RFC 8032 5.1.7 verification, with no check on the key's order. */
    rfc8032Accepts (publicKey: Buffer, message: Buffer, signature: Buffer): boolean {
      const decode = (bytes: Buffer): Point | undefined => {
        const y = littleEndian(bytes) & ((1n << 255n) - 1n)
        if (y >= p) return undefined
        const x = recoverX(y, BigInt(bytes[31]! >> 7))
        return x === undefined ? undefined : [x, y, 1n, mod(x * y)]
      }
      const A = decode(publicKey); const R = decode(signature.subarray(0, 32))
      const S = littleEndian(signature.subarray(32))
      if (A === undefined || R === undefined || S >= L) return false
      const k = mod(sha512(signature.subarray(0, 32), publicKey, message), L)
      return encode(multiply(S, base)).equals(encode(add(R, multiply(k, A))))
    }
  }
})()

describe('onion addresses of known keys', () => {
  for (const vector of RFC8032) {
    it(`RFC 8032 seed ${vector.seed.slice(0, 8)}… gives the published public key and signature`, () => {
      const key = onionKeyFromSeed(hex(vector.seed))
      assert.equal(key.publicKey.toString('hex'), vector.publicKey)
      assert.equal(signWithOnionKey(key.seed, hex(vector.message)).toString('hex'), vector.signature)
      assert.equal(verifyOnionSignature(key.publicKey, hex(vector.message), hex(vector.signature)), true)
      if (vector.onion !== undefined) assert.equal(key.address, vector.onion)
    })
  }

  it('seed 0x00..0x1f gives its fixed public key, address and expanded key', () => {
    const key = onionKeyFromSeed(counting(0))
    assert.equal(key.publicKey.toString('hex'), SEED_0.publicKey)
    assert.equal(key.address, SEED_0.address)
    assert.equal(expandedSecretKey(counting(0)).toString('hex'), SEED_0.expanded)
    assert.deepEqual(publicKeyFromOnionAddress(SEED_0.address), key.publicKey)
  })

  it("the Tor Project's published onion parses, with or without .onion, in any case", () => {
    const publicKey = publicKeyFromOnionAddress(TOR_PROJECT_ONION)
    assert.equal(publicKey.toString('hex'), 'd1b38b83a83b3ed918c5bb69dd444ad56bc8d5835a914de73447474e5f02591b')
    assert.equal(onionAddressFromPublicKey(publicKey), TOR_PROJECT_ONION)
    assert.deepEqual(publicKeyFromOnionAddress(`${TOR_PROJECT_ONION}.onion`), publicKey)
    assert.deepEqual(publicKeyFromOnionAddress(TOR_PROJECT_ONION.toUpperCase()), publicKey)
  })

  it('the address layout is base32(pubkey | SHA3-256(".onion checksum" | pubkey | 0x03)[:2] | 0x03)', () => {
    const bytes = base32Decode(TOR_PROJECT_ONION)
    assert.equal(bytes.length, 35)
    assert.equal(bytes[34], 3)
    const sum = createHash('sha3-256').update('.onion checksum').update(bytes.subarray(0, 32)).update(Buffer.from([3])).digest()
    assert.deepEqual(bytes.subarray(32, 34), sum.subarray(0, 2))
  })
})

describe('refused onion addresses', () => {
  const flip = (text: string, at: number): string => text.slice(0, at) + (text[at] === 'a' ? 'b' : 'a') + text.slice(at + 1)
  // A valid key and checksum with another version byte.
  const version2 = base32Encode(Buffer.concat([base32Decode(TOR_PROJECT_ONION).subarray(0, 34), Buffer.from([2])]))
  const table: Array<[string, string, RegExp]> = [
    ['one character of the key flipped', flip(TOR_PROJECT_ONION, 0), /checksum/],
    ['one character of the checksum flipped', flip(TOR_PROJECT_ONION, 52), /checksum|version/],
    ['last character changed (version)', `${TOR_PROJECT_ONION.slice(0, 55)}a`, /version|checksum/],
    ['version byte 2', version2, /version/],
    ['55 characters', TOR_PROJECT_ONION.slice(1), /56 base32/],
    ['57 characters', `${TOR_PROJECT_ONION}a`, /56 base32/],
    ['a v2 address', 'expyuzz4wqqyqhjn', /56 base32/],
    ['a character outside base32 (0, 1, 8, 9)', `${TOR_PROJECT_ONION.slice(0, 10)}1${TOR_PROJECT_ONION.slice(11)}`, /56 base32/],
    ['padding', `${TOR_PROJECT_ONION.slice(0, 55)}=`, /56 base32/],
    ['a subdomain', `www.${TOR_PROJECT_ONION}.onion`, /56 base32/],
    ['a trailing dot', `${TOR_PROJECT_ONION}.onion.`, /56 base32/],
    ['white space', ` ${TOR_PROJECT_ONION}`, /56 base32/],
    ['empty', '', /56 base32/]
  ]
  for (const [name, address, error] of table) {
    it(name, () => {
      assert.throws(() => publicKeyFromOnionAddress(address), (err: Error) => err instanceof OnionAddressError && error.test(err.message))
      assert.equal(isOnionAddress(address), false)
    })
  }
  it('the 16-bit checksum catches all but one of the 1736 one-character typos of this address', () => {
    // The checksum is 2 bytes: about 1 in 65536 typos is another valid address (another key).
    // For this address exactly one exists; a user who mistypes it reaches someone else.
    const valid: string[] = []
    for (let i = 0; i < 56; i++) {
      for (const c of 'abcdefghijklmnopqrstuvwxyz234567') {
        if (c === TOR_PROJECT_ONION[i]) continue
        const typo = TOR_PROJECT_ONION.slice(0, i) + c + TOR_PROJECT_ONION.slice(i + 1)
        if (isOnionAddress(typo)) valid.push(typo)
      }
    }
    assert.deepEqual(valid, ['23zyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid'])
  })
})

describe('keys', () => {
  it('a generated key signs, and its own address verifies it', () => {
    const key = generateOnionKey()
    assert.match(key.address, /^[a-z2-7]{55}d$/) // version 3 in the last 5 bits makes the last character "d"
    const message = Buffer.from('hello')
    const signature = signWithOnionKey(key.seed, message)
    assert.equal(verifyOnionSignature(publicKeyFromOnionAddress(key.address), message, signature), true)
    assert.equal(verifyOnionSignature(key.publicKey, Buffer.from('hellO'), signature), false)
    signature[0]! ^= 1
    assert.equal(verifyOnionSignature(key.publicKey, message, signature), false)
  })

  it('wrong sizes are refused, not truncated', () => {
    assert.throws(() => onionKeyFromSeed(Buffer.alloc(31)), OnionAddressError)
    assert.throws(() => onionKeyFromSeed(Buffer.alloc(64)), OnionAddressError)
    assert.throws(() => expandedSecretKey(Buffer.alloc(33)), OnionAddressError)
    assert.throws(() => onionAddressFromPublicKey(Buffer.alloc(31)), OnionAddressError)
    const key = onionKeyFromSeed(counting(0))
    const signature = signWithOnionKey(key.seed, Buffer.alloc(0))
    assert.equal(verifyOnionSignature(key.publicKey.subarray(0, 31), Buffer.alloc(0), signature), false)
    assert.equal(verifyOnionSignature(key.publicKey, Buffer.alloc(0), signature.subarray(0, 63)), false)
    assert.equal(verifyOnionSignature(key.publicKey, Buffer.alloc(0), Buffer.concat([signature, Buffer.alloc(1)])), false)
  })

  it('the expanded key is SHA-512 of the seed with the scalar clamped (RFC 8032 5.1.5)', () => {
    for (const seed of [counting(0), counting(0x20), hex(RFC8032[0]!.seed)]) {
      const expanded = expandedSecretKey(seed)
      const h = createHash('sha512').update(seed).digest()
      assert.equal(expanded.length, 64)
      assert.equal(expanded[0]! & 7, 0)
      assert.equal(expanded[31]! & 0xc0, 0x40)
      assert.deepEqual(expanded.subarray(1, 31), h.subarray(1, 31))
      assert.deepEqual(expanded.subarray(32), h.subarray(32))
    }
  })

  it('a signature made from the expanded key alone (as tor signs) equals the one made from the seed', () => {
    for (const seed of [counting(0), counting(0x20), hex(RFC8032[0]!.seed)]) {
      const key = onionKeyFromSeed(seed)
      const expanded = expandedSecretKey(seed)
      assert.deepEqual(ed25519.publicKeyFromScalar(expanded.subarray(0, 32)), key.publicKey)
      const message = Buffer.from('SMTorP')
      assert.deepEqual(ed25519.signExpanded(expanded, key.publicKey, message), signWithOnionKey(seed, message))
    }
  })
})

describe('small-order public keys', () => {
  // Regression: node's verify (OpenSSL) accepts R = a small-order point, S = 0 for a
  // small-order public key, so anyone could "prove" such an onion address.
  const keys = ed25519.smallOrderEncodings()
  it('there are 8 small-order points, each detected in every encoding', () => {
    assert.equal(new Set(keys.filter((_, i) => i < 8).map(k => k.toString('hex'))).size, 8)
    for (const key of keys) assert.equal(isSmallOrderPublicKey(key), true, key.toString('hex'))
  })
  it('ordinary keys are not small-order', () => {
    for (const seed of [counting(0), counting(0x20), hex(RFC8032[0]!.seed)]) assert.equal(isSmallOrderPublicKey(onionKeyFromSeed(seed).publicKey), false)
    assert.equal(isSmallOrderPublicKey(publicKeyFromOnionAddress(TOR_PROJECT_ONION)), false)
  })
  it('a forged signature under a small-order public key does not verify', () => {
    const message = Buffer.from('any message at all')
    let forgeries = 0
    for (const key of keys.slice(0, 8)) {
      for (const r of keys.slice(0, 8)) {
        const forged = Buffer.concat([r, Buffer.alloc(32)]) // R small-order, S = 0
        if (ed25519.rfc8032Accepts(key, message, forged)) forgeries++
        assert.equal(verifyOnionSignature(key, message, forged), false)
      }
    }
    // Some of these pass RFC 8032 verification (for the identity key, every one with R = the
    // identity does). OpenSSL 3.0 (Node 20, 22) accepts them; OpenSSL 3.5 (Node 24) refuses them.
    assert.ok(forgeries > 0, `plain RFC 8032 verification accepts the forgeries (${forgeries})`)
  })
})

