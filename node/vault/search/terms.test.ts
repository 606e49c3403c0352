// Tables for the pure parts of the search index: terms, query parsing, the varint formats.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { documentTerms, queryTerms } from './terms.ts'
import { decodeDocList, DocRanges, encodeDocList, FormatError, unionSorted, VarintReader, VarintWriter } from './postings.ts'
import { chunksToMerge, MAX_CHUNKS } from './search-index.ts'

describe('queryTerms', () => {
  const table: Array<[string, string[]]> = [
    ['', []],
    ['the of and', []],
    ['Invoice', ['*:invoice']],
    ['red  apple', ['*:red', '*:apple']],
    ['apple apple', ['*:apple']],
    ['from:Alice', ['from:alice']],
    ['cc:bob', ['to:bob']],
    ['subject:"quarterly report"', ['subject:quarterly', '*:report']],
    ['from:alice@example.org', ['from:alice@example.org']],
    ['<alice@example.org>', ['*:alice@example.org']],
    ['bob@example.org.', ['*:bob@example.org']],
    ['from:example.org', ['from:example', 'from:org']],
    ['http://example.org/x', ['*:http', '*:example', '*:org', '*:x']],
    ['constructor:x', ['*:constructor', '*:x']],
    ['from:', []],
    ['ＡＢＣ', ['*:abc']],
    ['x'.repeat(65), []]
  ]
  for (const [query, expected] of table) {
    it(JSON.stringify(query.slice(0, 30)), () => { assert.deepEqual(queryTerms(query), expected) })
  }
})

describe('documentTerms', () => {
  it('indexes words under any field and their header, and whole addresses', () => {
    const terms = documentTerms({ from: 'Alice <Alice@Example.org>', to: 'bob@x.onion, Carol <c@y.org>', subject: 'Hi there', body: 'See carol@y.org. Bye' })
    for (const t of ['*:alice', 'from:alice', 'from:example', 'from:org', 'from:alice@example.org', '*:alice@example.org',
      'to:bob', 'to:onion', 'to:bob@x.onion', 'to:carol', 'to:c@y.org', 'subject:hi', 'subject:there', '*:see', '*:bye', '*:carol@y.org']) {
      assert.ok(terms.has(t), t)
    }
    for (const t of ['*:the', 'subject:see', 'from:bob', 'body:see']) assert.equal(terms.has(t), false, t)
  })
})

describe('postings formats', () => {
  it('round-trips doc lists and varints at the edges', () => {
    for (const list of [[1], [1, 2, 3], [5, 127, 128, 16_383, 16_384, 2 ** 21, 0xffff_ffff]]) {
      assert.deepEqual([...decodeDocList(encodeDocList(list), list.length)], list)
    }
    const w = new VarintWriter(1)
    for (const n of [0, 1, 127, 128, 2 ** 32, 2 ** 40]) w.write(n)
    const r = new VarintReader(w.finish())
    assert.deepEqual([0, 1, 127, 128, 2 ** 32, 2 ** 40].map(() => r.read()), [0, 1, 127, 128, 2 ** 32, 2 ** 40])
  })

  it('rejects hostile doc lists', () => {
    const bad: Array<[number[], number]> = [
      [[0x80], 1], // truncated varint
      [[1, 0], 2], // repeated document
      [[0], 1], // document 0
      [[1, 2], 1], // more than the head says
      [[1], 2], // fewer
      [[0xff, 0xff, 0xff, 0xff, 0x1f], 1], // beyond 2^32 - 1
      [[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], 1] // overlong
    ]
    for (const [bytes, count] of bad) assert.throws(() => decodeDocList(Uint8Array.from(bytes), count), FormatError, JSON.stringify(bytes))
  })

  it('unions overlapping and disjoint lists', () => {
    const u = (...ls: number[][]): number[] => [...unionSorted(ls.map((l) => Uint32Array.from(l)))]
    assert.deepEqual(u([1, 2], [3, 4]), [1, 2, 3, 4])
    assert.deepEqual(u([3, 4], [1, 2]), [1, 2, 3, 4])
    assert.deepEqual(u([1, 5, 9], [2, 5, 10], []), [1, 2, 5, 9, 10])
    assert.deepEqual(u(), [])
  })

  it('keeps document ranges compact and exact', () => {
    const set = new DocRanges()
    for (let d = 1; d <= 100_000; d++) set.add(d)
    for (const d of [200_000, 150_000, 150_002, 150_001]) set.add(d)
    assert.equal(set.rangeCount, 3)
    assert.equal(set.size, 100_004)
    const w = new VarintWriter()
    set.write(w)
    const bytes = w.finish()
    assert.ok(bytes.length < 16, `${bytes.length} bytes`)
    const back = DocRanges.read(new VarintReader(bytes))
    for (const d of [1, 100_000, 150_000, 150_002, 200_000]) assert.equal(back.has(d), true)
    for (const d of [0, 100_001, 149_999, 150_003, 199_999, 200_001]) assert.equal(back.has(d), false)
    const removed = new DocRanges()
    for (const d of [5, 6, 100_001, 150_001]) removed.add(d)
    assert.equal(back.countIn(removed), 3)
  })
})

describe('merge policy', () => {
  const sim = (flushes: number, perFlush: (g: number) => number): { chunks: number, perPosting: number, max: number } => {
    let chunks: Array<{ gen: number, count: number, min: number, max: number }> = []
    let rewritten = 0
    let total = 0
    let max = 0
    for (let g = 1; g <= flushes; g++) {
      const incoming = perFlush(g)
      total += incoming
      const from = chunksToMerge(chunks, incoming)
      const merged = chunks.slice(from).reduce((n, c) => n + c.count, incoming)
      rewritten += merged - incoming
      chunks = [...chunks.slice(0, from), { gen: g, count: merged, min: 1, max: 1 + merged }]
      max = Math.max(max, chunks.length)
    }
    return { chunks: chunks.length, perPosting: rewritten / total, max }
  }

  it('keeps at most MAX_CHUNKS chunks and rewrites each posting O(log flushes) times', () => {
    const shapes: Record<string, (g: number) => number> = {
      steady: () => 1,
      varied: (g) => 1 + (g * 104_729) % 2000,
      'big import, then one at a time': (g) => g === 1 ? 50_000 : 1
    }
    for (const [shape, perFlush] of Object.entries(shapes)) {
      for (const flushes of [1, 7, 50, 500, 5000, 100_000]) {
        const r = sim(flushes, perFlush)
        assert.ok(r.max <= MAX_CHUNKS, `${shape}, ${flushes}: ${r.max} chunks`)
        // "Fold the newest until 8" gave 2,000 here at 5,000 flushes.
        assert.ok(r.perPosting <= 1.5 * Math.log2(flushes) + 2, `${shape}, ${flushes} flushes: each posting rewritten ${r.perPosting.toFixed(1)} times`)
      }
    }
  })
})
