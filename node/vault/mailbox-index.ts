// What an unlocked vault keeps in memory about every message: its folder and flags (the
// parts that change, so the latest call always wins), its Message-ID per folder (to drop
// duplicates and to find a thread's root), the thread of every reply, and per-folder counts.
// Everything else about a message stays sealed on disk and is opened when asked for. One
// number per message (and a digest per reply): with 100,000 messages this is a few MiB, not
// the ~70 MiB of keeping whole metadata records (bench/RESULTS.md, "Vault with 100,000 messages").
import { createHash } from 'node:crypto'
import { FOLDERS, type Folder } from '../store/mail-store.ts'

/** The folder is its index in FOLDERS, so FOLDERS only ever grows at the end (at most 8). */
const FOLDER_BITS = 3
const FOLDER_MASK = (1 << FOLDER_BITS) - 1

/** Several ids under one key: most keys have exactly one, kept as a plain string. */
type Ids = string | string[]

export class MailboxIndex {
  /** id → folder index | flag set index << FOLDER_BITS. */
  private readonly entries = new Map<string, number>()
  /**
   * Every id, ascending, so a page is found by binary search and a walk back from there (its
   * cost is the page, not the mailbox). Ids are appended as they come, which keeps the order
   * except for an id smaller than the last (an arrival filed late): then it is sorted lazily.
   * Deleted ids stay until they are half of the array (`deleted`), skipped when walking.
   */
  private order: string[] = []
  private ordered = true
  private readonly deleted = new Set<string>()
  /** Distinct flag sets, shared by every message that has the same one. */
  private readonly flagSets: Array<readonly string[]> = [[]]
  private readonly flagSetIds = new Map<string, number>([['', 0]])
  /** Per flag set: whether it has \Seen (for unread counts). */
  private readonly flagSetSeen: boolean[] = [false]
  /**
   * duplicateKey(folder, messageId) → the id, or the ids (ascending) when there are several.
   * The key is a digest, not the Message-ID: a string cut from the record's JSON would keep the
   * whole JSON text alive, and most messages have exactly one id here.
   */
  private readonly byMessageId = new Map<string, Ids>()
  /**
   * threadKey(root Message-ID) → ids of the replies in that thread: only messages whose thread
   * differs from their own Message-ID, as the root is found through byMessageId.
   */
  private readonly byThread = new Map<string, Ids>()
  private readonly totals: number[] = FOLDERS.map(() => 0)
  private readonly unseen: number[] = FOLDERS.map(() => 0)

  get size (): number { return this.entries.size }

  has (id: string): boolean { return this.entries.has(id) }

  folderOf (id: string): Folder | undefined {
    const packed = this.entries.get(id)
    return packed === undefined ? undefined : FOLDERS[packed & FOLDER_MASK]
  }

  flagsOf (id: string): string[] {
    const packed = this.entries.get(id)
    return packed === undefined ? [] : [...this.flagSets[packed >>> FOLDER_BITS]!]
  }

  /**
   * Add a message, or change its folder or flags; `messageId` keeps the duplicate index right.
   * `thread` (the root's Message-ID) counts only when the message is new: it never changes.
   */
  set (id: string, folder: Folder, flags: readonly string[], messageId: string | undefined, thread?: string): void {
    const folderIndex = FOLDERS.indexOf(folder)
    if (folderIndex < 0) throw new Error(`Unknown folder ${String(folder)}.`)
    const old = this.entries.get(id)
    const before = old === undefined ? undefined : FOLDERS[old & FOLDER_MASK]
    if (before !== undefined && before !== folder && messageId !== undefined) unlink(this.byMessageId, duplicateKey(before, messageId), id)
    if (messageId !== undefined && before !== folder) link(this.byMessageId, duplicateKey(folder, messageId), id)
    if (old === undefined) {
      if (this.deleted.has(id)) {
        this.deleted.delete(id) // back again (its place in `order` was kept)
      } else {
        if (this.order.length > 0 && id < this.order[this.order.length - 1]!) this.ordered = false
        this.order.push(id)
      }
      if (thread !== undefined && thread !== '' && thread !== messageId) link(this.byThread, threadKey(thread), id)
    } else {
      this.count(old, -1)
    }
    const packed = folderIndex | (this.flagSetId(flags) << FOLDER_BITS)
    this.entries.set(id, packed)
    this.count(packed, 1)
  }

  delete (id: string, messageId: string | undefined, thread?: string): void {
    const packed = this.entries.get(id)
    if (packed === undefined) return
    if (messageId !== undefined) unlink(this.byMessageId, duplicateKey(FOLDERS[packed & FOLDER_MASK]!, messageId), id)
    if (thread !== undefined && thread !== '' && thread !== messageId) unlink(this.byThread, threadKey(thread), id)
    this.count(packed, -1)
    this.entries.delete(id)
    this.deleted.add(id)
    if (this.deleted.size > 1024 && this.deleted.size * 2 > this.order.length) {
      this.order = this.order.filter(x => !this.deleted.has(x))
      this.deleted.clear()
    }
  }

  /** Ids in `folder` whose Message-ID is `messageId`, oldest first. */
  duplicates (folder: Folder, messageId: string): readonly string[] {
    return asArray(this.byMessageId.get(duplicateKey(folder, messageId)))
  }

  /** Ids, in arrival order; of one folder if given. */
  ids (folder?: Folder): string[] {
    this.ensureSorted()
    const out: string[] = []
    const wanted = folder === undefined ? -1 : FOLDERS.indexOf(folder)
    for (const id of this.order) {
      const packed = this.entries.get(id)
      if (packed !== undefined && (wanted < 0 || (packed & FOLDER_MASK) === wanted)) out.push(id)
    }
    return out
  }

  /**
   * Up to `count` ids of `folder` below `before` (all if not given), newest first, leaving out
   * those `skip` names. A binary search for `before`, then a walk back until the page is full.
   */
  newest (folder: Folder, count: number, before?: string, skip?: (id: string) => boolean): string[] {
    if (count <= 0) return []
    this.ensureSorted()
    const wanted = FOLDERS.indexOf(folder)
    let end = this.order.length
    if (before !== undefined) {
      let lo = 0
      while (lo < end) { const mid = (lo + end) >>> 1; if (this.order[mid]! < before) lo = mid + 1; else end = mid }
    }
    const out: string[] = []
    for (let i = end - 1; i >= 0 && out.length < count; i--) {
      const id = this.order[i]!
      const packed = this.entries.get(id)
      if (packed === undefined || (packed & FOLDER_MASK) !== wanted || skip?.(id) === true) continue
      out.push(id)
    }
    return out
  }

  /**
   * Up to `count` ids of `folder` above `after` (all if not given), oldest first: a binary
   * search for `after`, then a walk forward until the page is full.
   */
  oldestAfter (folder: Folder, count: number, after?: string): string[] {
    if (count <= 0) return []
    this.ensureSorted()
    const wanted = FOLDERS.indexOf(folder)
    let start = 0
    if (after !== undefined) {
      let hi = this.order.length
      while (start < hi) { const mid = (start + hi) >>> 1; if (this.order[mid]! <= after) start = mid + 1; else hi = mid }
    }
    const out: string[] = []
    for (let i = start; i < this.order.length && out.length < count; i++) {
      const id = this.order[i]!
      const packed = this.entries.get(id)
      if (packed !== undefined && (packed & FOLDER_MASK) === wanted) out.push(id)
    }
    return out
  }

  /** Messages and messages without \Seen, per folder. */
  counts (): Map<Folder, { total: number, unread: number }> {
    return new Map(FOLDERS.map((folder, i) => [folder, { total: this.totals[i]!, unread: this.unseen[i]! }]))
  }

  /**
   * Ids of the thread whose root has Message-ID `root`, oldest first, in every folder: the
   * root (a message with that Message-ID, in any folder) and the replies that name it.
   */
  thread (root: string): string[] {
    if (root === '') return []
    const ids = new Set(asArray(this.byThread.get(threadKey(root))))
    for (const folder of FOLDERS) for (const id of this.duplicates(folder, root)) ids.add(id)
    return [...ids].sort()
  }

  /** thread(root).length, without building the list. */
  threadSize (root: string): number {
    if (root === '') return 0
    let size = asArray(this.byThread.get(threadKey(root))).length
    for (const folder of FOLDERS) size += this.duplicates(folder, root).length
    return size
  }

  clear (): void {
    this.entries.clear()
    this.byMessageId.clear()
    this.byThread.clear()
    this.totals.fill(0)
    this.unseen.fill(0)
    this.order = []
    this.deleted.clear()
    this.ordered = true
  }

  /** Put `order` back in ascending order if a late id came in (rare: see `order`). */
  private ensureSorted (): void {
    if (this.ordered) return
    this.order.sort()
    this.ordered = true
  }

  private count (packed: number, delta: number): void {
    const folder = packed & FOLDER_MASK
    this.totals[folder]! += delta
    if (!this.flagSetSeen[packed >>> FOLDER_BITS]!) this.unseen[folder]! += delta
  }

  private flagSetId (flags: readonly string[]): number {
    const key = flags.join('\0')
    let index = this.flagSetIds.get(key)
    if (index === undefined) {
      index = this.flagSets.push(Object.freeze([...flags])) - 1
      this.flagSetSeen[index] = flags.includes('\\Seen')
      this.flagSetIds.set(key, index)
    }
    return index
  }
}

function asArray (ids: Ids | undefined): readonly string[] {
  return ids === undefined ? [] : typeof ids === 'string' ? [ids] : ids
}

function link (map: Map<string, Ids>, key: string, id: string): void {
  const ids = map.get(key)
  map.set(key, ids === undefined ? id : [...asArray(ids), id].sort())
}

function unlink (map: Map<string, Ids>, key: string, id: string): void {
  const ids = asArray(map.get(key)).filter(x => x !== id)
  if (ids.length === 0) map.delete(key); else map.set(key, ids.length === 1 ? ids[0]! : ids)
}

/** 128 bits of SHA-256 over folder and Message-ID: in memory only, never stored. */
function duplicateKey (folder: Folder, messageId: string): string {
  return createHash('sha256').update(folder).update('\0').update(messageId).digest().toString('base64url', 0, 16)
}

/** The same for a thread root; "\u0001" keeps it apart from every duplicateKey. */
function threadKey (root: string): string {
  return createHash('sha256').update('\u0001thread\0').update(root).digest().toString('base64url', 0, 16)
}
