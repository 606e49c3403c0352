// The test vectors of spec/storage.md ("Test vectors") against the vault's code, read out of
// the spec itself so that the document and the implementation cannot drift apart. Expected
// values come from the spec only (never from scripts/storage-vectors.ts); where the spec
// states a rule (a label, a layout, a checksum), the rule is also checked independently of
// the code, with node:crypto. Finally a whole vault directory is built from the vectors alone
// and read with the node's own Vault.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, createHmac, createPrivateKey, createPublicKey, hkdfSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import argon2 from 'argon2'
import { ClassicLevel } from 'classic-level'
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core'
import { associatedData, deriveKey, mac, open, TamperError, VaultKeys } from '../node/vault/crypto.ts'
import {
  formatRecoveryCode, KeySlotError, openSlots, parseRecoveryCode, readKeySlots, slotAssociatedData,
  KEY_SLOTS_BACKUP_FILE, KEY_SLOTS_FILE, type KeySlotsFile
} from '../node/vault/key-slots.ts'
import { arrivalPublicKeyOf, openArrival } from '../node/vault/arrivals.ts'
import { erasureCodec, shardSize } from '../node/vault/erasure/index.ts'
import { decodeLocator, encodeLocator, shardStore, type Locator } from '../node/vault/shards/index.ts'
import { recordHeader, recordProblem } from '../protocol/shard-record.ts'
import { vault as makeVault, VaultError } from '../node/vault/index.ts'
import { documentTerms, searchIndex, type SearchText } from '../node/vault/search/index.ts'

import { readSpecVectors } from './harness/spec-vectors.ts'
import { summarizeHeaders } from '../protocol/message.ts'

const SPEC = new URL('../spec/storage.md', import.meta.url)
const TEXT = readFileSync(SPEC, 'utf8')

const { sections, get, bytes } = readSpecVectors(SPEC)
const num = (section: string, name: string): number => Number(get(section, name))
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** The ```json block of the key slots file. */
function specKeySlotsText (): string {
  const block = /^```json\n(\{\n  "format": "smtorp-vault-key-slots"[\s\S]*?)^```$/m.exec(TEXT)
  assert.ok(block !== null, 'spec/storage.md has the key slots file in a ```json block')
  return block[1]!
}

const master = bytes('keys', 'master-key')
const vaultId = bytes('keys', 'vault-id')
const keys = new VaultKeys(master, vaultId)

/** The X25519 public key of a raw private key (RFC 7748), by node:crypto, not by the code under test. */
function x25519PublicKey (privateKey: Buffer): Buffer {
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), privateKey])
  return Buffer.from(createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })).export({ format: 'jwk' }).x!, 'base64url')
}

/** GF(2^8) product with the polynomial 0x11D, by shift and add (section 7.1). */
function gfMul (a: number, b: number): number {
  let product = 0
  for (let bit = 0, x = b; bit < 8; bit++) {
    if (a & (1 << bit)) product ^= x
    x = (x << 1) ^ (x & 0x80 ? 0x11d : 0)
  }
  return product
}

async function argon2idKek (secret: Buffer, section: string): Promise<Buffer> {
  return await argon2.hash(secret, {
    type: argon2.argon2id, raw: true, hashLength: 32, version: 0x13, salt: bytes(section, 'salt'),
    memoryCost: num(section, 'memory-kib'), timeCost: num(section, 'iterations'), parallelism: num(section, 'parallelism')
  })
}

/** Document n of the [search] section. */
const searchDoc = (n: number): SearchText => ({
  from: get('search', `doc-${n}-from`), to: get('search', `doc-${n}-to`), subject: get('search', `doc-${n}-subject`), body: get('search', `doc-${n}-body`)
})

const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() })
const ab = (b: Uint8Array): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer

describe('spec/storage.md test vectors', () => {
  it('has every section', () => {
    assert.deepEqual([...sections.keys()], [
      'keys', 'seal message', 'seal meta', 'seal record', 'slot passphrase', 'slot recovery', 'arrival key', 'arrival',
      'erasure wasm 4+2', 'records', 'locator', 'locator wide', 'search', 'search index', 'search index inline-bytes 0'
    ])
  })

  it('[keys]: every HKDF-SHA256 subkey, with the info label the spec gives', () => {
    const derived: Record<string, Buffer> = {
      object: keys.object, record: keys.record, 'search-term': keys.searchTerm, 'search-postings': keys.searchPostings, queue: keys.queue, 'arrival-key': keys.arrivalKey
    }
    for (const [name, key] of Object.entries(derived)) {
      const info = get('keys', `${name}-info`)
      assert.equal(info, `smtorp vault v1 ${name.replace('-', ' ')}`)
      const want = get('keys', name)
      // The rule (RFC 5869, salt = vault id), by node:crypto; then the code's two ways.
      assert.equal(hex(Buffer.from(hkdfSync('sha256', master, vaultId, Buffer.from(info, 'utf8'), 32))), want, `${name}: HKDF by the rule`)
      assert.equal(hex(deriveKey(master, vaultId, info)), want, `${name}: deriveKey`)
      assert.equal(hex(key), want, `${name}: VaultKeys`)
    }
    const objectId = bytes('keys', 'object-id')
    const info = bytes('keys', 'object-key-info')
    assert.deepEqual(info, Buffer.concat([Buffer.from('smtorp vault v1 object key\0', 'utf8'), objectId]))
    const want = get('keys', 'object-key')
    assert.equal(hex(Buffer.from(hkdfSync('sha256', keys.object, Buffer.alloc(0), info, 32))), want)
    // RFC 5869 2.2: an empty salt is the same as HashLen zero bytes.
    assert.equal(hex(Buffer.from(hkdfSync('sha256', keys.object, Buffer.alloc(32), info, 32))), want)
    assert.equal(hex(keys.objectKey(objectId)), want)
  })

  /** A [seal ...] section: layout, associated data and that the code opens it (and only with that AD). */
  function checkSeal (section: string, key: Buffer, kind: string, id: Buffer | string): Buffer {
    const ad = bytes(section, 'associated-data')
    assert.deepEqual(ad, Buffer.concat([Buffer.from(`smtorp-vault-1\0${kind}\0`, 'utf8'), typeof id === 'string' ? Buffer.from(id, 'utf8') : id]), 'ad by the rule')
    assert.deepEqual(associatedData(kind, id), ad, 'ad by the code')
    const sealed = bytes(section, 'sealed')
    const plaintext = bytes(section, 'plaintext')
    assert.equal(sealed[0], 1, 'version byte')
    assert.deepEqual(sealed.subarray(1, 13), bytes(section, 'nonce'), 'nonce after the version')
    assert.equal(sealed.length, plaintext.length + 29)
    assert.deepEqual(open(key, sealed, ad), plaintext)
    assert.throws(() => open(key, sealed, associatedData(kind === 'meta' ? 'record' : 'meta', id)), TamperError, 'another kind does not open')
    const flipped = Buffer.from(sealed)
    flipped[20]! ^= 1
    assert.throws(() => open(key, flipped, ad), TamperError, 'a flipped bit does not open')
    return plaintext
  }

  it('[seal message]: the message opens with its object key and ad("message", object id)', () => {
    assert.equal(get('seal message', 'key'), hex(keys.objectKey(bytes('keys', 'object-id'))))
    checkSeal('seal message', keys.objectKey(bytes('keys', 'object-id')), 'message', bytes('keys', 'object-id'))
  })

  it('[seal meta]: the metadata record opens with the record key and ad("meta", id), and names the object', () => {
    assert.equal(get('seal meta', 'key'), hex(keys.record))
    const meta = JSON.parse(checkSeal('seal meta', keys.record, 'meta', '0000000000000001').toString('utf8')) as Record<string, unknown>
    assert.deepEqual(Object.keys(meta), ['id', 'folder', 'messageId', 'from', 'to', 'receivedAt', 'size', 'flags', 'subject', 'headerFrom', 'thread', 'objectId'], 'members in the order of the spec table')
    const { date: _none, ...summary } = summarizeHeaders(bytes('seal message', 'plaintext'))
    assert.deepEqual({ subject: meta.subject, headerFrom: meta.headerFrom, thread: meta.thread }, { subject: summary.subject, headerFrom: summary.from, thread: summary.thread }, 'the header summary of the message')
    assert.equal(meta.id, '0000000000000001')
    assert.equal(bytes('seal meta', 'index-key').toString('latin1'), `m${meta.id as string}`)
    assert.equal(meta.objectId, get('keys', 'object-id'))
    assert.equal(meta.size, bytes('seal message', 'plaintext').length)
  })

  it('[seal record]: the record name is HMAC-SHA256(record key, kind NUL name)[0..16], the value opens with ad("record", name)', () => {
    const name = bytes('seal record', 'name-mac')
    const kindAndName = bytes('seal record', 'kind-and-name')
    assert.equal(kindAndName.toString('utf8'), 'settings\0signature')
    assert.deepEqual(mac(keys.record, kindAndName.toString('utf8')), name)
    assert.equal(name.length, 16)
    assert.deepEqual(bytes('seal record', 'index-key'), Buffer.concat([Buffer.from('r'), name]))
    checkSeal('seal record', keys.record, 'record', name)
  })

  it('[slot passphrase]: NFC UTF-8 → Argon2id → KEK → wrapped key → master key', async () => {
    const s = 'slot passphrase'
    const text = get(s, 'passphrase-text')
    const secret = bytes(s, 'passphrase-utf8-nfc')
    assert.deepEqual(Buffer.from(text.normalize('NFC'), 'utf8'), secret)
    assert.deepEqual(Buffer.from(text.normalize('NFD').normalize('NFC'), 'utf8'), secret, 'the NFD spelling normalises to the same bytes')
    const kek = await argon2idKek(secret, s)
    assert.equal(hex(kek), get(s, 'kek'))
    const ad = bytes(s, 'associated-data')
    assert.deepEqual(ad, Buffer.concat([Buffer.from('smtorp-vault-key-slot-1\0passphrase\0' + '0\0', 'utf8'), vaultId]), 'slot ad by the rule')
    assert.deepEqual(slotAssociatedData(vaultId, { id: 0, type: 'passphrase' }), ad, 'slot ad by the code')
    const wrapped = bytes(s, 'wrapped-key')
    assert.deepEqual(wrapped.subarray(1, 13), bytes(s, 'nonce'))
    assert.deepEqual(open(kek, wrapped, ad), master)
    assert.throws(() => open(kek, wrapped, slotAssociatedData(vaultId, { id: 1, type: 'passphrase' })), TamperError, 'bound to the slot id')
  })

  it('[slot recovery]: the recovery code parses to 20 bytes; Argon2id → KEK → wrapped key → master key', async () => {
    const s = 'slot recovery'
    const secret = bytes(s, 'secret')
    assert.equal(secret.length, 20)
    const code = get(s, 'recovery-code')
    assert.match(code, /^[A-Z2-7]{4}(-[A-Z2-7]{4}){7}$/, 'eight groups of four base32 characters')
    assert.equal(formatRecoveryCode(secret), code)
    assert.deepEqual(parseRecoveryCode(code), secret)
    assert.deepEqual(parseRecoveryCode(get(s, 'recovery-code-as-typed')), secret, 'any case, spaces and dashes')
    assert.throws(() => parseRecoveryCode(code.replace(/[A-Z]/, '0')), KeySlotError, '0 is not base32')
    assert.throws(() => parseRecoveryCode(code.slice(0, -1)), KeySlotError, '31 characters')
    const kek = await argon2idKek(secret, s)
    assert.equal(hex(kek), get(s, 'kek'))
    const ad = bytes(s, 'associated-data')
    assert.deepEqual(ad, Buffer.concat([Buffer.from('smtorp-vault-key-slot-1\0recovery\0' + '1\0', 'utf8'), vaultId]))
    assert.deepEqual(slotAssociatedData(vaultId, { id: 1, type: 'recovery' }), ad)
    assert.deepEqual(bytes(s, 'wrapped-key').subarray(1, 13), bytes(s, 'nonce'))
    assert.deepEqual(open(kek, bytes(s, 'wrapped-key'), ad), master)
  })

  it('the key slots file: checksum rule, fields, and the code opens both slots', async () => {
    const text = specKeySlotsText()
    const file = JSON.parse(text) as KeySlotsFile & { checksum: string }
    const { checksum, ...rest } = file
    assert.equal(createHash('sha256').update(JSON.stringify(rest)).digest('hex'), checksum, 'SHA-256 of the compact JSON without checksum')
    // The same as the file's text without the checksum member and without white space.
    const stripped = text.replace(/,\n\s*"checksum": "[0-9a-f]{64}"/, '').replace(/\s+/g, '')
    assert.equal(createHash('sha256').update(stripped).digest('hex'), checksum, 'SHA-256 of the stripped text')
    assert.equal(Buffer.from(file.vaultId, 'base64').toString('hex'), get('keys', 'vault-id'))
    assert.equal(Buffer.from(file.arrivalPublicKey, 'base64').toString('hex'), get('arrival key', 'public-key'))
    assert.equal(Buffer.from(file.arrivalPrivateKey, 'base64').toString('hex'), get('arrival key', 'sealed-private-key'))
    const [pass, rec] = file.slots
    assert.equal(Buffer.from(pass!.wrappedKey, 'base64').toString('hex'), get('slot passphrase', 'wrapped-key'))
    assert.equal(Buffer.from(pass!.kdf.salt, 'base64').toString('hex'), get('slot passphrase', 'salt'))
    assert.equal(Buffer.from(rec!.wrappedKey, 'base64').toString('hex'), get('slot recovery', 'wrapped-key'))
    assert.equal(Buffer.from(rec!.kdf.salt, 'base64').toString('hex'), get('slot recovery', 'salt'))

    const dir = await mkdtemp(join(tmpdir(), 'smtorp-storage-vectors-'))
    try {
      await writeFile(join(dir, KEY_SLOTS_FILE), text)
      await writeFile(join(dir, KEY_SLOTS_BACKUP_FILE), text)
      const read = await readKeySlots(dir)
      assert.ok(read !== undefined)
      assert.deepEqual(await openSlots(read, 'passphrase', bytes('slot passphrase', 'passphrase-utf8-nfc')), master)
      assert.deepEqual(await openSlots(read, 'recovery', bytes('slot recovery', 'secret')), master)
      // One changed character: the checksum no longer matches, and the other copy is used and restored.
      await writeFile(join(dir, KEY_SLOTS_FILE), text.replace('"generation": 1', '"generation": 7'))
      assert.equal((await readKeySlots(dir))?.generation, 1)
      assert.equal(await readFile(join(dir, KEY_SLOTS_FILE), 'utf8'), text, 'the damaged copy is rewritten from the good one')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('[arrival key]: X25519 public key of the private key, and the private key sealed under the arrival key', async () => {
    const privateKey = bytes('arrival key', 'private-key')
    const publicKey = bytes('arrival key', 'public-key')
    assert.deepEqual(x25519PublicKey(privateKey), publicKey)
    const ad = bytes('arrival key', 'associated-data')
    assert.deepEqual(ad, associatedData('arrival private key', vaultId))
    assert.deepEqual(bytes('arrival key', 'sealed-private-key').subarray(1, 13), bytes('arrival key', 'nonce'))
    assert.deepEqual(open(keys.arrivalKey, bytes('arrival key', 'sealed-private-key'), ad), privateKey)
    assert.deepEqual(arrivalPublicKeyOf(privateKey), publicKey)
  })

  it('[arrival]: HPKE base mode with the spec\'s info and aad = object id; the code opens it into envelope and message', async () => {
    const s = 'arrival'
    const privateKey = bytes('arrival key', 'private-key')
    const objectId = bytes(s, 'object-id')
    const sealed = bytes(s, 'sealed')
    assert.equal(sealed[0], 1, 'version byte')
    assert.deepEqual(sealed.subarray(1, 33), bytes(s, 'enc'))
    assert.deepEqual(x25519PublicKey(bytes(s, 'ephemeral-private-key')), bytes(s, 'enc'), 'enc is the ephemeral public key')
    assert.equal(bytes(s, 'info').toString('utf8'), 'smtorp vault v1 arrival')
    assert.equal(bytes(s, 'index-key').toString('latin1'), 'a0000000000000002')
    // The plaintext layout: u32 envelope length | envelope JSON | message.
    const envelope = bytes(s, 'envelope')
    const message = bytes(s, 'message')
    const length = Buffer.alloc(4)
    length.writeUInt32BE(envelope.length)
    assert.deepEqual(bytes(s, 'plaintext'), Buffer.concat([length, envelope, message]))
    // RFC 9180 with the suite and info of the spec, by @hpke/core directly.
    const recipient = await suite.createRecipientContext({ recipientKey: await suite.kem.deserializePrivateKey(ab(privateKey)), enc: ab(sealed.subarray(1, 33)), info: ab(bytes(s, 'info')) })
    assert.deepEqual(Buffer.from(await recipient.open(ab(sealed.subarray(33)), ab(objectId))), bytes(s, 'plaintext'))
    assert.equal(suite.kem.id, 0x0020)
    assert.equal(suite.kdf.id, 0x0001)
    assert.equal(suite.aead.id, 0x0002)
    // The code.
    const opened = await openArrival(privateKey, objectId, sealed)
    assert.deepEqual(opened.envelope, JSON.parse(envelope.toString('utf8')))
    assert.deepEqual(Object.keys(opened.envelope), ['folder', 'from', 'to', 'messageId', 'flags', 'receivedAt'])
    assert.deepEqual(opened.raw, message)
    await assert.rejects(openArrival(privateKey, bytes('keys', 'object-id'), sealed), TamperError, 'bound to its object id')
  })

  it('[erasure wasm 4+2]: shard size, zero padding, the Backblaze parity rows, and the code\'s shards', async () => {
    const s = 'erasure wasm 4+2'
    const object = bytes('seal message', 'sealed')
    assert.equal(num(s, 'object-length'), object.length)
    const size = num(s, 'shard-size')
    assert.equal(size, Math.ceil(Math.ceil(Math.max(object.length, 1) / 4) / 8) * 8, 'the rule of section 7.1')
    assert.equal(shardSize(object.length, 4), size)
    const want = [0, 1, 2, 3, 4, 5].map((i) => bytes(s, `shard-${i}`))
    for (const shard of want) assert.equal(shard.length, size)
    const padded = Buffer.concat([object, Buffer.alloc(4 * size - object.length)])
    assert.deepEqual(Buffer.concat(want.slice(0, 4)), padded, 'data shards are the object, zero-padded')
    // Parity by the matrix rows of the spec, byte by byte over GF(2^8)/0x11D.
    for (const j of [0, 1]) {
      const row = bytes(s, `parity-row-${j}`)
      const parity = Buffer.alloc(size)
      for (let b = 0; b < size; b++) for (let c = 0; c < 4; c++) parity[b]! ^= gfMul(row[c]!, want[c]![b]!)
      assert.deepEqual(parity, want[4 + j], `parity ${j} from the spec's row`)
    }
    const codec = erasureCodec('wasm')
    assert.equal(codec.name, 'wasm')
    // The rows themselves, from the code: an object whose data shard c is all ones has
    // parity j equal to E[k + j][c] in every byte.
    for (let c = 0; c < 4; c++) {
      const unit = Buffer.alloc(32)
      unit.fill(1, c * 8, (c + 1) * 8)
      const parity = (await codec.encode(unit, 4, 2)).slice(4)
      for (const j of [0, 1]) assert.deepEqual(parity[j], Buffer.alloc(8, bytes(s, `parity-row-${j}`)[c]!), `parity row ${j}, column ${c}`)
    }
    const shards = await codec.encode(object, 4, 2)
    assert.deepEqual(shards.map(hex), want.map(hex))
    const rebuilt = await codec.reconstruct([undefined, want[1], undefined, want[3], want[4], want[5]], 4, 2)
    assert.deepEqual(rebuilt.map(hex), want.map(hex), 'two lost data shards rebuild')
  })

  it('[records]: each 72-byte header, by the code and by the layout of section 7.5', () => {
    const object = bytes('seal message', 'sealed')
    const objectId = bytes('records', 'object-id')
    assert.deepEqual(objectId, bytes('keys', 'object-id'))
    for (let index = 0; index < 6; index++) {
      const shard = bytes('erasure wasm 4+2', `shard-${index}`)
      const header = bytes('records', `header-${index}`)
      assert.equal(header.length, 72)
      const e = { k: 4, m: 2, index, objectId, objectLength: object.length, shardLength: shard.length }
      assert.deepEqual(recordHeader(e, shard), header, `header ${index} by the code`)
      // The layout, field by field.
      assert.equal(header.subarray(0, 4).toString('latin1'), 'SMTS')
      assert.deepEqual([...header.subarray(4, 8)], [1, 4, 2, index])
      assert.deepEqual(header.subarray(8, 24), objectId)
      assert.equal(header.readBigUInt64BE(24), BigInt(object.length))
      assert.equal(header.readUInt32BE(32), shard.length)
      assert.equal(header.readUInt32BE(36), 0)
      assert.deepEqual(header.subarray(40), createHash('sha256').update(header.subarray(0, 40)).update(shard).digest())
      const record = Buffer.concat([header, shard])
      assert.equal(recordProblem(record, e), undefined)
      record[72]! ^= 0x80
      assert.equal(recordProblem(record, e), 'checksum mismatch')
      assert.equal(recordProblem(Buffer.concat([header, shard]), { ...e, index: (index + 1) % 6 }), `record of shard index ${index}`)
    }
  })

  it('[locator] and [locator wide]: the code encodes and decodes the layout of section 7.8', () => {
    const object = bytes('seal message', 'sealed')
    const objectId = bytes('keys', 'object-id')
    assert.deepEqual(bytes('locator', 'index-key'), Buffer.concat([Buffer.from('o'), objectId]))
    const base = { objectId, objectLength: object.length, shardLength: num('erasure wasm 4+2', 'shard-size'), k: 4, m: 2 }
    const placesOf = (section: string): Locator['shards'] => get(section, 'places').split(',').map((p) => { const [segment, offset] = p.split('@').map(Number); return { segment: segment!, offset: offset! } })
    assert.deepEqual(placesOf('locator'), Array.from({ length: 6 }, () => ({ segment: 1, offset: 0 })), 'the vault test below puts every record at offset 0 of segment 1')
    for (const section of ['locator', 'locator wide']) {
      const places = placesOf(section)
      const want = bytes(section, 'locator')
      assert.equal(want.length, 31 + 12 * 6)
      assert.deepEqual(encodeLocator({ ...base, shards: places }), want, `${section}: encode`)
      const decoded = decodeLocator(want)
      assert.deepEqual({ ...decoded, objectId: hex(decoded.objectId) }, { ...base, objectId: hex(objectId), shards: places }, `${section}: decode`)
      // The layout, field by field.
      assert.deepEqual([...want.subarray(0, 3)], [1, 4, 2])
      assert.deepEqual(want.subarray(3, 19), objectId)
      assert.equal(want.readBigUInt64BE(19), BigInt(object.length))
      assert.equal(want.readUInt32BE(27), base.shardLength)
      places.forEach((p, i) => {
        assert.equal(want.readUInt32BE(31 + 12 * i), p.segment)
        assert.equal(want.readBigUInt64BE(35 + 12 * i), BigInt(p.offset))
      })
    }
  })

  it('[search]: term names are HMAC-SHA256(search term key, term)[0..16]; the terms of a document', () => {
    for (const [name, value] of sections.get('search')!) {
      if (!name.startsWith('term-name ')) continue
      const term = name.slice('term-name '.length)
      assert.equal(createHmac('sha256', keys.searchTerm).update(term, 'utf8').digest().subarray(0, 16).toString('hex'), value, `${term} by the rule`)
      assert.equal(hex(mac(keys.searchTerm, term)), value, `${term} by the code`)
    }
    for (const n of [1, 2, 3]) assert.deepEqual([...documentTerms(searchDoc(n))].sort(), get('search', `doc-${n}-terms`).split(' '), `terms of document ${n}`)
    const name = bytes('search', 'term-name *:hello')
    assert.deepEqual(bytes('search', 'head-key'), Buffer.concat([Buffer.from('x'), name]))
    assert.deepEqual(bytes('search', 'chunk-1-key'), Buffer.concat([Buffer.from('x'), name, Buffer.from('00000001', 'hex')]))
    assert.deepEqual(bytes('search', 'chunk-2-key'), Buffer.concat([Buffer.from('x'), name, Buffer.from('00000002', 'hex')]))
    assert.equal(bytes('search', 'state-key').toString('latin1'), 'Xs')
  })

  for (const [section, inlineBytes] of [['search index', undefined], ['search index inline-bytes 0', 0]] as const) {
    it(`[${section}]: the code writes these head, chunks and state for documents 1, 2 | 3, remove 2`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'smtorp-storage-search-'))
      const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
      try {
        await db.open()
        const index = searchIndex({ db, keys: { term: keys.searchTerm, postings: keys.searchPostings }, ...(inlineBytes !== undefined ? { inlineBytes } : {}) })
        await index.open()
        index.add(1, searchDoc(1))
        index.add(2, searchDoc(2))
        await index.flush()
        index.add(3, searchDoc(3))
        index.remove(2)
        await index.flush()
        const headKey = bytes('search', 'head-key')
        assert.equal(hex(open(keys.searchPostings, (await db.get(headKey))!, associatedData('search term', headKey))), get(section, 'head'))
        for (const gen of [1, 2]) {
          const key = bytes('search', `chunk-${gen}-key`)
          const value = await db.get(key)
          const want = get(section, `chunk-${gen}`)
          if (want === 'none') assert.equal(value, undefined, `no chunk ${gen}`)
          else assert.equal(hex(open(keys.searchPostings, value!, associatedData('search postings', key))), want, `chunk ${gen}`)
        }
        const stateKey = bytes('search', 'state-key')
        const state = open(keys.searchPostings, (await db.get(stateKey))!, associatedData('search state', stateKey))
        assert.equal(hex(state), get(section, 'state'))
        assert.equal(state[0], 1, 'the state starts with the format')
        assert.deepEqual(await index.search('hello'), [3, 1])
        await index.close()
      } finally {
        await db.close()
        await rm(dir, { recursive: true, force: true })
      }
    })
  }
})

describe('a vault directory built from the vectors alone', () => {
  let dir: string
  const msgObjectId = bytes('keys', 'object-id')
  const arrivalObjectId = bytes('arrival', 'object-id')

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smtorp-storage-vault-'))
    await mkdir(dir, { mode: 0o700, recursive: true })
    const slots = specKeySlotsText()
    await writeFile(join(dir, 'key-slots.json'), slots, { mode: 0o600 })
    await writeFile(join(dir, 'key-slots.backup.json'), slots, { mode: 0o600 })
    // The shard store: FORMAT, CODEC, and the message's six records, each at offset 0 of segment 1 of its column.
    const shards = join(dir, 'shards')
    await mkdir(shards)
    await writeFile(join(shards, 'CODEC'), 'wasm\n')
    await writeFile(join(shards, 'FORMAT'), 'smtorp-shards 1 k=4 m=2\n')
    for (let i = 0; i < 6; i++) {
      await mkdir(join(shards, `c0${i}`))
      await writeFile(join(shards, `c0${i}`, '00000001.seg'), Buffer.concat([bytes('records', `header-${i}`), bytes('erasure wasm 4+2', `shard-${i}`)]))
    }
    // The arrival's shards are written by the code's shard store (its records are not vectors), after the message's.
    const store = shardStore({ dir: shards, k: 4, m: 2, codec: erasureCodec('wasm') })
    await store.open()
    const arrivalLocator = await store.put(arrivalObjectId, bytes('arrival', 'sealed'))
    await store.close()
    assert.deepEqual(arrivalLocator.shards, Array.from({ length: 6 }, () => ({ segment: 1, offset: 72 + num('erasure wasm 4+2', 'shard-size') })), 'appended after the message\'s records')
    // The index.
    const db = new ClassicLevel<Buffer, Buffer>(join(dir, 'index'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open()
    await db.batch([
      { type: 'put', key: Buffer.from('F'), value: Buffer.from('1') },
      { type: 'put', key: Buffer.from('N'), value: Buffer.from('3') },
      { type: 'put', key: bytes('seal meta', 'index-key'), value: bytes('seal meta', 'sealed') },
      { type: 'put', key: bytes('locator', 'index-key'), value: bytes('locator', 'locator') },
      { type: 'put', key: bytes('arrival', 'index-key'), value: arrivalObjectId },
      { type: 'put', key: Buffer.concat([Buffer.from('o'), arrivalObjectId]), value: encodeLocator(arrivalLocator) },
      { type: 'put', key: bytes('seal record', 'index-key'), value: bytes('seal record', 'sealed') }
    ], { sync: true })
    await db.close()
  })

  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('unlocks with the recovery code as typed, reads the message and the record, and files the arrival', async () => {
    const v = makeVault({ dir })
    await v.open()
    try {
      assert.equal(v.state(), 'locked')
      await assert.rejects(v.unlock({ passphrase: 'not the passphrase' }), VaultError)
      await v.unlock({ recoveryCode: get('slot recovery', 'recovery-code-as-typed') })
      const meta = JSON.parse(bytes('seal meta', 'plaintext').toString('utf8')) as Record<string, unknown>
      const message = await v.get('0000000000000001')
      assert.ok(message !== undefined)
      assert.deepEqual(message.raw, bytes('seal message', 'plaintext'))
      assert.deepEqual({ folder: message.folder, messageId: message.messageId, from: message.from, to: message.to, receivedAt: message.receivedAt, size: message.size, flags: message.flags },
        { folder: meta.folder, messageId: meta.messageId, from: meta.from, to: meta.to, receivedAt: meta.receivedAt, size: meta.size, flags: meta.flags })
      assert.deepEqual(await v.getRecord('settings', 'signature'), bytes('seal record', 'plaintext'))
      // The arrival was filed at unlock under its own id, from its envelope.
      const envelope = JSON.parse(bytes('arrival', 'envelope').toString('utf8')) as Record<string, unknown>
      const filed = await v.get('0000000000000002')
      assert.ok(filed !== undefined)
      assert.deepEqual(filed.raw, bytes('arrival', 'message'))
      assert.deepEqual({ folder: filed.folder, messageId: filed.messageId, from: filed.from, to: filed.to, receivedAt: filed.receivedAt, flags: filed.flags },
        { folder: envelope.folder, messageId: envelope.messageId, from: envelope.from, to: envelope.to, receivedAt: envelope.receivedAt, flags: envelope.flags })
      assert.deepEqual((await v.list('Inbox')).map((m) => m.id), ['0000000000000001', '0000000000000002'])
      await v.lock()
      // The passphrase, spelt in NFD: unlocking normalises it to NFC.
      await v.unlock({ passphrase: get('slot passphrase', 'passphrase-text').normalize('NFD') })
      assert.equal(v.state(), 'unlocked')
    } finally {
      await v.close()
    }
    const db = new ClassicLevel<Buffer, Buffer>(join(dir, 'index'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open()
    try {
      assert.deepEqual(await db.keys({ gte: Buffer.from('a'), lt: Buffer.from('b') }).all(), [], 'no arrival left after filing')
      assert.equal(await db.get(Buffer.concat([Buffer.from('o'), arrivalObjectId])), undefined, 'the arrival\'s locator is gone')
      assert.ok(await db.get(bytes('locator', 'index-key')) !== undefined)
    } finally {
      await db.close()
    }
  })

  it('rebuilds the message from the spec\'s parity shards when two data shard files are gone', async () => {
    await rm(join(dir, 'shards', 'c00', '00000001.seg'))
    await rm(join(dir, 'shards', 'c02', '00000001.seg'))
    const v = makeVault({ dir })
    await v.open()
    try {
      await v.unlock({ passphrase: get('slot passphrase', 'passphrase-text') })
      assert.deepEqual((await v.get('0000000000000001'))?.raw, bytes('seal message', 'plaintext'))
    } finally {
      await v.close()
    }
    assert.deepEqual(msgObjectId, bytes('locator', 'index-key').subarray(1))
  })
})
