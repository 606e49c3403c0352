// The mail store: where received and sent mail is kept. Callers depend on the MailStore
// interface only (mail-store.ts); the LevelDB implementation is chosen at startup.
import { LevelMailStore, type LevelMailStoreInit } from './level-mail-store.ts'
import type { MailStore } from './mail-store.ts'

export { FOLDERS, MailStoreError } from './mail-store.ts'
export type { AddResult, Folder, MailStore, NewMessage, StoredMessage, StoredMessageMeta } from './mail-store.ts'
export { LEVEL_STORE_FORMAT, type LevelMailStoreInit } from './level-mail-store.ts'

/** A MailStore kept in a LevelDB database at `init.path`. Call `open()` before use. */
export function levelMailStore (init: LevelMailStoreInit): MailStore {
  return new LevelMailStore(init)
}
