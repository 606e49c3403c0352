// The vault: the MailStore compliance suite, unlocking, mail arriving while locked, no
// plaintext on disk, damage and repair, tampering.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile, open as openFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { mailStoreCompliance, binaryMessage } from '../../test/store-compliance.ts'
import { openTestVault, TEST_KDF, TEST_PASSPHRASE } from '../../test/harness/vault.ts'
import { vault as makeVault, MessageDamagedError, UnlockThrottledError, VaultError, VaultLockedError, type Vault } from './index.ts'
import { decodeLocator, type Locator } from './shards/index.ts'
import type { MailStore } from '../store/mail-store.ts'
import { KEY_SLOTS_BACKUP_FILE, KEY_SLOTS_FILE, readKeySlots, writeKeySlots } from './key-slots.ts'
import { newArrivalKeyPair } from './arrivals.ts'

async function tempDir (): Promise<string> {
  return await mkdtemp(join(tmpdir(), 'smtorp-vault-'))
}

mailStoreCompliance('Vault', async () => {
  const dir = await tempDir()
  // The suite opens and reopens the store: here open() also creates or unlocks the vault.
  const v = makeVault({ dir, passphraseKdf: TEST_KDF, recoveryKdf: TEST_KDF })
  const store: MailStore = {
    async open () {
      await v.open()
      if (v.state() === 'uninitialized') await v.create(TEST_PASSPHRASE)
      else await v.unlock({ passphrase: TEST_PASSPHRASE })
    },
    close: async () => { await v.close() },
    add: async (m) => await v.add(m),
    get: async (id) => await v.get(id),
    list: async (folder) => await v.list(folder),
    setFlags: async (id, flags) => { await v.setFlags(id, flags) },
    move: async (id, folder) => { await v.move(id, folder) },
    remove: async (id) => { await v.remove(id) }
  }
  return { store, cleanup: async () => { await rm(dir, { recursive: true, force: true }) } }
})

function mail (n: number, marker = `marker${n}`): { raw: Buffer, from: string, to: string[], messageId: string } {
  const from = `sender${n}@example.org`
  const to = [`rcpt${n}@example.net`]
  const messageId = `${marker}-id@example.org`
  const raw = Buffer.from(`From: <${from}>\r\nTo: <${to[0]}>\r\nSubject: subject ${marker}\r\nMessage-ID: <${messageId}>\r\n\r\nbody text ${marker} ${'filler '.repeat(n * 37 % 900)}\r\n`)
  return { raw, from, to, messageId }
}

async function filesUnder (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name))
  }
  return out
}

/** Every (file, needle) where the needle's bytes appear in a file under `dir`. */
async function plaintextFound (dir: string, needles: string[]): Promise<string[]> {
  const found: string[] = []
  for (const file of await filesUnder(dir)) {
    const bytes = await readFile(file)
    for (const needle of needles) {
      for (const form of [Buffer.from(needle, 'utf8'), Buffer.from(needle, 'utf16le'), Buffer.from(needle.toUpperCase(), 'utf8')]) {
        if (bytes.includes(form)) found.push(`${file}: ${needle}`)
      }
    }
  }
  return found
}

/** The locators of every object, read from the closed vault's index. */
async function locators (dir: string): Promise<Array<{ key: Buffer, loc: Locator }>> {
  const db = new ClassicLevel<Buffer, Buffer>(join(dir, 'index'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  await db.open()
  try {
    const entries = await db.iterator({ gt: Buffer.from('o'), lt: Buffer.from('p') }).all()
    return entries.map(([key, value]) => ({ key, loc: decodeLocator(value) }))
  } finally {
    await db.close()
  }
}

function shardFile (dir: string, column: number, segment: number): string {
  return join(dir, 'shards', `c${String(column).padStart(2, '0')}`, `${String(segment).padStart(8, '0')}.seg`)
}

/** Flip one random bit inside shard `index` of the object (its header or data). */
async function flipBitInShard (dir: string, loc: Locator, index: number): Promise<void> {
  const where = loc.shards[index]!
  const file = await openFile(shardFile(dir, index, where.segment), 'r+')
  try {
    const offset = where.offset + Math.floor(Math.random() * (72 + loc.shardLength))
    const byte = Buffer.alloc(1)
    await file.read(byte, 0, 1, offset)
    byte[0] = byte[0]! ^ (1 << Math.floor(Math.random() * 8))
    await file.write(byte, 0, 1, offset)
  } finally {
    await file.close()
  }
}

describe('Vault unlocking', () => {
  let dir: string
  let v: Vault
  let recoveryCode: string
  before(async () => {
    dir = await tempDir()
    const made = await openTestVault(dir)
    v = made.vault
    recoveryCode = made.recoveryCode!
  })
  after(async () => { await v.close(); await rm(dir, { recursive: true, force: true }) })

  it('keeps the master key and passphrase out of the key slots file, which is private', async () => {
    const text = await readFile(join(dir, KEY_SLOTS_FILE), 'utf8')
    assert.doesNotMatch(text, new RegExp(TEST_PASSPHRASE))
    assert.equal((await stat(join(dir, KEY_SLOTS_FILE))).mode & 0o777, 0o600)
    const file = JSON.parse(text) as { slots: Array<{ type: string, kdf: { name: string, memoryKiB: number } }> }
    assert.deepEqual(file.slots.map(s => [s.type, s.kdf.name, s.kdf.memoryKiB]), [['passphrase', 'argon2id', TEST_KDF.memoryKiB], ['recovery', 'argon2id', TEST_KDF.memoryKiB]])
  })

  it('refuses a wrong passphrase with a clear error, and slows down repeated ones', async () => {
    const id = (await v.add({ folder: 'Inbox', raw: Buffer.from('kept'), from: 'a@b', to: ['c@d'] })).meta.id
    await v.lock()
    assert.equal(v.state(), 'locked')
    await assert.rejects(v.get(id), VaultLockedError)
    for (let i = 0; i < 3; i++) await assert.rejects(v.unlock({ passphrase: 'wrong passphrase' }), /^WrongSecretError: Wrong passphrase\.$/)
    // After three failures the next attempt, even with the right passphrase, must wait.
    await assert.rejects(v.unlock({ passphrase: TEST_PASSPHRASE }), (err: Error) => err instanceof UnlockThrottledError && /try again in 1 s/.test(err.message))
    assert.equal(v.unlockDelaySeconds(), 1)
    await new Promise(resolve => setTimeout(resolve, 1100))
    await v.unlock({ passphrase: TEST_PASSPHRASE })
    assert.equal((await v.get(id))?.raw.toString(), 'kept')
    assert.equal(v.unlockDelaySeconds(), 0)
  })

  it('changes the passphrase by rewriting one slot, leaving the mail untouched', async () => {
    const before = await Promise.all((await filesUnder(join(dir, 'shards'))).map(async f => [f, await readFile(f)] as const))
    await v.changePassphrase('a new passphrase')
    for (const [file, bytes] of before) assert.deepEqual(await readFile(file), bytes, `${file} changed`)
    await v.lock()
    await assert.rejects(v.unlock({ passphrase: TEST_PASSPHRASE }), /Wrong passphrase/)
    await v.unlock({ passphrase: 'a new passphrase' })
    await v.lock()
    // The recovery code still opens the vault, in any case and spacing.
    await v.unlock({ recoveryCode: recoveryCode.toLowerCase().replaceAll('-', ' ') })
    assert.equal(v.state(), 'unlocked')
    await assert.rejects(v.changePassphrase('short'), /at least 8 characters/)
  })

  it('says what is wrong with a malformed or wrong recovery code', async () => {
    await v.lock()
    await assert.rejects(v.unlock({ recoveryCode: 'ABCD-1234' }), /not a recovery code/)
    await assert.rejects(v.unlock({ recoveryCode: 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA' }), /^WrongSecretError: Wrong recovery code\.$/)
    await new Promise(resolve => setTimeout(resolve, 1100))
    await v.unlock({ passphrase: 'a new passphrase' })
  })

  it('survives a damaged key slots file by using the backup copy, and repairs it', async () => {
    await v.close()
    const main = join(dir, KEY_SLOTS_FILE)
    const text = await readFile(main, 'utf8')
    await writeFile(main, text.replace(/"wrappedKey": "(.)/, (_m, c: string) => `"wrappedKey": "${c === 'A' ? 'B' : 'A'}`))
    v = makeVault({ dir, passphraseKdf: TEST_KDF, recoveryKdf: TEST_KDF })
    await v.open()
    await v.unlock({ passphrase: 'a new passphrase' })
    assert.equal(await readFile(main, 'utf8'), await readFile(join(dir, KEY_SLOTS_BACKUP_FILE), 'utf8'))
  })
})

describe('Vault while locked', () => {
  let dir: string
  let v: Vault
  before(async () => { dir = await tempDir(); v = (await openTestVault(dir)).vault })
  after(async () => { await v.close(); await rm(dir, { recursive: true, force: true }) })

  it('keeps taking mail while locked and files it, readable, at unlock', async () => {
    const early = mail(1)
    const earlyId = (await v.add({ folder: 'Inbox', ...early })).meta.id
    await v.lock()
    const added = []
    for (let n = 2; n <= 6; n++) {
      const m = mail(n)
      added.push({ ...m, id: (await v.add({ folder: 'Inbox', ...m, flags: ['$Locked'] })).meta.id })
    }
    // A second copy of a message already in the Inbox, and one sent again while locked.
    await v.add({ folder: 'Inbox', ...early })
    await v.add({ folder: 'Inbox', ...mail(2) })
    await assert.rejects(v.list('Inbox'), VaultLockedError)
    await v.close()
    v = makeVault({ dir, passphraseKdf: TEST_KDF, recoveryKdf: TEST_KDF })
    await v.open()
    assert.equal(v.state(), 'locked')
    await v.add({ folder: 'Inbox', ...mail(7) }) // after a restart, still locked
    await v.unlock({ passphrase: TEST_PASSPHRASE })
    const inbox = await v.list('Inbox')
    assert.deepEqual(inbox.map(m => m.messageId), [early, ...added, mail(7)].map(m => m.messageId))
    for (const m of added) {
      const got = await v.get(m.id)
      assert.deepEqual(got?.raw, m.raw)
      assert.deepEqual(got?.to, m.to)
      assert.deepEqual(got?.flags, ['$Locked'])
    }
    assert.equal(inbox[0]!.id, earlyId)
    await v.searchReady()
    assert.deepEqual((await v.search('marker4')).map(m => m.id), [added[2]!.id])
  })
})

describe('Vault: no plaintext on disk', () => {
  it('shows no message text, address, subject or search term anywhere in the data directory, locked or unlocked', async () => {
    const dir = await tempDir()
    let v = (await openTestVault(dir, { searchFlushEvery: 10 })).vault
    try {
      const needles: string[] = []
      const add = async (n: number): Promise<void> => {
        const marker = `zq${randomBytes(6).toString('hex')}`
        const m = mail(n, marker)
        needles.push(marker, m.from, m.to[0]!, `subject ${marker}`, m.messageId)
        await v.add({ folder: 'Inbox', ...m })
      }
      for (let n = 1; n <= 25; n++) await add(n)
      await v.setFlags((await v.list('Inbox'))[0]!.id, ['\\Seen', '$Important'])
      await v.putRecord('settings', 'signature', Buffer.from('signature zqsettingsmarker'))
      needles.push('zqsettingsmarker', '$Important', 'Inbox')
      await v.searchReady()
      assert.equal((await v.search(needles[0]!)).length, 1) // the index holds the words...
      await v.lock()
      for (let n = 26; n <= 30; n++) await add(n) // ...and mail arriving while locked is sealed too
      assert.deepEqual(await plaintextFound(dir, needles), [])
      await v.unlock({ passphrase: TEST_PASSPHRASE })
      await v.searchReady()
      await v.close()
      assert.deepEqual(await plaintextFound(dir, needles), [])
      v = (await openTestVault(dir)).vault
      assert.equal((await v.list('Inbox')).length, 30)
      assert.equal((await v.getRecord('settings', 'signature'))?.toString(), 'signature zqsettingsmarker')
    } finally {
      await v.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('Vault: damage and repair', () => {
  let dir: string
  let v: Vault
  const originals = new Map<string, Buffer>()
  before(async () => {
    dir = await tempDir()
    // Small segments, so several files per column take damage independently.
    v = (await openTestVault(dir, { segmentBytes: 64 * 1024 })).vault
    for (let n = 1; n <= 60; n++) {
      const m = mail(n)
      const raw = n % 10 === 0 ? Buffer.concat([m.raw, randomBytes(n * 997)]) : n === 7 ? binaryMessage() : m.raw
      originals.set((await v.add({ folder: 'Inbox', raw, from: m.from, to: m.to })).meta.id, raw)
    }
    await v.close()
  })
  after(async () => { await v.close(); await rm(dir, { recursive: true, force: true }) })

  async function reopen (): Promise<void> {
    v = makeVault({ dir, passphraseKdf: TEST_KDF, recoveryKdf: TEST_KDF, segmentBytes: 64 * 1024 })
    await v.open()
    await v.unlock({ passphrase: TEST_PASSPHRASE })
  }

  async function readAll (): Promise<void> {
    for (const [id, raw] of originals) assert.deepEqual((await v.get(id))?.raw, raw, `message ${id}`)
  }

  it('reads every message byte-identical with bits flipped in up to m shards of every object, and scrub repairs all', async () => {
    for (const { loc } of await locators(dir)) {
      const columns = [0, 1, 2, 3, 4, 5].sort(() => Math.random() - 0.5).slice(0, 1 + Math.floor(Math.random() * loc.m))
      for (const column of columns) await flipBitInShard(dir, loc, column)
    }
    await reopen()
    const first = await v.scrub()
    assert.ok(first.damagedShards > 60, JSON.stringify(first))
    assert.equal(first.repairedShards, first.damagedShards)
    assert.deepEqual(first.lost, [])
    const second = await v.scrub()
    assert.equal(second.damagedShards, 0)
    await readAll()
    await v.close()
  })

  it('reads through a deleted shard file and a truncated one; reads rebuild what they use, scrub the rest', async () => {
    const all = await locators(dir)
    const segmentsOf = (column: number): number[] => [...new Set(all.map(({ loc }) => loc.shards[column]!.segment))]
    await rm(shardFile(dir, 1, segmentsOf(1)[0]!))
    const truncated = shardFile(dir, 4, segmentsOf(4).at(-1)!)
    await truncate(truncated, Math.floor((await stat(truncated)).size / 2))
    await reopen()
    await readAll() // a read verifies the data shards, and rewrites any it had to rebuild
    const report = await v.scrub() // parity shards are checked only by scrub
    assert.equal(report.lost.length, 0)
    assert.equal(report.repairedShards, report.damagedShards)
    assert.equal((await v.scrub()).damagedShards, 0)
    await readAll()
    await v.close()
  })

  it('names the message whose damage goes beyond m shards, and leaves all others readable', async () => {
    const all = await locators(dir)
    const victim = all[Math.floor(all.length / 2)]!.loc
    for (const column of [0, 2, 5]) await flipBitInShard(dir, victim, column)
    await reopen()
    let damagedId: string | undefined
    for (const [id, raw] of originals) {
      try {
        assert.deepEqual((await v.get(id))?.raw, raw)
      } catch (err) {
        assert.ok(err instanceof MessageDamagedError, String(err))
        assert.equal(damagedId, undefined, 'only one message may fail')
        assert.match(err.message, new RegExp(`^Message ${id} cannot be read: .*${victim.objectId.toString('hex')}`))
        damagedId = id
      }
    }
    assert.ok(damagedId !== undefined)
    const report = await v.scrub()
    assert.equal(report.lost.length, 1)
    assert.equal(report.lost[0]!.messageId, damagedId)
    assert.match(report.lost[0]!.reason, /3 of its 6 shards are damaged/)
    await v.close()
  })
})

describe('Vault: compaction', () => {
  it('gives back the space of deleted mail and of filed arrivals, and every other message still reads, also during it', async () => {
    const dir = await tempDir()
    const init = { segmentBytes: 32 * 1024 }
    let v = (await openTestVault(dir, init)).vault
    try {
      const kept = new Map<string, Buffer>()
      const removed: string[] = []
      for (let n = 1; n <= 120; n++) {
        const m = mail(n)
        const id = (await v.add({ folder: 'Inbox', ...m })).meta.id
        if (n % 4 === 0) kept.set(id, m.raw); else removed.push(id)
      }
      await v.lock()
      for (let n = 121; n <= 140; n++) await v.add({ folder: 'Inbox', ...mail(n) }) // filed at unlock, leaving their arrival records behind
      await v.unlock({ passphrase: TEST_PASSPHRASE })
      for (const meta of await v.list('Inbox')) if (Number(meta.id) > 120) kept.set(meta.id, mail(Number(meta.messageId!.match(/marker(\d+)/)![1])).raw)
      for (const id of removed) await v.remove(id)
      const before = (await filesUnder(join(dir, 'shards'))).length
      const bytesBefore = v.stats().shardBytes
      // Reads and new mail race the compaction: no read may fail, nothing new may be lost.
      const reading = (async () => { for (const [id, raw] of kept) assert.deepEqual((await v.get(id))?.raw, raw) })()
      const adding = Promise.all(Array.from({ length: 60 }, async (_, i) => {
        const m = mail(200 + i)
        kept.set((await v.add({ folder: 'Inbox', ...m })).meta.id, m.raw)
      }))
      const report = await v.scrub()
      await reading
      await adding
      assert.equal(report.damagedShards, 0)
      assert.ok(report.compaction !== undefined && report.compaction.segmentsRemoved > 0 && report.compaction.objectsMoved > 0, JSON.stringify(report.compaction))
      assert.ok((await filesUnder(join(dir, 'shards'))).length < before)
      assert.ok(report.compaction.bytesFreed > bytesBefore * 0.4, `${report.compaction.bytesFreed} of ${bytesBefore} bytes freed`)
      assert.ok(v.stats().shardBytes < bytesBefore, `${v.stats().shardBytes} of ${bytesBefore} bytes left`)
      for (const [id, raw] of kept) assert.deepEqual((await v.get(id))?.raw, raw)
      await v.close()
      v = makeVault({ dir, passphraseKdf: TEST_KDF, recoveryKdf: TEST_KDF, ...init })
      await v.open()
      await v.unlock({ passphrase: TEST_PASSPHRASE })
      for (const [id, raw] of kept) assert.deepEqual((await v.get(id))?.raw, raw)
      const again = await v.scrub()
      assert.equal(again.damagedShards, 0)
      assert.deepEqual(again.lost, [])
    } finally {
      await v.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('Vault: tampering', () => {
  it('detects swapped objects and a metadata record moved to another id, and never returns garbage', async () => {
    const dir = await tempDir()
    let v = (await openTestVault(dir)).vault
    const a = (await v.add({ folder: 'Inbox', ...mail(1) })).meta.id
    const b = (await v.add({ folder: 'Inbox', ...mail(2) })).meta.id
    const c = (await v.add({ folder: 'Inbox', ...mail(3) })).meta.id
    await v.close()
    const db = new ClassicLevel<Buffer, Buffer>(join(dir, 'index'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open()
    // Swap the shard locators of the first two messages: each now points at the other's object.
    const objects = await db.iterator({ gt: Buffer.from('o'), lt: Buffer.from('p') }).all()
    const [k1, v1] = objects[0]!
    const [k2, v2] = objects[1]!
    await db.batch([{ type: 'put', key: k1, value: v2 }, { type: 'put', key: k2, value: v1 }], { sync: true })
    // Move the third message's metadata record under a new id.
    const metaC = await db.get(Buffer.from(`m${c}`))
    await db.put(Buffer.from(`m${'9'.repeat(16)}`), metaC!, { sync: true })
    await db.close()
    v = makeVault({ dir, passphraseKdf: TEST_KDF, recoveryKdf: TEST_KDF })
    await v.open()
    await v.unlock({ passphrase: TEST_PASSPHRASE })
    // Which two messages had their objects swapped depends on the random object ids.
    const originals = new Map([[a, mail(1).raw], [b, mail(2).raw], [c, mail(3).raw]])
    let failures = 0
    for (const [id, raw] of originals) {
      await v.get(id).then((got) => { assert.deepEqual(got?.raw, raw) }, (err: Error) => {
        assert.ok(err instanceof MessageDamagedError, String(err))
        assert.match(err.message, new RegExp(`^Message ${id} failed authentication`))
        failures++
      })
    }
    assert.equal(failures, 2)
    assert.deepEqual(v.stats().damagedRecords, ['9'.repeat(16)])
    await v.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('restores an arrival public key that was replaced, instead of locking the owner out', async () => {
    const dir = await tempDir()
    let v = (await openTestVault(dir)).vault
    await v.close()
    const slots = (await readKeySlots(dir))!
    const genuine = slots.arrivalPublicKey
    await writeKeySlots(dir, { ...slots, generation: slots.generation + 1, arrivalPublicKey: (await newArrivalKeyPair()).publicKey.toString('base64') })
    v = makeVault({ dir, passphraseKdf: TEST_KDF, recoveryKdf: TEST_KDF })
    await v.open()
    await v.add({ folder: 'Inbox', ...mail(1) }) // sealed to the impostor's key
    await v.unlock({ passphrase: TEST_PASSPHRASE })
    assert.equal(v.arrivalKeyRestored, true)
    assert.equal((await readKeySlots(dir))!.arrivalPublicKey, genuine)
    assert.deepEqual(await v.list('Inbox'), []) // it cannot be opened, and stays in the arrivals
    await v.lock()
    await v.add({ folder: 'Inbox', ...mail(2) }) // sealed to the restored key
    await v.unlock({ passphrase: TEST_PASSPHRASE })
    assert.deepEqual((await v.list('Inbox')).map(m => m.messageId), [mail(2).messageId])
    await v.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('refuses to open an index or slots file it does not understand', async () => {
    const dir = await tempDir()
    const v = (await openTestVault(dir)).vault
    await v.close()
    const db = new ClassicLevel<Buffer, Buffer>(join(dir, 'index'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open()
    await db.put(Buffer.from('F'), Buffer.from('9'))
    await db.close()
    await assert.rejects(makeVault({ dir }).open(), (err: Error) => err instanceof VaultError && /format 9; this smtorp reads format 1/.test(err.message))
    await rm(dir, { recursive: true, force: true })
  })
})

