// What an unlocked vault keeps in memory about every message: its folder and flags (the
// parts that change, so the latest call always wins), and its Message-ID per folder (to drop
// duplicates). Everything else about a message stays sealed on disk and is opened when asked
// for. One number per message: with 100,000 messages this is a few MiB, not the ~70 MiB of
// keeping whole metadata records (bench/RESULTS.md, "Vault with 100,000 messages").
import { createHash } from 'node:crypto'
import { FOLDERS, type Folder } from '../store/mail-store.ts'

const FOLDER_BITS = 3

export class MailboxIndex {
  /** id → folder index | flag set index << FOLDER_BITS */
  private readonly entries = new Map<string, number>()
  /** Distinct flag sets, shared by every message that has the same one. */
  private readonly flagSets: Array<readonly string[]> = [[]]
  private readonly flagSetIds = new Map<string, number>([['', 0]])
  /**
   * duplicateKey(folder, messageId) → the id, or the ids (ascending) when there are several.
   * The key is a digest, not the Message-ID: a string cut from the record's JSON would keep the
   * whole JSON text alive, and most messages have exactly one id here.
   */
  private readonly byMessageId = new Map<string, string | string[]>()

  get size (): number { return this.entries.size }

  has (id: string): boolean { return this.entries.has(id) }

  folderOf (id: string): Folder | undefined {
    const packed = this.entries.get(id)
    return packed === undefined ? undefined : FOLDERS[packed & ((1 << FOLDER_BITS) - 1)]
  }

  flagsOf (id: string): string[] {
    const packed = this.entries.get(id)
    return packed === undefined ? [] : [...this.flagSets[packed >>> FOLDER_BITS]!]
  }

  /** Add a message, or change its folder or flags; `messageId` keeps the duplicate index right. */
  set (id: string, folder: Folder, flags: readonly string[], messageId: string | undefined): void {
    const before = this.folderOf(id)
    if (before !== undefined && before !== folder && messageId !== undefined) this.unlink(before, messageId, id)
    if (messageId !== undefined && before !== folder) {
      const key = duplicateKey(folder, messageId)
      const ids = this.byMessageId.get(key)
      this.byMessageId.set(key, ids === undefined ? id : [...(typeof ids === 'string' ? [ids] : ids), id].sort())
    }
    this.entries.set(id, FOLDERS.indexOf(folder) | (this.flagSetId(flags) << FOLDER_BITS))
  }

  delete (id: string, messageId: string | undefined): void {
    const folder = this.folderOf(id)
    if (folder === undefined) return
    if (messageId !== undefined) this.unlink(folder, messageId, id)
    this.entries.delete(id)
  }

  /** Ids in `folder` whose Message-ID is `messageId`, oldest first. */
  duplicates (folder: Folder, messageId: string): readonly string[] {
    const ids = this.byMessageId.get(duplicateKey(folder, messageId))
    return ids === undefined ? [] : typeof ids === 'string' ? [ids] : ids
  }

  /** Ids, in arrival order; of one folder if given. */
  ids (folder?: Folder): string[] {
    const out: string[] = []
    const wanted = folder === undefined ? -1 : FOLDERS.indexOf(folder)
    for (const [id, packed] of this.entries) if (wanted < 0 || (packed & ((1 << FOLDER_BITS) - 1)) === wanted) out.push(id)
    return out.sort()
  }

  clear (): void {
    this.entries.clear()
    this.byMessageId.clear()
  }

  private unlink (folder: Folder, messageId: string, id: string): void {
    const key = duplicateKey(folder, messageId)
    const ids = this.duplicates(folder, messageId).filter(x => x !== id)
    if (ids.length === 0) this.byMessageId.delete(key); else this.byMessageId.set(key, ids.length === 1 ? ids[0]! : ids)
  }

  private flagSetId (flags: readonly string[]): number {
    const key = flags.join('\0')
    let index = this.flagSetIds.get(key)
    if (index === undefined) {
      index = this.flagSets.push(Object.freeze([...flags])) - 1
      this.flagSetIds.set(key, index)
    }
    return index
  }
}

/** 132 bits of SHA-256 over folder and Message-ID: in memory only, never stored. */
function duplicateKey (folder: Folder, messageId: string): string {
  return createHash('sha256').update(folder).update('\0').update(messageId).digest().toString('base64url', 0, 16)
}
