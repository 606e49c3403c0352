// The mail store interface: where received and sent mail is kept. Its one implementation is
// the vault (node/vault/), encrypted and erasure-coded; callers depend on this interface only.
export { FOLDERS, MailStoreError } from './mail-store.ts'
export type { AddResult, Folder, MailStore, NewMessage, StoredMessage, StoredMessageMeta } from './mail-store.ts'
