// The plain byte formats inside the search index's sealed values: unsigned LEB128 varints,
// delta-encoded sorted document lists, and compact sets of document ranges. Nothing here
// touches the disk or the keys; search-index.ts seals what these functions produce.

/** A document number: a positive integer that fits in 32 bits (postings decode to Uint32Array). */
export const MAX_DOC = 0xffff_ffff

/** Appends unsigned LEB128 varints to a growing byte array. */
export class VarintWriter {
  private bytes: Uint8Array
  length = 0

  constructor (capacity = 64) {
    this.bytes = new Uint8Array(Math.max(16, capacity))
  }

  /** `n` is a non-negative safe integer (document numbers and counts stay far below 2^53). */
  write (n: number): void {
    this.reserve(8)
    while (n >= 0x80) {
      this.bytes[this.length++] = (n % 0x80) | 0x80
      n = Math.floor(n / 0x80)
    }
    this.bytes[this.length++] = n
  }

  writeByte (b: number): void {
    this.reserve(1)
    this.bytes[this.length++] = b & 0xff
  }

  private reserve (n: number): void {
    if (this.length + n <= this.bytes.length) return
    const grown = new Uint8Array(this.bytes.length * 2 + n)
    grown.set(this.bytes.subarray(0, this.length))
    this.bytes = grown
  }

  finish (): Buffer {
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset, this.length)
  }
}

/** The bytes did not decode: truncated, overlong, or out of range. */
export class FormatError extends Error {
  override name = 'FormatError'
}

export class VarintReader {
  offset = 0
  constructor (private readonly bytes: Uint8Array) {}

  get done (): boolean {
    return this.offset >= this.bytes.length
  }

  read (): number {
    let result = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      if (this.offset >= this.bytes.length) throw new FormatError('A varint runs past the end of its value.')
      const b = this.bytes[this.offset++]!
      result += (b & 0x7f) * scale
      if (b < 0x80) return result
      scale *= 0x80
    }
    throw new FormatError('A varint is longer than 8 bytes.')
  }

  readByte (): number {
    if (this.offset >= this.bytes.length) throw new FormatError('A value ends early.')
    return this.bytes[this.offset++]!
  }
}

/**
 * A sorted list of distinct documents as varints: the first document, then each gap to the
 * next (always >= 1). Contiguous mail numbers make most gaps of a common word one byte.
 */
export function encodeDocList (docs: ArrayLike<number>): Buffer {
  const w = new VarintWriter(docs.length + 8)
  let previous = 0
  for (let i = 0; i < docs.length; i++) {
    const doc = docs[i]!
    w.write(doc - previous)
    previous = doc
  }
  return w.finish()
}

/** The length of encodeDocList(docs), without building it. */
export function docListBytes (docs: ArrayLike<number>): number {
  let bytes = 0
  let previous = 0
  for (let i = 0; i < docs.length; i++) {
    const gap = docs[i]! - previous
    previous = docs[i]!
    bytes += gap < 0x80 ? 1 : gap < 0x4000 ? 2 : gap < 0x20_0000 ? 3 : gap < 0x1000_0000 ? 4 : 5
  }
  return bytes
}

export function decodeDocList (bytes: Uint8Array, expectedCount: number): Uint32Array {
  const out = new Uint32Array(expectedCount)
  let doc = 0
  let n = 0
  let offset = 0
  const end = bytes.length
  // Hand-inlined varint loop: this is the hot path of every query on a common word.
  while (offset < end) {
    let b = bytes[offset++]!
    let gap = b & 0x7f
    let scale = 0x80
    while (b >= 0x80) {
      if (offset >= end || scale > 0x80 ** 5) throw new FormatError('A posting runs past the end of its chunk.')
      b = bytes[offset++]!
      gap += (b & 0x7f) * scale
      scale *= 0x80
    }
    if (gap === 0 && n > 0) throw new FormatError('A posting list is not strictly increasing.')
    doc += gap
    if (doc < 1 || doc > MAX_DOC) throw new FormatError('A posting is out of range.')
    if (n >= expectedCount) throw new FormatError('A chunk holds more postings than its term head says.')
    out[n++] = doc
  }
  if (n !== expectedCount) throw new FormatError('A chunk holds fewer postings than its term head says.')
  return out
}

/** Union of sorted lists (each strictly increasing), as one strictly increasing list. */
export function unionSorted (lists: Uint32Array[]): Uint32Array {
  const nonEmpty = lists.filter((l) => l.length > 0)
  if (nonEmpty.length === 0) return new Uint32Array(0)
  if (nonEmpty.length === 1) return nonEmpty[0]!
  let total = 0
  for (const l of nonEmpty) total += l.length
  // Chunks usually cover disjoint, increasing ranges (mail arrives in order): then the
  // union is a concatenation in order of first element. Otherwise sort and deduplicate.
  nonEmpty.sort((a, b) => a[0]! - b[0]!)
  const out = new Uint32Array(total)
  let n = 0
  let disjoint = true
  for (const l of nonEmpty) {
    if (n > 0 && l[0]! <= out[n - 1]!) disjoint = false
    out.set(l, n)
    n += l.length
  }
  if (disjoint) return out
  out.sort()
  let w = 1
  for (let r = 1; r < out.length; r++) if (out[r] !== out[w - 1]) out[w++] = out[r]!
  return out.subarray(0, w)
}

/**
 * A set of documents kept as sorted, disjoint, non-adjacent half-open ranges [start, end):
 * 100,000 contiguous messages are one range. Used for which documents are indexed and which
 * were removed.
 */
export class DocRanges {
  /** starts[i] < ends[i] < starts[i + 1] */
  private starts: number[] = []
  private ends: number[] = []

  get rangeCount (): number {
    return this.starts.length
  }

  /** How many documents the set holds. */
  get size (): number {
    let n = 0
    for (let i = 0; i < this.starts.length; i++) n += this.ends[i]! - this.starts[i]!
    return n
  }

  /** Index of the last range whose start is <= doc, or -1. */
  private find (doc: number): number {
    let lo = 0
    let hi = this.starts.length - 1
    let found = -1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (this.starts[mid]! <= doc) { found = mid; lo = mid + 1 } else hi = mid - 1
    }
    return found
  }

  has (doc: number): boolean {
    const i = this.find(doc)
    return i >= 0 && doc < this.ends[i]!
  }

  add (doc: number): void {
    const i = this.find(doc)
    if (i >= 0 && doc < this.ends[i]!) return
    const joinsLeft = i >= 0 && this.ends[i] === doc
    const joinsRight = i + 1 < this.starts.length && this.starts[i + 1] === doc + 1
    if (joinsLeft && joinsRight) {
      this.ends[i] = this.ends[i + 1]!
      this.starts.splice(i + 1, 1)
      this.ends.splice(i + 1, 1)
    } else if (joinsLeft) {
      this.ends[i] = doc + 1
    } else if (joinsRight) {
      this.starts[i + 1] = doc
    } else {
      this.starts.splice(i + 1, 0, doc)
      this.ends.splice(i + 1, 0, doc + 1)
    }
  }

  clone (): DocRanges {
    const c = new DocRanges()
    c.starts = [...this.starts]
    c.ends = [...this.ends]
    return c
  }

  /** How many documents of this set are also in `other`. */
  countIn (other: DocRanges): number {
    let n = 0
    let j = 0
    for (let i = 0; i < this.starts.length; i++) {
      const s = this.starts[i]!
      const e = this.ends[i]!
      while (j < other.starts.length && other.ends[j]! <= s) j++
      for (let k = j; k < other.starts.length && other.starts[k]! < e; k++) {
        n += Math.min(e, other.ends[k]!) - Math.max(s, other.starts[k]!)
      }
    }
    return n
  }

  /** count, then (gap from the previous range's end, length) per range, as varints. */
  write (w: VarintWriter): void {
    w.write(this.starts.length)
    let previousEnd = 0
    for (let i = 0; i < this.starts.length; i++) {
      w.write(this.starts[i]! - previousEnd)
      w.write(this.ends[i]! - this.starts[i]!)
      previousEnd = this.ends[i]!
    }
  }

  static read (r: VarintReader): DocRanges {
    const set = new DocRanges()
    const count = r.read()
    let previousEnd = 0
    for (let i = 0; i < count; i++) {
      const start = previousEnd + r.read()
      const length = r.read()
      if ((i > 0 && start <= previousEnd) || start < 1 || length < 1 || start + length - 1 > MAX_DOC) {
        throw new FormatError('A document range is empty, out of order or out of range.')
      }
      set.starts.push(start)
      set.ends.push(start + length)
      previousEnd = start + length
    }
    return set
  }
}
