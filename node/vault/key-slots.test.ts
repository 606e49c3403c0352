// Key slots: the two copies, damage, unknown KDFs, recovery codes.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  formatRecoveryCode, makeSlot, newRecoveryCode, openSlots, parseRecoveryCode, readKeySlots, writeKeySlots,
  KeySlotError, WrongSecretError, KEY_SLOTS_BACKUP_FILE, KEY_SLOTS_FILE, KEY_SLOTS_FORMAT, KEY_SLOTS_VERSION, type KeySlotsFile
} from './key-slots.ts'

const KDF = { memoryKiB: 1024, iterations: 1, parallelism: 1 }

async function slotsFile (master: Buffer, passphrases: string[]): Promise<KeySlotsFile> {
  const vaultId = randomBytes(16)
  return {
    format: KEY_SLOTS_FORMAT,
    version: KEY_SLOTS_VERSION,
    generation: 1,
    vaultId: vaultId.toString('base64'),
    arrivalPublicKey: '',
    arrivalPrivateKey: '',
    slots: await Promise.all(passphrases.map(async (p, id) => await makeSlot(id, 'passphrase', Buffer.from(p), master, vaultId, KDF)))
  }
}

describe('key slots', () => {
  it('opens with any passphrase slot, and says "Wrong passphrase." for others', async () => {
    const master = randomBytes(32)
    const file = await slotsFile(master, ['first passphrase', 'second passphrase'])
    assert.deepEqual(await openSlots(file, 'passphrase', Buffer.from('second passphrase')), master)
    assert.deepEqual(await openSlots(file, 'passphrase', Buffer.from('first passphrase')), master)
    await assert.rejects(openSlots(file, 'passphrase', Buffer.from('third')), (err: Error) => err instanceof WrongSecretError && err.message === 'Wrong passphrase.')
    await assert.rejects(openSlots(file, 'recovery', Buffer.alloc(20)), /has no recovery slot/)
  })

  it('refuses a slot of an unknown KDF instead of calling the passphrase wrong', async () => {
    const file = await slotsFile(randomBytes(32), ['a passphrase'])
    const slot = file.slots[0]!
    file.slots[0] = { ...slot, kdf: { ...slot.kdf, name: 'scrypt' as 'argon2id' } }
    await assert.rejects(openSlots(file, 'passphrase', Buffer.from('a passphrase')), (err: Error) => err instanceof KeySlotError && !(err instanceof WrongSecretError) && /uses scrypt/.test(err.message))
  })

  it('a slot moved to another id or vault does not open', async () => {
    const master = randomBytes(32)
    const file = await slotsFile(master, ['a passphrase'])
    const moved = { ...file, slots: [{ ...file.slots[0]!, id: 7 }] }
    await assert.rejects(openSlots(moved, 'passphrase', Buffer.from('a passphrase')), WrongSecretError)
    const otherVault = { ...file, vaultId: randomBytes(16).toString('base64') }
    await assert.rejects(openSlots(otherVault, 'passphrase', Buffer.from('a passphrase')), WrongSecretError)
  })

  it('keeps two copies: a damaged or missing one is rewritten from the other, the newer generation wins', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'smtorp-slots-'))
    try {
      assert.equal(await readKeySlots(dir), undefined)
      const file = await slotsFile(randomBytes(32), ['a passphrase'])
      await writeKeySlots(dir, file)
      await writeFile(join(dir, KEY_SLOTS_FILE), (await readFile(join(dir, KEY_SLOTS_FILE), 'utf8')).replace('"generation": 1', '"generation": 9'))
      // Edited without fixing the checksum: damaged, so the backup is used and copied back.
      assert.equal((await readKeySlots(dir))?.generation, 1)
      assert.equal(await readFile(join(dir, KEY_SLOTS_FILE), 'utf8'), await readFile(join(dir, KEY_SLOTS_BACKUP_FILE), 'utf8'))
      // A crash between the two writes of generation 2 leaves the backup at generation 1.
      const backup = await readFile(join(dir, KEY_SLOTS_BACKUP_FILE), 'utf8')
      await writeKeySlots(dir, { ...file, generation: 2 })
      await writeFile(join(dir, KEY_SLOTS_BACKUP_FILE), backup)
      assert.equal((await readKeySlots(dir))?.generation, 2)
      assert.match(await readFile(join(dir, KEY_SLOTS_BACKUP_FILE), 'utf8'), /"generation": 2/)
      await writeFile(join(dir, KEY_SLOTS_FILE), 'garbage')
      await writeFile(join(dir, KEY_SLOTS_BACKUP_FILE), '{"format":"smtorp-vault-key-slots","version":1}')
      await assert.rejects(readKeySlots(dir), (err: Error) => err instanceof KeySlotError && /Both copies of the key slots are unreadable: key-slots.json is not valid JSON. key-slots.backup.json is damaged/.test(err.message))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('formats and parses recovery codes', () => {
    const code = newRecoveryCode()
    assert.match(code, /^([A-Z2-7]{4}-){7}[A-Z2-7]{4}$/)
    assert.equal(formatRecoveryCode(parseRecoveryCode(code)), code)
    assert.deepEqual(parseRecoveryCode(` ${code.toLowerCase().replaceAll('-', ' ')} `), parseRecoveryCode(code))
    for (const bad of ['', 'ABCD', `${code}-AAAA`, code.replace(/.$/, '1'), code.replace(/.$/, '!')]) {
      assert.throws(() => parseRecoveryCode(bad), /not a recovery code/, bad)
    }
  })
})
