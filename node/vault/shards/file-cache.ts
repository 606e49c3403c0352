// A bounded cache of read-only file handles, least recently used first out, so reading
// thousands of shards does not open and close a segment file for each one.
//
// A handle evicted while a read is using it is closed when that read is done, so the
// number of open files can pass the bound only by the number of reads in flight.
import { open, type FileHandle } from 'node:fs/promises'
import type { Logger } from '../../log/index.ts'
import { ShardStoreError } from './errors.ts'

interface Entry {
  handle: Promise<FileHandle>
  users: number
  evicted: boolean
}

export class FileCache {
  /** Map order is recency: the first entry is the least recently used. */
  private readonly entries = new Map<string, Entry>()
  private closed = false

  constructor (private readonly max: number, private readonly log?: Logger) {}

  /** Runs `fn` with a read-only handle on `path`; rejects as `open` does (ENOENT for a missing file). */
  async use<T> (path: string, fn: (fh: FileHandle) => Promise<T>): Promise<T> {
    // A read that outlives close() must not open files nobody will close.
    if (this.closed) throw new ShardStoreError('The shard store was closed during the read.')
    let entry = this.entries.get(path)
    if (entry !== undefined) {
      this.entries.delete(path)
    } else {
      entry = { handle: open(path, 'r'), users: 0, evicted: false }
      // A failed open is not cached: the file may appear later (a new segment), and every
      // caller waiting on it gets the rejection through `await` below.
      entry.handle.catch(() => { this.drop(path, entry!) })
    }
    this.entries.set(path, entry)
    this.evictOverflow()
    entry.users++
    try {
      return await fn(await entry.handle)
    } finally {
      entry.users--
      if (entry.evicted && entry.users === 0) this.closeEntry(path, entry)
    }
  }

  /** Closes every handle; handles in use close when their reads finish. */
  closeAll (): void {
    this.closed = true
    for (const [path, entry] of this.entries) this.evict(path, entry)
  }

  /** Closes the handle on `path` (when its reads finish): the file is about to be deleted. */
  forget (path: string): void {
    const entry = this.entries.get(path)
    if (entry !== undefined) this.evict(path, entry)
  }

  get size (): number {
    return this.entries.size
  }

  private evictOverflow (): void {
    for (const [path, entry] of this.entries) {
      if (this.entries.size <= this.max) break
      this.evict(path, entry)
    }
  }

  private evict (path: string, entry: Entry): void {
    this.drop(path, entry)
    entry.evicted = true
    if (entry.users === 0) this.closeEntry(path, entry)
  }

  private drop (path: string, entry: Entry): void {
    if (this.entries.get(path) === entry) this.entries.delete(path)
  }

  private closeEntry (path: string, entry: Entry): void {
    entry.handle.then((fh) => fh.close()).catch((err: unknown) => {
      // A failed open was already reported to its readers; a failed close of a read-only
      // handle loses nothing, but say so.
      if ((err as NodeJS.ErrnoException).syscall !== 'open') this.log?.warn({ err, path }, 'Closing a shard segment file failed.')
    })
  }
}
