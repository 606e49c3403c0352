// The shard store on a real disk with the real erasure codec: round trips, segment rollover,
// damage on purpose (flipped bits, lost and truncated files, swapped records, too many bad
// shards), repair, group commits, a failing disk, and hostile FORMAT files and locators.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes, randomInt } from 'node:crypto'
import { mkdtemp, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { erasureCodec } from '../erasure/index.ts'
import {
  decodeLocator, encodeLocator, ObjectDamagedError, shardStore, ShardStoreError,
  type Locator, type ShardStore, type ShardStoreInit
} from './index.ts'

const codec = erasureCodec('native')
const K = 4
const M = 2
const HEADER = 72

async function tempDir (): Promise<string> {
  return await mkdtemp(join(tmpdir(), 'smtorp-shards-'))
}

/** Runs `fn` with an open store in a fresh directory, then closes it and removes the directory. */
async function withStore (opts: Partial<ShardStoreInit>, fn: (store: ShardStore, dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir()
  const store = shardStore({ dir, codec, ...opts })
  try {
    await store.open()
    await fn(store, dir)
  } finally {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
}

async function reopen (store: ShardStore): Promise<void> {
  await store.close()
  await store.open()
}

const recordPath = (dir: string, loc: Locator, i: number): string =>
  join(dir, `c${String(i).padStart(2, '0')}`, `${String(loc.shards[i]!.segment).padStart(8, '0')}.seg`)

/** Flips one random bit somewhere in record i (header or data) of an object. */
async function flipBit (dir: string, loc: Locator, i: number): Promise<void> {
  const fh = await open(recordPath(dir, loc, i), 'r+')
  try {
    const at = loc.shards[i]!.offset + randomInt(HEADER + loc.shardLength)
    const byte = Buffer.alloc(1)
    await fh.read(byte, 0, 1, at)
    byte[0]! ^= 1 << randomInt(8)
    await fh.write(byte, 0, 1, at)
  } finally {
    await fh.close()
  }
}

async function readRecord (dir: string, loc: Locator, i: number): Promise<Buffer> {
  const fh = await open(recordPath(dir, loc, i), 'r')
  try {
    const buf = Buffer.alloc(HEADER + loc.shardLength)
    await fh.read(buf, 0, buf.length, loc.shards[i]!.offset)
    return buf
  } finally {
    await fh.close()
  }
}

/** A logger whose warnings the test can read. */
function capturingLogger (): { logger: pino.Logger, lines: string[] } {
  const lines: string[] = []
  return { logger: pino({ level: 'warn' }, { write: (line: string) => { lines.push(line) } }), lines }
}

function pickDistinct (n: number, count: number): number[] {
  const all = Array.from({ length: n }, (_, i) => i)
  for (let i = all.length - 1; i > 0; i--) {
    const j = randomInt(i + 1)
    ;[all[i], all[j]] = [all[j]!, all[i]!]
  }
  return all.slice(0, count).sort((a, b) => a - b)
}

describe('ShardStore', () => {
  it('stores objects of 0, 1, 100, 64 KiB and 1 MiB + 5 bytes and reads them back byte for byte after reopening', async () => {
    await withStore({}, async (store, dir) => {
      const objects = [0, 1, 100, 64 * 1024, 1024 * 1024 + 5].map((n) => ({ id: randomBytes(16), data: randomBytes(n) }))
      const locators = await Promise.all(objects.map(async (o) => await store.put(o.id, o.data)))
      for (const [i, o] of objects.entries()) {
        const loc = locators[i]!
        assert.equal(loc.objectLength, o.data.length)
        assert.deepEqual(loc.objectId, o.id)
        assert.deepEqual(await store.get(loc), { data: o.data, damaged: [] })
      }
      // The caller keeps locators as bytes in its own index.
      const saved = locators.map(encodeLocator)
      await reopen(store)
      for (const [i, o] of objects.entries()) {
        const loc = decodeLocator(saved[i]!)
        assert.deepEqual(loc, locators[i])
        const got = await store.get(loc)
        assert.ok(got.data.equals(o.data), `object of ${o.data.length} bytes`)
        assert.deepEqual(got.damaged, [])
      }
      assert.equal(await readFile(join(dir, 'FORMAT'), 'latin1'), 'smtorp-shards 1 k=4 m=2\n')
    })
  })

  it('writes shard i of every object to column i, in the record format', async () => {
    await withStore({}, async (store, dir) => {
      const id = randomBytes(16)
      const loc = await store.put(id, Buffer.from('hello, shards'))
      for (let i = 0; i < K + M; i++) {
        const rec = await readRecord(dir, loc, i)
        assert.equal(rec.subarray(0, 4).toString('latin1'), 'SMTS')
        assert.deepEqual([rec[4], rec[5], rec[6], rec[7]], [1, K, M, i])
        assert.deepEqual(rec.subarray(8, 24), id)
        assert.equal(rec.readBigUInt64BE(24), 13n)
        assert.equal(rec.readUInt32BE(32), 8)
        assert.equal(rec.readUInt32BE(36), 0)
      }
      assert.equal((await readRecord(dir, loc, 0)).subarray(HEADER, HEADER + 8).toString('latin1'), 'hello, s')
    })
  })

  it('rolls over to new segment files and keeps every object readable', async () => {
    const segmentBytes = 4096
    await withStore({ segmentBytes }, async (store, dir) => {
      const objects = Array.from({ length: 40 }, () => ({ id: randomBytes(16), data: randomBytes(randomInt(1, 20000)) }))
      const locators: Locator[] = []
      // Half in one commit, half one by one: rollover inside a commit and between commits.
      locators.push(...await Promise.all(objects.slice(0, 20).map(async (o) => await store.put(o.id, o.data))))
      for (const o of objects.slice(20)) locators.push(await store.put(o.id, o.data))

      let files = 0
      let bytes = 0
      for (let i = 0; i < K + M; i++) {
        const names = (await readdir(join(dir, `c0${i}`))).sort()
        assert.ok(names.length > 1, `column ${i} rolled over`)
        assert.equal(names[0], '00000001.seg')
        for (const name of names) {
          const { size } = await stat(join(dir, `c0${i}`, name))
          const records = locators.filter((l) => l.shards[i]!.segment === Number(name.slice(0, 8)))
          // A segment stays within segmentBytes unless it holds one record larger than that.
          assert.ok(size <= segmentBytes || records.length === 1, `c0${i}/${name} is ${size} bytes with ${records.length} records`)
          files++
          bytes += size
        }
      }
      assert.equal(store.stats().segments, files)
      assert.equal(store.stats().bytes, bytes)

      await reopen(store)
      assert.deepEqual({ ...store.stats(), commits: 0 }, { segments: files, bytes, commits: 0 })
      for (const [i, o] of objects.entries()) assert.deepEqual(await store.get(locators[i]!), { data: o.data, damaged: [] })
      const more = await store.put(randomBytes(16), randomBytes(100))
      assert.deepEqual((await store.get(more)).damaged, [])
    })
  })

  it('lists its segments, removes an old one when asked, and refuses to remove the one appends go to', async () => {
    await withStore({ segmentBytes: 4096 }, async (store, dir) => {
      for (let i = 0; i < 10; i++) await store.put(randomBytes(16), randomBytes(3000))
      const segments = await store.segments()
      assert.equal(segments.filter((s) => s.active).length, K + M)
      const old = segments.find((s) => !s.active && s.column === 2)!
      assert.equal(old.bytes, (await stat(join(dir, 'c02', `${String(old.segment).padStart(8, '0')}.seg`))).size)
      const active = segments.find((s) => s.active && s.column === 2)!
      await assert.rejects(store.removeSegment(2, active.segment), /appends go to/)
      const before = store.stats()
      await store.removeSegment(2, old.segment)
      assert.ok(!(await readdir(join(dir, 'c02'))).includes(`${String(old.segment).padStart(8, '0')}.seg`))
      assert.deepEqual({ segments: store.stats().segments, bytes: store.stats().bytes }, { segments: before.segments - 1, bytes: before.bytes - old.bytes })
      assert.equal((await store.segments()).length, segments.length - 1)
    })
  })

  it('rebuilds objects with up to m flipped bits in different columns, reports exactly those shards, and repairs them in place', async () => {
    const { logger, lines } = capturingLogger()
    await withStore({ logger }, async (store, dir) => {
      const objects = Array.from({ length: 60 }, () => ({ id: randomBytes(16), data: randomBytes(randomInt(0, 5000)) }))
      const locators = await Promise.all(objects.map(async (o) => await store.put(o.id, o.data)))
      const flipped = await Promise.all(locators.map(async (loc, n) => {
        const chosen = pickDistinct(K + M, n % (M + 1))
        for (const i of chosen) await flipBit(dir, loc, i)
        return chosen
      }))
      await reopen(store)
      for (const [n, o] of objects.entries()) {
        const loc = locators[n]!
        const chosen = flipped[n]!
        const got = await store.get(loc)
        assert.ok(got.data.equals(o.data), `object ${n}`)
        // get reads parity only when a data shard is bad, so damage confined to parity
        // shows in verify, not in get.
        assert.deepEqual(got.damaged, chosen.some((i) => i < K) ? chosen : [], `object ${n}`)
        assert.deepEqual(await store.verify(loc), chosen, `object ${n}`)

        const repaired = await store.repair(loc, chosen)
        assert.deepEqual(await store.verify(repaired), [], `object ${n} after repair`)
        for (let i = 0; i < K + M; i++) {
          if (!chosen.includes(i)) {
            assert.deepEqual(repaired.shards[i], loc.shards[i])
            continue
          }
          assert.notDeepEqual(repaired.shards[i], loc.shards[i])
          // Same column as before: the fresh record sits in c0<i> and says it is shard i.
          const rec = await readRecord(dir, repaired, i)
          assert.equal(rec[7], i)
          assert.deepEqual(rec.subarray(8, 24), o.id)
        }
        locators[n] = repaired
      }
      assert.ok(lines.some((l) => l.includes('bad shards')), 'damage is logged')
      await reopen(store)
      for (const [n, o] of objects.entries()) assert.deepEqual(await store.get(locators[n]!), { data: o.data, damaged: [] })
    })
  })

  it('reads every object after the segment file of one column is deleted', async () => {
    await withStore({}, async (store, dir) => {
      const objects = Array.from({ length: 20 }, () => ({ id: randomBytes(16), data: randomBytes(randomInt(1, 3000)) }))
      const locators = await Promise.all(objects.map(async (o) => await store.put(o.id, o.data)))
      await store.close()
      await rm(join(dir, 'c01', '00000001.seg'))
      await store.open()
      for (const [n, o] of objects.entries()) {
        assert.deepEqual(await store.get(locators[n]!), { data: o.data, damaged: [1] })
      }
      // The column starts a new file and goes on.
      const fresh = { id: randomBytes(16), data: randomBytes(500) }
      const loc = await store.put(fresh.id, fresh.data)
      assert.deepEqual(await store.get(loc), { data: fresh.data, damaged: [] })
      const repaired = await store.repair(locators[0]!, [1])
      assert.deepEqual(await store.verify(repaired), [])
      assert.deepEqual(await store.get(repaired), { data: objects[0]!.data, damaged: [] })
    })
  })

  it('reads the objects at the tail of a segment truncated mid-record, and appends after the cut', async () => {
    await withStore({}, async (store, dir) => {
      const objects = Array.from({ length: 10 }, () => ({ id: randomBytes(16), data: randomBytes(3000) }))
      const locators: Locator[] = []
      for (const o of objects) locators.push(await store.put(o.id, o.data))
      await store.close()
      const cut = locators[8]!.shards[0]!.offset + 50
      await truncate(join(dir, 'c00', '00000001.seg'), cut)
      await store.open()
      for (const [n, o] of objects.entries()) {
        assert.deepEqual(await store.get(locators[n]!), { data: o.data, damaged: n >= 8 ? [0] : [] }, `object ${n}`)
      }
      // The torn tail is left alone: the next record starts where the file now ends.
      const fresh = await store.put(randomBytes(16), randomBytes(10))
      assert.equal(fresh.shards[0]!.offset, cut)
      assert.deepEqual((await store.get(fresh)).damaged, [])
      const repaired = await store.repair(locators[9]!, [0])
      assert.equal(repaired.shards[0]!.segment, 1)
      assert.ok(repaired.shards[0]!.offset > cut)
      assert.deepEqual(await store.verify(repaired), [])
      assert.deepEqual(await store.get(repaired), { data: objects[9]!.data, damaged: [] })
    })
  })

  it('detects two records of different objects swapped in place (object id mismatch) and rebuilds both', async () => {
    const { logger, lines } = capturingLogger()
    await withStore({ logger }, async (store, dir) => {
      const a = { id: randomBytes(16), data: randomBytes(1000) }
      const b = { id: randomBytes(16), data: randomBytes(1000) }
      const la = await store.put(a.id, a.data)
      const lb = await store.put(b.id, b.data)
      const ra = await readRecord(dir, la, 2)
      const rb = await readRecord(dir, lb, 2)
      // Each record is intact (its own checksum holds) but in the other's place.
      const fh = await open(recordPath(dir, la, 2), 'r+')
      await fh.write(rb, 0, rb.length, la.shards[2]!.offset)
      await fh.write(ra, 0, ra.length, lb.shards[2]!.offset)
      await fh.close()
      assert.deepEqual(await store.get(la), { data: a.data, damaged: [2] })
      assert.deepEqual(await store.get(lb), { data: b.data, damaged: [2] })
      assert.ok(lines.some((l) => l.includes('object id mismatch')), lines.join(''))
    })
  })

  it('throws ObjectDamagedError naming the object when more than m shards are bad, and other objects are unaffected', async () => {
    await withStore({}, async (store, dir) => {
      const objects = Array.from({ length: 3 }, () => ({ id: randomBytes(16), data: randomBytes(2000) }))
      const [la, lb, lc] = await Promise.all(objects.map(async (o) => await store.put(o.id, o.data)))
      for (const i of [0, 1, 4]) await flipBit(dir, lb!, i)
      await assert.rejects(store.get(lb!), (err: unknown) => {
        assert.ok(err instanceof ObjectDamagedError)
        assert.ok(err instanceof ShardStoreError)
        assert.match(err.message, new RegExp(objects[1]!.id.toString('hex')))
        assert.deepEqual(err.bad.map((b) => b.index), [0, 1, 4])
        assert.match(err.message, /0 \(.+ in c00\/00000001\.seg at \d+\)/)
        return true
      })
      assert.deepEqual(await store.verify(lb!), [0, 1, 4])
      await assert.rejects(store.repair(lb!, [0, 1, 4]), ObjectDamagedError)
      assert.deepEqual(await store.get(la!), { data: objects[0]!.data, damaged: [] })
      assert.deepEqual(await store.get(lc!), { data: objects[2]!.data, damaged: [] })
    })
  })

  it('puts in one event-loop turn share one group commit; puts made during a commit share the next', async () => {
    await withStore({}, async (store) => {
      const objects = Array.from({ length: 200 }, () => ({ id: randomBytes(16), data: randomBytes(4096) }))
      let before = store.stats().commits
      const locators = await Promise.all(objects.map(async (o) => await store.put(o.id, o.data)))
      assert.equal(store.stats().commits - before, 1, '200 concurrent puts, one fsync batch')

      before = store.stats().commits
      for (const o of objects.slice(0, 20)) await store.put(o.id, o.data)
      assert.equal(store.stats().commits - before, 20, 'sequential puts, one fsync batch each')

      before = store.stats().commits
      const first = objects.slice(0, 50).map(async (o) => await store.put(o.id, o.data))
      await new Promise((resolve) => setImmediate(resolve)) // the first commit is on disk now
      const second = objects.slice(50, 100).map(async (o) => await store.put(o.id, o.data))
      await Promise.all([...first, ...second])
      assert.equal(store.stats().commits - before, 2)

      for (const [n, o] of objects.entries()) assert.ok((await store.get(locators[n]!)).data.equals(o.data))
    })
  })

  it('rejects every put of a commit that fails on disk, then refuses writes until reopened', async () => {
    await withStore({}, async (store, dir) => {
      // Column 3 becomes a file: creating its first segment fails (ENOTDIR).
      await rm(join(dir, 'c03'), { recursive: true })
      await writeFile(join(dir, 'c03'), 'not a directory')
      const results = await Promise.allSettled(Array.from({ length: 5 }, async () => await store.put(randomBytes(16), randomBytes(100))))
      for (const r of results) {
        assert.equal(r.status, 'rejected')
        assert.ok(r.reason instanceof ShardStoreError)
        assert.match(r.reason.message, /Writing to the shard store .* failed/)
      }
      await assert.rejects(store.put(randomBytes(16), randomBytes(1)), /close and reopen/)
      await store.close()
      await assert.rejects(store.open(), ShardStoreError)
      await rm(join(dir, 'c03'))
      await store.open()
      const loc = await store.put(randomBytes(16), Buffer.from('after'))
      assert.equal((await store.get(loc)).data.toString(), 'after')
    })
  })

  it('refuses a FORMAT of another geometry or version, and a directory that is not a store', async () => {
    const dir = await tempDir()
    try {
      const store = shardStore({ dir, codec })
      await store.open()
      await store.close()
      await assert.rejects(shardStore({ dir, codec, k: 3 }).open(), (err: unknown) =>
        err instanceof ShardStoreError && /created with k=4 m=2, but was opened with k=3 m=2/.test(err.message))
      await writeFile(join(dir, 'FORMAT'), 'smtorp-shards 2 k=4 m=2\n')
      await assert.rejects(shardStore({ dir, codec }).open(), (err: unknown) => err instanceof ShardStoreError && /format version "2"/.test(err.message))
      await writeFile(join(dir, 'FORMAT'), 'smtorp-shards 1 k=4\n')
      await assert.rejects(shardStore({ dir, codec }).open(), (err: unknown) => err instanceof ShardStoreError && /malformed/.test(err.message))
      await writeFile(join(dir, 'FORMAT'), randomBytes(300))
      await assert.rejects(shardStore({ dir, codec }).open(), (err: unknown) => err instanceof ShardStoreError && /not a shard store/.test(err.message))
      await rm(join(dir, 'FORMAT'))
      await assert.rejects(shardStore({ dir, codec }).open(), (err: unknown) => err instanceof ShardStoreError && /no FORMAT file/.test(err.message))
      assert.throws(() => shardStore({ dir, codec, k: 0 }), ShardStoreError)
      assert.throws(() => shardStore({ dir, codec, k: 60, m: 41 }), ShardStoreError)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('a store written by the native codec, opened with the WebAssembly one, reads intact objects but never rebuilds wrong bytes', { skip: codec.name !== 'native' && 'the native codec does not load here' }, async () => {
    // Regression: the two codecs compute different parity, and rebuilding with the other one
    // from exactly m bad shards returned wrong bytes without an error.
    const dir = await tempDir()
    try {
      const native = shardStore({ dir, codec })
      await native.open()
      const intact = { id: randomBytes(16), data: randomBytes(3000) }
      const damaged = { id: randomBytes(16), data: randomBytes(3000) }
      const li = await native.put(intact.id, intact.data)
      const ld = await native.put(damaged.id, damaged.data)
      await native.close()
      assert.equal(await readFile(join(dir, 'CODEC'), 'latin1'), 'native\n')
      for (const i of [0, 1]) await flipBit(dir, ld, i)

      const { logger, lines } = capturingLogger()
      const wasm = shardStore({ dir, codec: erasureCodec('wasm'), logger })
      await wasm.open()
      try {
        assert.ok(lines.some((l) => l.includes('written by the native erasure codec')))
        assert.deepEqual(await wasm.get(li), { data: intact.data, damaged: [] })
        await assert.rejects(wasm.get(ld), (err: unknown) => err instanceof ShardStoreError && /written by the native erasure codec/.test(err.message))
        await assert.rejects(wasm.put(randomBytes(16), randomBytes(10)), /written by the native erasure codec/)
        await assert.rejects(wasm.repair(ld, [0, 1]), /written by the native erasure codec/)
      } finally {
        await wasm.close()
      }
      // Even with CODEC edited to lie, one bad shard is caught by re-encoding the rebuilt data.
      await writeFile(join(dir, 'CODEC'), 'wasm\n')
      const liar = shardStore({ dir, codec: erasureCodec('wasm') })
      await liar.open()
      try {
        const one = await liar.put(randomBytes(16), randomBytes(1))
        assert.deepEqual((await liar.get(one)).damaged, [])
        await flipBit(dir, li, 2)
        await assert.rejects(liar.get(li), /does not match its good shards/)
      } finally {
        await liar.close()
      }
      await writeFile(join(dir, 'CODEC'), 'fast\n')
      await assert.rejects(shardStore({ dir, codec }).open(), /CODEC is malformed/)
      await rm(join(dir, 'CODEC'))
      await assert.rejects(shardStore({ dir, codec }).open(), /no CODEC file/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('decodeLocator rejects malformed bytes with ShardStoreError', async () => {
    const good = encodeLocator({ objectId: randomBytes(16), objectLength: 13, shardLength: 8, k: 4, m: 2, shards: Array.from({ length: 6 }, (_, i) => ({ segment: i + 1, offset: i * 1000 })) })
    assert.equal(good.length, 31 + 12 * 6)
    const edit = (f: (b: Buffer) => void): Buffer => { const b = Buffer.from(good); f(b); return b }
    const table: Array<[string, Uint8Array]> = [
      ['empty', Buffer.alloc(0)],
      ['too short', good.subarray(0, 30)],
      ['one byte short', good.subarray(0, good.length - 1)],
      ['one byte long', Buffer.concat([good, Buffer.alloc(1)])],
      ['version 0', edit((b) => { b[0] = 0 })],
      ['version 2', edit((b) => { b[0] = 2 })],
      ['k = 0', edit((b) => { b[1] = 0 })],
      ['m = 0', edit((b) => { b[2] = 0 })],
      ['shard length not from object length', edit((b) => { b.writeUInt32BE(16, 27) })],
      ['object length past 2^53', edit((b) => { b.writeBigUInt64BE(2n ** 60n, 19) })],
      ['offset past 2^53', edit((b) => { b.writeBigUInt64BE(2n ** 63n, 31 + 4) })],
      ['segment 0', edit((b) => { b.writeUInt32BE(0, 31) })]
    ]
    for (const [name, bytes] of table) assert.throws(() => decodeLocator(bytes), ShardStoreError, name)
    assert.deepEqual(encodeLocator(decodeLocator(good)), good)
    // Random bytes, and random edits of a good locator: decoded exactly or refused, nothing else.
    for (let n = 0; n < 2000; n++) {
      const bytes = n % 2 === 0 ? randomBytes(randomInt(0, 120)) : edit((b) => { b[randomInt(b.length)] = randomInt(256) })
      try {
        assert.deepEqual(encodeLocator(decodeLocator(bytes)), bytes)
      } catch (err) {
        assert.ok(err instanceof ShardStoreError, String(err))
      }
    }
  })

  it('answers hostile locators with ShardStoreErrors, not crashes or huge allocations', async () => {
    await withStore({}, async (store) => {
      const data = randomBytes(5000)
      const loc = await store.put(randomBytes(16), data)
      const shifted: Locator = { ...loc, shards: loc.shards.map((s) => ({ segment: s.segment, offset: s.offset + 1 })) }
      await assert.rejects(store.get(shifted), ObjectDamagedError)
      const elsewhere: Locator = { ...loc, shards: loc.shards.map(() => ({ segment: 99999, offset: 0 })) }
      await assert.rejects(store.get(elsewhere), (err: unknown) => err instanceof ObjectDamagedError && /missing file/.test(err.message))
      // Claims a 16 GiB object: refused before any 4 GiB buffer is allocated.
      const huge: Locator = { ...loc, objectLength: 16 * 2 ** 30 - 32, shardLength: 4 * 2 ** 30 - 8 }
      await assert.rejects(store.get(huge), (err: unknown) => err instanceof ObjectDamagedError && /truncated/.test(err.message))
      await assert.rejects(store.get({ ...loc, k: 3, shards: loc.shards.slice(1), shardLength: 1672 }), /this shard store holds k=4 m=2/)
      await assert.rejects(store.get({ ...loc, shards: [] }), ShardStoreError)
      await assert.rejects(store.get(null as unknown as Locator), ShardStoreError)
      await assert.rejects(store.repair(loc, [7]), ShardStoreError)
      await assert.rejects(store.put(Buffer.alloc(15), data), ShardStoreError)
      await assert.rejects(store.put(Buffer.alloc(16), 'text' as unknown as Uint8Array), ShardStoreError)
      assert.deepEqual(await store.get(loc), { data, damaged: [] })
    })
  })

  it('keeps a bounded number of segment files open while reading objects spread over hundreds of files', async () => {
    // Every record gets its own segment: 120 objects are 720 files.
    await withStore({ segmentBytes: 64 }, async (store) => {
      const objects = Array.from({ length: 120 }, () => ({ id: randomBytes(16), data: randomBytes(200) }))
      const locators = await Promise.all(objects.map(async (o) => await store.put(o.id, o.data)))
      assert.equal(store.stats().segments, 120 * (K + M))
      const fds = async (): Promise<number> => (await readdir('/proc/self/fd')).length
      const baseline = await fds()
      let peak = 0
      for (let round = 0; round < 2; round++) {
        for (let n = 0; n < objects.length; n += 10) {
          const batch = locators.slice(n, n + 10)
          const got = await Promise.all(batch.map(async (loc) => await store.verify(loc)))
          assert.ok(got.every((bad) => bad.length === 0))
          peak = Math.max(peak, await fds())
        }
      }
      assert.ok(peak - baseline <= 64 + 10, `open files grew by ${peak - baseline}`)
    })
  })
})
