// The vault: all mail encrypted at rest, in erasure-coded shards that repair themselves.
// It is the node's MailStore (node/store/mail-store.ts); spec/storage.md gives every format.
import { Vault, type VaultInit } from './vault.ts'

export { Vault, VaultError, VaultLockedError, WrongSecretError, MessageDamagedError, UnlockThrottledError, VAULT_INDEX_FORMAT } from './vault.ts'
export type { CompactReport, ScrubReport, UnlockSecret, VaultInit, VaultState } from './vault.ts'
export { PASSPHRASE_KDF, RECOVERY_KDF, type Argon2idParams } from './key-slots.ts'

/** A vault kept in `init.dir`. Call `open()`, then `create()` (new) or `unlock()`. */
export function vault (init: VaultInit): Vault {
  return new Vault(init)
}
