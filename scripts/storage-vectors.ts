// Prints the test vectors of spec/storage.md ("Test vectors"), computed from fixed inputs by
// the vault's code (node/vault/) and, where the code draws random numbers (nonces, the HPKE
// ephemeral key), by node:crypto and @hpke/core with those numbers fixed. Paste the output
// into the spec. test/storage-vectors.test.ts never runs this script: it reads the spec and
// checks every value against the code, so the two cannot drift apart unnoticed.
//
//   node_modules/.bin/node --import tsx scripts/storage-vectors.ts
import { createCipheriv, createHash, createPrivateKey, createPublicKey } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import argon2 from 'argon2'
import { ClassicLevel } from 'classic-level'
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core'
import { associatedData, mac, open, VaultKeys } from '../node/vault/crypto.ts'
import { formatRecoveryCode, slotAssociatedData, KEY_SLOTS_FORMAT, KEY_SLOTS_VERSION } from '../node/vault/key-slots.ts'
import { erasureCodec, shardSize } from '../node/vault/erasure/index.ts'
import { encodeLocator } from '../node/vault/shards/index.ts'
import { recordHeader } from '../protocol/shard-record.ts'
import { documentTerms, searchIndex, type SearchText } from '../node/vault/search/index.ts'
import { backblazeParityRows } from '../test/harness/reed-solomon-reference.ts'
import { summarizeHeaders } from '../protocol/message.ts'

export const countingBytes = (first: number, count: number): Buffer => Buffer.from(Array.from({ length: count }, (_, i) => (first + i) & 0xff))
const repeated = (byte: number, count: number): Buffer => Buffer.alloc(count, byte)
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

// --- fixed inputs -------------------------------------------------------------------------
const MASTER = countingBytes(0x00, 32)
const VAULT_ID = countingBytes(0x20, 16)
const MESSAGE_OBJECT_ID = countingBytes(0x30, 16)
const ARRIVAL_OBJECT_ID = countingBytes(0x40, 16)
const PASSPHRASE_SALT = countingBytes(0x50, 16)
const RECOVERY_SALT = countingBytes(0x60, 16)
const RECOVERY_BYTES = countingBytes(0x70, 20)
const ARRIVAL_PRIVATE_KEY = countingBytes(0x80, 32)
const EPHEMERAL_PRIVATE_KEY = countingBytes(0xa0, 32)
const NONCE = { meta: repeated(0x11, 12), message: repeated(0x22, 12), passphrase: repeated(0x33, 12), recovery: repeated(0x44, 12), arrivalKey: repeated(0x55, 12), record: repeated(0x66, 12) }
const KDF = { memoryKiB: 1024, iterations: 1, parallelism: 1 }
/** "Tür" in NFC (ü = U+00FC); the test also unlocks with the NFD spelling. */
const PASSPHRASE = 'Tür zum Tresor 42'
const ALICE = 'alice@aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4bqead.onion'
const BOB = 'bob@fgwlvykbxtfpbmrodkkngtily43b4utnbp7bfsexss6jgiuwnxluewad.onion'
const MESSAGE = Buffer.from('Subject: vault vector\r\n\r\nHello, vault.\r\n', 'utf8')
const ARRIVAL_MESSAGE = Buffer.from('Subject: sealed while locked\r\n\r\nHello again.\r\n', 'utf8')

/** seal() of crypto.ts with the nonce given instead of a random one. */
function sealWithNonce (key: Uint8Array, nonce: Buffer, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, nonce)
  cipher.setAAD(aad)
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return Buffer.concat([Buffer.of(1), nonce, body, cipher.getAuthTag()])
}

/** The X25519 public key of a raw 32-byte private key (RFC 7748), by node:crypto. */
export function x25519PublicKey (privateKey: Buffer): Buffer {
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), privateKey])
  const jwk = createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })).export({ format: 'jwk' })
  return Buffer.from(jwk.x!, 'base64url')
}

async function argon2id (secret: Buffer, salt: Buffer): Promise<Buffer> {
  return await argon2.hash(secret, { type: argon2.argon2id, raw: true, hashLength: 32, salt, memoryCost: KDF.memoryKiB, timeCost: KDF.iterations, parallelism: KDF.parallelism })
}

function toArrayBuffer (bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
}


export const SEARCH_DOCS: Array<[number, SearchText]> = [
  [1, { from: 'Alice <alice@example.org>', to: 'bob@example.net', subject: 'Lunch on Friday', body: 'Hello Bob, lunch at noon?' }],
  [2, { from: 'Carol <carol@example.org>', to: 'bob@example.net', subject: 'Plans', body: 'Hello from Carol.' }],
  [3, { from: 'Alice <alice@example.org>', to: 'bob@example.net', subject: 'Photos', body: 'Hello again, here they are.' }]
]

async function main (): Promise<void> {
  const out: string[] = []
  const line = (name: string, value: string | Uint8Array): void => { out.push(`${name}: ${typeof value === 'string' ? value : hex(value)}`) }

  // Keys
  const keys = new VaultKeys(MASTER, VAULT_ID)
  out.push('[keys]')
  line('master-key', MASTER)
  line('vault-id', VAULT_ID)
  for (const [name, key] of [['object', keys.object], ['record', keys.record], ['search-term', keys.searchTerm], ['search-postings', keys.searchPostings], ['queue', keys.queue], ['arrival-key', keys.arrivalKey]] as const) {
    line(`${name}-info`, `smtorp vault v1 ${name.replace('-', ' ')}`)
    line(name, key)
  }
  line('object-id', MESSAGE_OBJECT_ID)
  line('object-key-info', Buffer.concat([Buffer.from('smtorp vault v1 object key\0'), MESSAGE_OBJECT_ID]))
  line('object-key', keys.objectKey(MESSAGE_OBJECT_ID))
  out.push('')

  // Sealed message (the object)
  const messageAd = associatedData('message', MESSAGE_OBJECT_ID)
  const object = sealWithNonce(keys.objectKey(MESSAGE_OBJECT_ID), NONCE.message, MESSAGE, messageAd)
  out.push('[seal message]')
  line('key', keys.objectKey(MESSAGE_OBJECT_ID))
  line('associated-data', messageAd)
  line('nonce', NONCE.message)
  line('plaintext', MESSAGE)
  line('sealed', object)
  out.push('')

  // Meta record
  // The header summary as the vault writes it (no Date header here, so no `date`).
  const { date: _none, ...summary } = summarizeHeaders(MESSAGE)
  const meta = { id: '0000000000000001', folder: 'Inbox', messageId: `vector-1@${ALICE.split('@')[1]}`, from: ALICE, to: [BOB], receivedAt: 1795360600000, size: MESSAGE.length, flags: ['\\Seen'], subject: summary.subject, headerFrom: summary.from, thread: summary.thread, objectId: hex(MESSAGE_OBJECT_ID) }
  const metaJson = Buffer.from(JSON.stringify(meta), 'utf8')
  const metaAd = associatedData('meta', meta.id)
  out.push('[seal meta]')
  line('index-key', Buffer.from(`m${meta.id}`, 'latin1'))
  line('key', keys.record)
  line('associated-data', metaAd)
  line('nonce', NONCE.meta)
  line('plaintext', metaJson)
  line('sealed', sealWithNonce(keys.record, NONCE.meta, metaJson, metaAd))
  out.push('')

  // A small record
  const recordName = mac(keys.record, 'settings\0signature')
  const recordValue = Buffer.from('-- \r\nAlice', 'utf8')
  const recordAd = associatedData('record', recordName)
  out.push('[seal record]')
  line('kind-and-name', Buffer.from('settings\0signature', 'utf8'))
  line('name-mac', recordName)
  line('index-key', Buffer.concat([Buffer.from('r'), recordName]))
  line('associated-data', recordAd)
  line('nonce', NONCE.record)
  line('plaintext', recordValue)
  line('sealed', sealWithNonce(keys.record, NONCE.record, recordValue, recordAd))
  out.push('')

  // Key slots
  const passphraseBytes = Buffer.from(PASSPHRASE.normalize('NFC'), 'utf8')
  const passKek = await argon2id(passphraseBytes, PASSPHRASE_SALT)
  const passAd = slotAssociatedData(VAULT_ID, { id: 0, type: 'passphrase' })
  const passWrapped = sealWithNonce(passKek, NONCE.passphrase, MASTER, passAd)
  out.push('[slot passphrase]')
  line('passphrase-text', PASSPHRASE)
  line('passphrase-utf8-nfc', passphraseBytes)
  line('memory-kib', String(KDF.memoryKiB))
  line('iterations', String(KDF.iterations))
  line('parallelism', String(KDF.parallelism))
  line('salt', PASSPHRASE_SALT)
  line('kek', passKek)
  line('associated-data', passAd)
  line('nonce', NONCE.passphrase)
  line('wrapped-key', passWrapped)
  out.push('')

  const code = formatRecoveryCode(RECOVERY_BYTES)
  const recKek = await argon2id(RECOVERY_BYTES, RECOVERY_SALT)
  const recAd = slotAssociatedData(VAULT_ID, { id: 1, type: 'recovery' })
  const recWrapped = sealWithNonce(recKek, NONCE.recovery, MASTER, recAd)
  out.push('[slot recovery]')
  line('recovery-code', code)
  // Any case, spaces and dashes anywhere: what parseRecoveryCode accepts.
  line('recovery-code-as-typed', code.toLowerCase().replace(/-/g, ' ').replace(/ (?=\S+ \S+$)/, '-'))
  line('secret', RECOVERY_BYTES)
  line('memory-kib', String(KDF.memoryKiB))
  line('iterations', String(KDF.iterations))
  line('parallelism', String(KDF.parallelism))
  line('salt', RECOVERY_SALT)
  line('kek', recKek)
  line('associated-data', recAd)
  line('nonce', NONCE.recovery)
  line('wrapped-key', recWrapped)
  out.push('')

  // Arrival key pair and a sealed arrival
  const arrivalPublic = x25519PublicKey(ARRIVAL_PRIVATE_KEY)
  const arrivalKeyAd = associatedData('arrival private key', VAULT_ID)
  const sealedArrivalKey = sealWithNonce(keys.arrivalKey, NONCE.arrivalKey, ARRIVAL_PRIVATE_KEY, arrivalKeyAd)
  out.push('[arrival key]')
  line('private-key', ARRIVAL_PRIVATE_KEY)
  line('public-key', arrivalPublic)
  line('associated-data', arrivalKeyAd)
  line('nonce', NONCE.arrivalKey)
  line('sealed-private-key', sealedArrivalKey)
  out.push('')

  const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() })
  const ephemeralPublic = x25519PublicKey(EPHEMERAL_PRIVATE_KEY)
  const envelope = { folder: 'Inbox', from: ALICE, to: [BOB], messageId: `vector-2@${ALICE.split('@')[1]}`, flags: [], receivedAt: 1795360700000 }
  const head = Buffer.from(JSON.stringify(envelope), 'utf8')
  const length = Buffer.alloc(4)
  length.writeUInt32BE(head.length)
  const plain = Buffer.concat([length, head, ARRIVAL_MESSAGE])
  const sender = await suite.createSenderContext({
    recipientPublicKey: await suite.kem.deserializePublicKey(toArrayBuffer(arrivalPublic)),
    info: toArrayBuffer(Buffer.from('smtorp vault v1 arrival')),
    ekm: { privateKey: await suite.kem.deserializePrivateKey(toArrayBuffer(EPHEMERAL_PRIVATE_KEY)), publicKey: await suite.kem.deserializePublicKey(toArrayBuffer(ephemeralPublic)) }
  })
  const ciphertext = Buffer.from(await sender.seal(toArrayBuffer(plain), toArrayBuffer(ARRIVAL_OBJECT_ID)))
  if (!Buffer.from(sender.enc).equals(ephemeralPublic)) throw new Error('enc is not the ephemeral public key')
  out.push('[arrival]')
  line('info', Buffer.from('smtorp vault v1 arrival'))
  line('object-id', ARRIVAL_OBJECT_ID)
  line('index-key', Buffer.from('a0000000000000002', 'latin1'))
  line('ephemeral-private-key', EPHEMERAL_PRIVATE_KEY)
  line('enc', ephemeralPublic)
  line('envelope', head)
  line('message', ARRIVAL_MESSAGE)
  line('plaintext', plain)
  line('sealed', Buffer.concat([Buffer.of(1), ephemeralPublic, ciphertext]))
  out.push('')

  // Erasure coding of the sealed message
  const k = 4
  const m = 2
  const shards = await erasureCodec('wasm').encode(object, k, m)
  out.push('[erasure wasm 4+2]')
  line('object-length', String(object.length))
  line('shard-size', String(shardSize(object.length, k)))
  backblazeParityRows(k, m).forEach((row, r) => { line(`parity-row-${r}`, Buffer.from(row)) })
  shards.forEach((s, i) => { line(`shard-${i}`, s) })
  out.push('')

  // Shard records and locators
  out.push('[records]')
  line('object-id', MESSAGE_OBJECT_ID)
  shards.forEach((s, index) => { line(`header-${index}`, recordHeader({ k, m, index, objectId: MESSAGE_OBJECT_ID, objectLength: object.length, shardLength: s.length }, s)) })
  out.push('')
  const base = { objectId: MESSAGE_OBJECT_ID, objectLength: object.length, shardLength: shards[0]!.length, k, m }
  out.push('[locator]')
  line('index-key', Buffer.concat([Buffer.from('o'), MESSAGE_OBJECT_ID]))
  const first = shards.map(() => ({ segment: 1, offset: 0 }))
  line('places', first.map((p) => `${p.segment}@${p.offset}`).join(','))
  line('locator', encodeLocator({ ...base, shards: first }))
  out.push('')
  const wide = shards.map((_, i) => ({ segment: 0x01020304 + i, offset: 0x0000_0102_0304_0506 + 0x100 * i }))
  out.push('[locator wide]')
  line('places', wide.map((p) => `${p.segment}@${p.offset}`).join(','))
  line('locator', encodeLocator({ ...base, shards: wide }))
  out.push('')

  // Search
  out.push('[search]')
  for (const term of ['*:hello', 'from:alice@example.org', 'subject:lunch']) line(`term-name ${term}`, mac(keys.searchTerm, term))
  for (const [doc, text] of SEARCH_DOCS) for (const field of ['from', 'to', 'subject', 'body'] as const) line(`doc-${doc}-${field}`, text[field])
  for (const [doc, text] of SEARCH_DOCS) line(`doc-${doc}-terms`, [...documentTerms(text)].sort().join(' '))
  const name = mac(keys.searchTerm, '*:hello')
  const headKey = Buffer.concat([Buffer.from('x'), name])
  const chunkKey = (gen: number): Buffer => { const g = Buffer.alloc(4); g.writeUInt32BE(gen); return Buffer.concat([headKey, g]) }
  const stateKey = Buffer.from('Xs')
  line('head-key', headKey)
  line('chunk-1-key', chunkKey(1))
  line('chunk-2-key', chunkKey(2))
  line('state-key', stateKey)
  // Flush 1: documents 1 and 2; flush 2: document 3, and 2 removed. With the default inline
  // limit every posting of *:hello stays in its head; with 0 every flush writes a chunk.
  for (const inlineBytes of [undefined, 0]) {
    out.push('', inlineBytes === undefined ? '[search index]' : `[search index inline-bytes ${inlineBytes}]`)
    const dir = await mkdtemp(join(tmpdir(), 'smtorp-storage-vectors-'))
    const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    try {
      await db.open()
      const index = searchIndex({ db, keys: { term: keys.searchTerm, postings: keys.searchPostings }, ...(inlineBytes !== undefined ? { inlineBytes } : {}) })
      await index.open()
      index.add(...SEARCH_DOCS[0]!)
      index.add(...SEARCH_DOCS[1]!)
      await index.flush()
      index.add(...SEARCH_DOCS[2]!)
      index.remove(2)
      await index.flush()
      line('head', open(keys.searchPostings, (await db.get(headKey))!, associatedData('search term', headKey)))
      for (const gen of [1, 2]) {
        const value = await db.get(chunkKey(gen))
        line(`chunk-${gen}`, value === undefined ? 'none' : open(keys.searchPostings, value, associatedData('search postings', chunkKey(gen))))
      }
      line('state', open(keys.searchPostings, (await db.get(stateKey))!, associatedData('search state', stateKey)))
      await index.close()
    } finally {
      await db.close()
      await rm(dir, { recursive: true, force: true })
    }
  }
  process.stdout.write('```vectors\n' + out.join('\n') + '\n```\n\n')

  // A whole key slots file, as writeKeySlots writes it.
  const file = {
    format: KEY_SLOTS_FORMAT,
    version: KEY_SLOTS_VERSION,
    generation: 1,
    vaultId: VAULT_ID.toString('base64'),
    arrivalPublicKey: arrivalPublic.toString('base64'),
    arrivalPrivateKey: sealedArrivalKey.toString('base64'),
    slots: [
      { id: 0, type: 'passphrase', kdf: { name: 'argon2id', version: 19, ...KDF, salt: PASSPHRASE_SALT.toString('base64') }, wrappedKey: passWrapped.toString('base64') },
      { id: 1, type: 'recovery', kdf: { name: 'argon2id', version: 19, ...KDF, salt: RECOVERY_SALT.toString('base64') }, wrappedKey: recWrapped.toString('base64') }
    ]
  }
  const checksum = createHash('sha256').update(JSON.stringify(file)).digest('hex')
  process.stdout.write('```json\n' + JSON.stringify({ ...file, checksum }, null, 2) + '\n```\n')
}

await main()
