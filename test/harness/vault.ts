// Vaults for tests: real encryption and shards, with Argon2id turned down so a test does not
// spend a quarter of a second and 64 MiB per unlock. The cost is recorded in each key slot,
// so nothing else differs from a vault made with the defaults.
import { randomBytes } from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { associatedData, open, seal } from '../../node/vault/crypto.ts'
import { vault, type Argon2idParams, type Vault, type VaultInit } from '../../node/vault/index.ts'
import type { QueueCipher } from '../../node/queue/index.ts'

export const TEST_KDF: Argon2idParams = { memoryKiB: 1024, iterations: 1, parallelism: 1 }
export const TEST_PASSPHRASE = 'correct horse battery staple'

/** Settings for a test node's config.yaml `vault` section. */
export const TEST_VAULT_SETTINGS = { passphraseMemoryKiB: TEST_KDF.memoryKiB, passphraseIterations: TEST_KDF.iterations, scrubEveryHours: 0 }

/** A vault in `dir`: created (and unlocked) on first use, unlocked on later ones. */
export async function openTestVault (dir: string, init: Partial<VaultInit> = {}): Promise<{ vault: Vault, recoveryCode?: string }> {
  const v = vault({ dir, passphraseKdf: TEST_KDF, recoveryKdf: TEST_KDF, ...init })
  await v.open()
  if (v.state() === 'uninitialized') {
    const { recoveryCode } = await v.create(TEST_PASSPHRASE)
    return { vault: v, recoveryCode }
  }
  await v.unlock({ passphrase: TEST_PASSPHRASE })
  return { vault: v }
}

/** A real AES-256-GCM queue cipher under a random key, for queue tests without a vault. */
export function testQueueCipher (): QueueCipher {
  const key = randomBytes(32)
  return {
    seal: (id, plain) => seal(key, plain, associatedData('queue entry', id)),
    open: (id, sealed) => open(key, sealed, associatedData('queue entry', id))
  }
}

let passphraseFile: string | undefined
/** A file holding TEST_PASSPHRASE, for `smtorp ... --passphrase-file` (outside any data directory). */
export async function testPassphraseFile (): Promise<string> {
  if (passphraseFile !== undefined) return passphraseFile
  const dir = await mkdtemp(join(tmpdir(), 'smtorp-passphrase-'))
  passphraseFile = join(dir, 'passphrase')
  await writeFile(passphraseFile, `${TEST_PASSPHRASE}\n`, { mode: 0o600 })
  return passphraseFile
}
