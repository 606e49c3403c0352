// The vault's full-text search index, encrypted at rest, in the vault's LevelDB.
//
// On-disk format version 1 (keys are bytes; the index owns every key that starts with
// 'x' (0x78) or 'X' (0x58) and touches no other):
//
//   'x' | T(16)             term head    seal(postings key, head, AD("search term", key))
//   'x' | T(16) | G(u32 BE) chunk        seal(postings key, doc list, AD("search postings", key))
//   'X' | 's'               state        seal(postings key, state, AD("search state", key))
//
// T = HMAC-SHA256(term key, term string)[0..16] (crypto.ts `mac`), the term's opaque name;
// term strings are `*:word`, `from:word`, `to:word`, `subject:word` and the same with a whole
// address (terms.ts). G is the generation (flush number) that wrote the chunk: never reused,
// so no chunk value can stand in for another, even an older one of the same term. AD is
// crypto.ts `associatedData(kind, key bytes)`: a value moved to another key does not open.
// Every value is AES-256-GCM sealed (crypto.ts `seal`); plaintexts are varints (postings.ts):
//
//   head   = chunk count, then per chunk in the order written: G, docs, first doc,
//            last - first; then inline count, then the inline documents as a doc list
//   chunk  = the chunk's documents as a doc list
//   doc list = strictly increasing documents as the first, then the gaps (>= 1)
//   state  = format (1 byte, = 1), generation, term heads, chunks,
//            indexed documents (ranges), removed documents (ranges)
//   ranges = count, then per range: gap from the previous range's end, length
//
// A term's documents are its chunks' and its head's inline documents. The newest documents
// of a term stay inline in its head until they take more than `inlineBytes` (512) encoded;
// then they become a chunk (see the merge policy). The head has to be read and rewritten at
// every flush that touches the term anyway (it lists the chunks), so keeping the newest
// documents in it saves a chunk seal per term per flush (seals, not bytes, are what a flush
// spends its time on), and a rare word is one record, not two. This deviates from "one new
// chunk per term touched" on purpose.
//
// Consistency: one flush is one LevelDB batch (synced) holding the new chunks, the merged
// chunks' deletions, the rewritten heads and the new state, so after a crash the state
// never claims a document whose postings are missing, and a head never names a missing
// chunk. Searches read through one LevelDB snapshot, so a flush committing mid-search cannot
// delete a chunk a head it already read names.
//
// Merge policy (per term, at flush, when the inline documents spill into a chunk): before
// that chunk is written, the term's newest chunks are folded into it while the newest
// remaining chunk holds fewer than r times the documents of the chunk being built, with
// r = max(2, (documents of the term / new documents)^(1/(MAX_CHUNKS - 1))); then, if the
// term would still have more than MAX_CHUNKS (8) chunks, the newest are folded in until it
// has MAX_CHUNKS. Chunk sizes so grow geometrically from newest to oldest, the ratio
// widening just enough for the term's whole history to fit in 8 chunks: a search reads at
// most 8 chunks per term, and each posting is rewritten about log_r(flushes) times
// (simulated: 9 times over 5,000 flushes, 17 over 100,000; terms.test.ts checks it). The
// simpler "merge all chunks into one when there are more than 8" would rewrite the whole
// list of a common word every 8 flushes, quadratic in the mailbox when the vault flushes
// after each message; "fold the newest until there are 8" is as bad once a term is full
// (2,000 rewrites per posting over 5,000 flushes). Merging drops removed documents from the
// chunks it rewrites.
//
// What the disk still tells someone without the keys: how many term heads and chunks there
// are, and from value sizes roughly how many documents each term has (its frequency profile)
// and which terms were touched by the same flush. Not which words they are.
import type { ChainedBatch as LevelChainedBatch, ClassicLevel } from 'classic-level'
import { associatedData, mac, open as openSealed, seal, TamperError } from '../crypto.ts'
import type { Logger } from '../../log/index.ts'
import { silentLogger } from '../../log/index.ts'
import { decodeDocList, docListBytes, DocRanges, encodeDocList, FormatError, MAX_DOC, unionSorted, VarintReader, VarintWriter } from './postings.ts'
import { documentTerms, queryTerms, type SearchText } from './terms.ts'

export const SEARCH_FORMAT = 1
/**
 * A flush costs about the same for every distinct term it touches (read, open, seal and
 * write the term's head), and 2,000 messages already touch ~40,000 terms: building 20,000
 * messages in bench/search.ts cost ~1.4 ms of indexing per message flushing every 2,000,
 * ~0.55 ms every 10,000. 10,000 buffered messages hold ~15 MB of postings, and
 * MAX_BUFFERED_POSTINGS caps long ones. (The vault passes its own `searchFlushEvery`.)
 */
export const DEFAULT_FLUSH_EVERY = 10_000
export const MAX_CHUNKS = 8
export const DEFAULT_LIMIT = 50
export const DEFAULT_INLINE_BYTES = 512
/**
 * Term names (HMACs) of recently used terms, kept so that a word in every flush is not
 * hashed again every flush. Bounded; it holds term strings, which are plaintext, in memory
 * only while the index is open, as the buffer does.
 */
const TERM_NAME_CACHE = 65_536
/**
 * Terms whose records a flush builds at a time (see writeFlush): each slice is ~60 ms of
 * synchronous work at most, then the flush awaits LevelDB and other work gets a turn.
 */
const FLUSH_SLICE = 1024
/**
 * Flush by itself once the buffer holds this many postings, whatever flushEvery says: ten
 * thousand long messages would otherwise hold ~100 MB of buffered postings.
 */
const MAX_BUFFERED_POSTINGS = 2_000_000

const TERM_NAME_BYTES = 16
const HEAD_PREFIX = 0x78 // 'x'
const STATE_KEY = Buffer.from('Xs', 'latin1')

/** The two 32-byte keys the vault derives for search (VaultKeys.searchTerm, .searchPostings). */
export interface SearchKeys {
  term: Buffer
  postings: Buffer
}

export interface SearchIndexInit {
  /** The vault's database, open, with `keyEncoding: 'buffer', valueEncoding: 'buffer'`. */
  db: ClassicLevel<Buffer, Buffer>
  keys: SearchKeys
  /** Flush by itself once this many documents are buffered (default 10,000). */
  flushEvery?: number
  /**
   * A term's newest documents stay inline in its head up to this many encoded bytes
   * (default 512) before they become a chunk. Tuning; tests set it low to make chunks.
   */
  inlineBytes?: number
  logger?: Logger
}

export interface SearchOptions {
  /** At most this many results (default 50). */
  limit?: number
  /** Paging: only documents numbered below this one. */
  before?: number
}

export interface SearchStats {
  /** Documents indexed (flushed or buffered) and not removed. */
  docs: number
  /** Term heads on disk. */
  terms: number
  /** Posting chunks on disk. */
  chunks: number
  bufferedDocs: number
}

/**
 * The contract. Documents are message numbers (positive integers below 2^32; newer mail has
 * higher numbers, but adds may come in any order).
 *
 * - `add` is synchronous: the document is searchable at once, and durable after the next
 *   flush, which happens by itself every `flushEvery` documents or when `flush()` is called.
 *   Adding a document already indexed does nothing. A removed document number stays removed:
 *   adding it again does nothing either (numbers are never reused; re-adding could not
 *   unindex the words of what was removed).
 * - `remove` hides the document from results at once; it is durable after the next flush.
 * - `flush` resolves when every add and remove made before the call is on disk (synced).
 * - A changed, moved, missing or undecodable value makes `open`, `search` or `flush` reject
 *   with a SearchError: never silently wrong results. The vault then rebuilds the index.
 * - `close` flushes and forgets everything, keys included. The database stays open (the
 *   vault owns it).
 */
export interface SearchIndex {
  open: () => Promise<void>
  has: (doc: number) => boolean
  add: (doc: number, text: SearchText) => void
  remove: (doc: number) => void
  flush: () => Promise<void>
  /** Documents with every term of the query, newest (highest number) first. */
  search: (query: string, options?: SearchOptions) => Promise<number[]>
  stats: () => SearchStats
  close: () => Promise<void>
}

export class SearchError extends Error {
  override name = 'SearchError'
}

type ChainedBatch = LevelChainedBatch<ClassicLevel<Buffer, Buffer>, Buffer, Buffer>

interface ChunkInfo {
  gen: number
  count: number
  min: number
  max: number
}

/** Documents added since the last flush began: term string -> documents, in add order. */
class Pending {
  readonly terms = new Map<string, number[]>()
  readonly docs = new Set<number>()
  postings = 0
}

const headKey = (name: Buffer): Buffer => {
  const key = Buffer.allocUnsafe(1 + TERM_NAME_BYTES)
  key[0] = HEAD_PREFIX
  name.copy(key, 1)
  return key
}

const chunkKey = (name: Buffer, gen: number): Buffer => {
  const key = Buffer.allocUnsafe(1 + TERM_NAME_BYTES + 4)
  key[0] = HEAD_PREFIX
  name.copy(key, 1)
  key.writeUInt32BE(gen, 1 + TERM_NAME_BYTES)
  return key
}

interface Head {
  chunks: ChunkInfo[]
  inline: Uint32Array
}

function encodeHead (head: Head): Buffer {
  const w = new VarintWriter(8 + head.chunks.length * 12 + head.inline.length * 2)
  w.write(head.chunks.length)
  for (const c of head.chunks) {
    w.write(c.gen)
    w.write(c.count)
    w.write(c.min)
    w.write(c.max - c.min)
  }
  w.write(head.inline.length)
  let previous = 0
  for (const doc of head.inline) {
    w.write(doc - previous)
    previous = doc
  }
  return w.finish()
}

function decodeHead (bytes: Buffer): Head {
  const r = new VarintReader(bytes)
  const n = r.read()
  if (n > MAX_CHUNKS) throw new FormatError(`A term head lists ${n} chunks.`)
  const chunks: ChunkInfo[] = []
  for (let i = 0; i < n; i++) {
    const gen = r.read()
    const count = r.read()
    const min = r.read()
    const max = min + r.read()
    if (count < 1 || min < 1 || max > MAX_DOC || gen > 0xffff_ffff || count > max - min + 1) throw new FormatError('A term head describes an impossible chunk.')
    chunks.push({ gen, count, min, max })
  }
  const inlineCount = r.read()
  if (inlineCount > bytes.length) throw new FormatError('A term head claims more inline documents than it has bytes.')
  const inline = decodeDocList(bytes.subarray(r.offset), inlineCount)
  if (n === 0 && inlineCount === 0) throw new FormatError('A term head is empty.')
  return { chunks, inline }
}

interface State {
  generation: number
  terms: number
  chunks: number
  indexed: DocRanges
  removed: DocRanges
}

function encodeState (s: State): Buffer {
  const w = new VarintWriter(64)
  w.writeByte(SEARCH_FORMAT)
  w.write(s.generation)
  w.write(s.terms)
  w.write(s.chunks)
  s.indexed.write(w)
  s.removed.write(w)
  return w.finish()
}

function decodeState (bytes: Buffer): State {
  const r = new VarintReader(bytes)
  const format = r.readByte()
  if (format !== SEARCH_FORMAT) throw new SearchError(`The search index has format ${format}; this version reads format ${SEARCH_FORMAT}. Rebuild it.`)
  const state = { generation: r.read(), terms: r.read(), chunks: r.read(), indexed: DocRanges.read(r), removed: DocRanges.read(r) }
  if (!r.done) throw new FormatError('The search state has trailing bytes.')
  return state
}

/**
 * Which of a term's chunks (in the order written) to fold into the chunk being written with
 * `incoming` new documents: the newest ones, from the returned index on (the merge policy above).
 */
export function chunksToMerge (chunks: ChunkInfo[], incoming: number): number {
  let total = incoming
  for (const c of chunks) total += c.count
  const ratio = Math.max(2, (total / Math.max(1, incoming)) ** (1 / (MAX_CHUNKS - 1)))
  let from = chunks.length
  let size = incoming
  while (from > 0 && chunks[from - 1]!.count < ratio * size) {
    from--
    size += chunks[from]!.count
  }
  while (from + 1 > MAX_CHUNKS) from--
  return from
}

/** The index of the first element > `value` in `list[0..end)`. */
function upperBound (list: Uint32Array, value: number, end = list.length): number {
  let lo = 0
  let hi = end
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (list[mid]! <= value) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * Newest first, the documents below `before` in every list (each sorted ascending; the
 * first is the shortest), not removed, at most `limit`. Walks the shortest list downwards
 * and looks each candidate up in the others with a shrinking binary search, so it stops
 * as soon as `limit` results are found.
 */
function intersectNewestFirst (lists: Uint32Array[], before: number, limit: number, removed: DocRanges): number[] {
  const [first, ...rest] = lists
  if (first === undefined) return []
  const ends = rest.map((l) => l.length)
  const out: number[] = []
  candidates: for (let i = upperBound(first, before - 1) - 1; i >= 0 && out.length < limit; i--) {
    const doc: number = first[i]!
    for (let k = 0; k < rest.length; k++) {
      const list = rest[k]!
      const j = upperBound(list, doc, ends[k]) - 1
      if (j < 0) break candidates // nothing older left in this list: no more results
      ends[k] = j + 1
      if (list[j] !== doc) continue candidates
    }
    if (!removed.has(doc)) out.push(doc)
  }
  return out
}

function checkDoc (doc: number): void {
  if (!Number.isInteger(doc) || doc < 1 || doc > MAX_DOC) throw new SearchError(`A document number must be an integer from 1 to ${MAX_DOC}, not ${doc}.`)
}

class EncryptedSearchIndex implements SearchIndex {
  private readonly db: ClassicLevel<Buffer, Buffer>
  private readonly flushEvery: number
  private readonly log: Logger
  /** Our own copies, zeroed on close; the vault's keys are the vault's to wipe. */
  private termKey: Buffer
  private postingsKey: Buffer
  private state: State | undefined
  private buffer = new Pending()
  /** The documents of the flush in progress: still searched until its batch is on disk. */
  private flushing: Pending | undefined
  /** Bumped by every remove, so a flush knows whether removals came in while it ran. */
  private removals = 0
  private persistedRemovals = 0
  private flushQueue: Promise<void> = Promise.resolve()
  private autoFlushAt: number
  private autoFlushPostingsAt = MAX_BUFFERED_POSTINGS
  private readonly inlineBytes: number
  private termNames = new Map<string, Buffer>()

  constructor (init: SearchIndexInit) {
    if (init.keys.term.byteLength !== 32 || init.keys.postings.byteLength !== 32) throw new SearchError('The search keys must be 32 bytes each.')
    this.db = init.db
    this.termKey = Buffer.from(init.keys.term)
    this.postingsKey = Buffer.from(init.keys.postings)
    this.flushEvery = Math.max(1, Math.floor(init.flushEvery ?? DEFAULT_FLUSH_EVERY))
    this.autoFlushAt = this.flushEvery
    this.inlineBytes = Math.max(0, Math.floor(init.inlineBytes ?? DEFAULT_INLINE_BYTES))
    this.log = (init.logger ?? silentLogger()).child({ component: 'search' })
  }

  async open (): Promise<void> {
    if (this.state !== undefined) return
    const sealed = await this.db.get(STATE_KEY)
    if (sealed === undefined) {
      // A fresh index, unless index records exist without their state: then the state was
      // deleted, and starting over would reuse generations and corrupt the old records.
      for (const [gte, lt] of [['x', 'y'], ['X', 'Y']] as const) {
        const found = await this.db.keys({ gte: Buffer.from(gte), lt: Buffer.from(lt), limit: 1 }).all()
        if (found.length > 0) throw new SearchError('The search index has records but no state: it is damaged. Rebuild it.')
      }
      this.state = { generation: 0, terms: 0, chunks: 0, indexed: new DocRanges(), removed: new DocRanges() }
      this.log.info('Opened a new, empty search index.')
      return
    }
    try {
      this.state = decodeState(this.unseal(sealed, 'search state', STATE_KEY, 'the search state'))
    } catch (err) {
      throw this.asSearchError(err, 'open')
    }
    this.log.info({ docs: this.stats().docs, terms: this.state.terms, chunks: this.state.chunks }, 'Opened the search index.')
  }

  private opened (): State {
    if (this.state === undefined) throw new SearchError('The search index is not open.')
    return this.state
  }

  has (doc: number): boolean {
    const state = this.opened()
    if (state.removed.has(doc)) return false
    return state.indexed.has(doc) || this.buffer.docs.has(doc) || (this.flushing?.docs.has(doc) ?? false)
  }

  add (doc: number, text: SearchText): void {
    const state = this.opened()
    checkDoc(doc)
    if (state.removed.has(doc)) {
      this.log.debug({ doc }, 'Not indexing a removed document again.')
      return
    }
    if (this.has(doc)) return
    const terms = documentTerms(text)
    for (const term of terms) {
      const docs = this.buffer.terms.get(term)
      if (docs === undefined) this.buffer.terms.set(term, [doc])
      else docs.push(doc)
    }
    this.buffer.docs.add(doc)
    this.buffer.postings += terms.size
    if (this.buffer.docs.size >= this.autoFlushAt || this.buffer.postings >= this.autoFlushPostingsAt) {
      // A failed flush keeps its documents buffered; retry after as many adds again, not
      // on every add.
      this.autoFlushAt = this.buffer.docs.size + this.flushEvery
      this.autoFlushPostingsAt = this.buffer.postings + MAX_BUFFERED_POSTINGS
      this.flush().catch((err: unknown) => {
        this.log.error({ err }, 'The search index could not flush by itself; the documents stay buffered.')
      })
    }
  }

  remove (doc: number): void {
    const state = this.opened()
    checkDoc(doc)
    if (state.removed.has(doc)) return
    state.removed.add(doc)
    this.removals++
  }

  async flush (): Promise<void> {
    this.opened()
    const run = this.flushQueue.then(async () => { await this.flushOnce() })
    this.flushQueue = run.catch(() => {})
    await run
  }

  private async flushOnce (): Promise<void> {
    const state = this.state
    if (state === undefined) return // closed while queued
    if (this.buffer.docs.size === 0 && this.removals === this.persistedRemovals) return
    const flushing = this.buffer
    this.buffer = new Pending()
    this.flushing = flushing
    this.autoFlushAt = this.flushEvery
    this.autoFlushPostingsAt = MAX_BUFFERED_POSTINGS
    const removalsAt = this.removals
    try {
      const next = await this.writeFlush(state, flushing)
      this.state = next
      this.persistedRemovals = removalsAt
      this.log.debug({ docs: flushing.docs.size, generation: next.generation }, 'Flushed the search index.')
    } catch (err) {
      // Put the documents back in front of what was added meanwhile, so nothing is lost.
      for (const [term, docs] of this.buffer.terms) {
        const earlier = flushing.terms.get(term)
        if (earlier === undefined) flushing.terms.set(term, docs)
        else for (const doc of docs) earlier.push(doc)
      }
      for (const doc of this.buffer.docs) flushing.docs.add(doc)
      flushing.postings += this.buffer.postings
      this.buffer = flushing
      throw this.asSearchError(err, 'flush')
    } finally {
      this.flushing = undefined
    }
  }

  /**
   * Builds and commits one batch; returns the state it wrote. Terms are handled in slices
   * (read their heads, plan, put the new records into the batch) so the JavaScript heap
   * holds one slice's records at a time; the chained batch keeps the rest natively. Reading
   * between awaits is safe: flushes run one at a time, and nothing else writes these keys.
   */
  private async writeFlush (state: State, pending: Pending): Promise<State> {
    const generation = state.generation + 1
    if (generation > 0xffff_ffff) throw new SearchError('The search index has used all its generations. Rebuild it.')
    // The removals as of now; ones made while this flush runs go in the next state.
    const removed = state.removed.clone()
    const live = removed.rangeCount === 0 ? (docs: Uint32Array) => docs : (docs: Uint32Array) => docs.filter((doc) => !removed.has(doc))
    const counts = { terms: state.terms, chunks: state.chunks }
    const batch = this.db.batch()
    try {
      const all = [...pending.terms]
      for (let start = 0; start < all.length; start += FLUSH_SLICE) {
        const slice = all.slice(start, start + FLUSH_SLICE).map(([term, docs]) => ({ name: this.termName(term), docs: live(Uint32Array.from(docs).sort()) }))
        await this.flushTerms(slice, generation, live, batch, counts)
      }
      const indexed = state.indexed.clone()
      for (const doc of pending.docs) indexed.add(doc)
      const next: State = { generation, terms: counts.terms, chunks: counts.chunks, indexed, removed: state.removed }
      // The live removed set keeps collecting removals; the state on disk gets this copy.
      batch.put(STATE_KEY, seal(this.postingsKey, encodeState({ ...next, removed }), associatedData('search state', STATE_KEY)))
      await batch.write({ sync: true })
      return next
    } catch (err) {
      await batch.close() // discards what was queued; a no-op if write already closed it
      throw err
    }
  }

  /** Plans and writes the records of some terms into the flush's batch. */
  private async flushTerms (
    entries: Array<{ name: Buffer, docs: Uint32Array }>, generation: number, live: (docs: Uint32Array) => Uint32Array,
    batch: ChainedBatch, counts: { terms: number, chunks: number }
  ): Promise<void> {
    const heads = await this.db.getMany(entries.map((e) => headKey(e.name)))
    // Per term: the new inline documents, or a spill into a new chunk (merging older ones).
    interface Plan { name: Buffer, existed: boolean, chunks: ChunkInfo[], inline: Uint32Array, spill: Uint32Array | undefined, merge: ChunkInfo[], firstRead: number }
    const plans: Plan[] = []
    const reads: Buffer[] = []
    for (let i = 0; i < entries.length; i++) {
      const { name, docs } = entries[i]!
      const sealedHead = heads[i]
      const head = sealedHead === undefined ? { chunks: [], inline: new Uint32Array(0) } : this.readHead(name, sealedHead)
      const inline = live(head.inline.length === 0 ? docs : unionSorted([head.inline, docs]))
      if (docs.length === 0 && inline.length === head.inline.length) continue // nothing new: every new document was removed already
      if (docListBytes(inline) <= this.inlineBytes) {
        plans.push({ name, existed: sealedHead !== undefined, chunks: head.chunks, inline, spill: undefined, merge: [], firstRead: reads.length })
        continue
      }
      const from = chunksToMerge(head.chunks, inline.length)
      const merge = head.chunks.slice(from)
      plans.push({ name, existed: sealedHead !== undefined, chunks: head.chunks.slice(0, from), inline: new Uint32Array(0), spill: inline, merge, firstRead: reads.length })
      for (const c of merge) reads.push(chunkKey(name, c.gen))
    }
    const values = reads.length > 0 ? await this.db.getMany(reads) : []

    for (const plan of plans) {
      const { chunks, inline } = plan
      if (plan.spill !== undefined) {
        const lists = [plan.spill]
        plan.merge.forEach((c, k) => {
          const key = reads[plan.firstRead + k]!
          lists.push(this.readChunk(key, values[plan.firstRead + k], c))
          batch.del(key)
        })
        const merged = plan.merge.length === 0 ? plan.spill : live(unionSorted(lists))
        if (merged.length > 0) {
          const key = chunkKey(plan.name, generation)
          batch.put(key, seal(this.postingsKey, encodeDocList(merged), associatedData('search postings', key)))
          chunks.push({ gen: generation, count: merged.length, min: merged[0]!, max: merged[merged.length - 1]! })
          counts.chunks++
        }
        counts.chunks -= plan.merge.length
      }
      const key = headKey(plan.name)
      if (chunks.length === 0 && inline.length === 0) {
        batch.del(key)
        if (plan.existed) counts.terms--
      } else {
        batch.put(key, seal(this.postingsKey, encodeHead({ chunks, inline }), associatedData('search term', key)))
        if (!plan.existed) counts.terms++
      }
    }
  }

  async search (query: string, options: SearchOptions = {}): Promise<number[]> {
    this.opened()
    const limit = options.limit ?? DEFAULT_LIMIT
    const before = options.before ?? Infinity
    if (!Number.isInteger(limit) || limit < 0) throw new SearchError(`A search limit must be a non-negative integer, not ${limit}.`)
    const terms = queryTerms(query)
    if (terms.length === 0 || limit === 0 || before <= 1) return []

    // Take the snapshot and the buffers in the same turn: a flush that commits later is
    // then seen either in the buffer it came from or on disk, never in neither.
    const buffers = this.flushing === undefined ? [this.buffer] : [this.buffer, this.flushing]
    const snapshot = this.db.snapshot()
    try {
      const names = terms.map((t) => this.termName(t))
      const heads = await this.db.getMany(names.map(headKey), { snapshot })
      const perTerm: Array<{ name: Buffer, chunks: ChunkInfo[], inline: Uint32Array, buffered: number[], count: number }> = []
      for (let i = 0; i < terms.length; i++) {
        const sealedHead = heads[i]
        const head = sealedHead === undefined ? { chunks: [], inline: new Uint32Array(0) } : this.readHead(names[i]!, sealedHead)
        const chunks = head.chunks.filter((c) => c.min < before)
        const buffered: number[] = []
        for (const b of buffers) {
          const docs = b.terms.get(terms[i]!)
          if (docs !== undefined) for (const doc of docs) buffered.push(doc)
        }
        const count = buffered.length + head.inline.length + chunks.reduce((n, c) => n + c.count, 0)
        if (count === 0) return [] // AND with an absent term
        perTerm.push({ name: names[i]!, chunks, inline: head.inline, buffered, count })
      }
      perTerm.sort((a, b) => a.count - b.count)
      const keys: Buffer[] = []
      for (const t of perTerm) for (const c of t.chunks) keys.push(chunkKey(t.name, c.gen))
      const values = keys.length > 0 ? await this.db.getMany(keys, { snapshot }) : []
      let k = 0
      const lists = perTerm.map((t) => {
        const parts = t.chunks.map((c) => { const i = k++; return this.readChunk(keys[i]!, values[i], c) })
        parts.push(t.inline)
        if (t.buffered.length > 0) parts.push(Uint32Array.from(t.buffered).sort())
        return unionSorted(parts)
      })
      lists.sort((a, b) => a.length - b.length)
      return intersectNewestFirst(lists, before, limit, this.opened().removed)
    } catch (err) {
      throw this.asSearchError(err, 'search')
    } finally {
      await snapshot.close()
    }
  }

  stats (): SearchStats {
    const state = this.opened()
    let docs = state.indexed.size - state.indexed.countIn(state.removed)
    let bufferedDocs = 0
    for (const p of this.flushing === undefined ? [this.buffer] : [this.buffer, this.flushing]) {
      for (const doc of p.docs) {
        bufferedDocs++
        if (!state.removed.has(doc) && !state.indexed.has(doc)) docs++
      }
    }
    return { docs, terms: state.terms, chunks: state.chunks, bufferedDocs }
  }

  async close (): Promise<void> {
    if (this.state === undefined) return
    try {
      await this.flush()
    } finally {
      this.state = undefined
      this.buffer = new Pending()
      this.termNames.clear()
      this.termKey.fill(0)
      this.postingsKey.fill(0)
    }
  }

  /** The term's opaque name, from the cache or computed (first in, first out when full). */
  private termName (term: string): Buffer {
    let name = this.termNames.get(term)
    if (name === undefined) {
      name = mac(this.termKey, term)
      if (this.termNames.size >= TERM_NAME_CACHE) this.termNames.delete(this.termNames.keys().next().value!)
      this.termNames.set(term, name)
    }
    return name
  }

  private unseal (sealed: Buffer, kind: string, key: Buffer, what: string): Buffer {
    try {
      return openSealed(this.postingsKey, sealed, associatedData(kind, key))
    } catch (err) {
      if (err instanceof TamperError) throw new SearchError(`${what[0]!.toUpperCase()}${what.slice(1)} does not authenticate: the search index was changed or damaged. Rebuild it.`, { cause: err })
      throw err
    }
  }

  private readHead (name: Buffer, sealed: Buffer): Head {
    const key = headKey(name)
    return decodeHead(this.unseal(sealed, 'search term', key, 'a term head'))
  }

  private readChunk (key: Buffer, sealed: Buffer | undefined, info: ChunkInfo): Uint32Array {
    if (sealed === undefined) throw new SearchError('A posting chunk named by its term head is missing: the search index was damaged. Rebuild it.')
    const docs = decodeDocList(this.unseal(sealed, 'search postings', key, 'a posting chunk'), info.count)
    if (docs[0] !== info.min || docs[docs.length - 1] !== info.max) throw new FormatError('A posting chunk does not span what its term head says.')
    return docs
  }

  private asSearchError (err: unknown, during: string): SearchError {
    if (err instanceof SearchError) return err
    if (err instanceof FormatError) return new SearchError(`The search index is damaged (${err.message}) Rebuild it.`, { cause: err })
    return new SearchError(`The search index failed during ${during}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
}

export function searchIndex (init: SearchIndexInit): SearchIndex {
  return new EncryptedSearchIndex(init)
}
