// The encrypted search index on a real LevelDB with real keys: what it finds, what it
// must not find, what survives a reopen or a crash, what a tampered record does, and that
// no term reaches the disk in plaintext.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import {
  extractSearchText, searchIndex, SearchError, MAX_CHUNKS,
  type SearchIndex, type SearchIndexInit, type SearchKeys, type SearchText
} from './index.ts'

type Db = ClassicLevel<Buffer, Buffer>

function openDb (dir: string): Db {
  return new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
}

function newKeys (): SearchKeys {
  return { term: randomBytes(32), postings: randomBytes(32) }
}

interface Harness {
  dir: string
  db: Db
  keys: SearchKeys
  index: SearchIndex
  /** Close the index (flushing) and the db, and open both again. */
  reopen: (init?: Partial<SearchIndexInit>) => Promise<void>
}

/** A fresh database in a temp dir, removed afterwards whatever happens. */
async function withIndex (fn: (h: Harness) => Promise<void>, init: Partial<SearchIndexInit> = {}): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'smtorp-search-'))
  const keys = newKeys()
  const h: Harness = {
    dir,
    keys,
    db: openDb(dir),
    index: undefined as unknown as SearchIndex,
    reopen: async (more = {}) => {
      await h.index.close()
      await h.db.close()
      h.db = openDb(dir)
      await h.db.open()
      h.index = searchIndex({ db: h.db, keys: { term: Buffer.from(keys.term), postings: Buffer.from(keys.postings) }, ...init, ...more })
      await h.index.open()
    }
  }
  try {
    await h.db.open()
    h.index = searchIndex({ db: h.db, keys: { term: Buffer.from(keys.term), postings: Buffer.from(keys.postings) }, ...init })
    await h.index.open()
    await fn(h)
  } finally {
    await h.db.close().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
}

function text (partial: Partial<SearchText>): SearchText {
  return { from: '', to: '', subject: '', body: '', ...partial }
}

/** An .eml as bytes, CRLF line ends. */
function eml (lines: string[]): Buffer {
  return Buffer.from(lines.join('\r\n'), 'utf8')
}

describe('search index: what it finds', () => {
  it('finds words in from, to, subject and body, and full addresses', async () => {
    await withIndex(async ({ index }) => {
      index.add(1, text({ from: 'Alice Liddell <alice@example.org>', to: 'bob@wonder.land', subject: 'Quarterly invoice', body: 'Please find the attached paperwork.' }))
      index.add(2, text({ from: 'carol@example.net', subject: 'Lunch', body: 'Sandwiches at noon?' }))
      assert.deepEqual(await index.search('liddell'), [1])
      assert.deepEqual(await index.search('alice'), [1])
      assert.deepEqual(await index.search('wonder'), [1])
      assert.deepEqual(await index.search('Quarterly'), [1])
      assert.deepEqual(await index.search('paperwork'), [1])
      assert.deepEqual(await index.search('sandwiches'), [2])
      assert.deepEqual(await index.search('example'), [2, 1])
      assert.deepEqual(await index.search('alice@example.org'), [1])
      assert.deepEqual(await index.search('<alice@example.org>'), [1])
      assert.deepEqual(await index.search('nothing-like-this'), [])
    })
  })

  it('restricts from:, to:, cc: and subject: to their header', async () => {
    await withIndex(async ({ index }) => {
      index.add(1, text({ from: 'Alice <alice@example.org>', to: 'Bob <bob@example.org>', subject: 'invoice 42', body: 'ask carol' }))
      index.add(2, text({ from: 'Bob <bob@example.org>', to: 'Alice <alice@example.net>', subject: 'hello', body: 'the invoice is late' }))
      index.add(3, text({ from: 'Carol <carol@example.org>', to: 'alice@example.org', subject: 'Re: hello', body: '' }))
      assert.deepEqual(await index.search('from:alice'), [1])
      assert.deepEqual(await index.search('to:alice'), [3, 2])
      assert.deepEqual(await index.search('cc:alice'), [3, 2])
      assert.deepEqual(await index.search('from:bob'), [2])
      assert.deepEqual(await index.search('to:bob'), [1])
      assert.deepEqual(await index.search('subject:invoice'), [1])
      assert.deepEqual(await index.search('invoice'), [2, 1])
      assert.deepEqual(await index.search('from:carol'), [3])
      assert.deepEqual(await index.search('carol'), [3, 1])
      assert.deepEqual(await index.search('to:alice@example.org'), [3])
      assert.deepEqual(await index.search('to:alice@example.net'), [2])
      assert.deepEqual(await index.search('from:alice@example.net'), [])
      assert.deepEqual(await index.search('FROM:ALICE'), [1])
      // An unknown qualifier is just text: hello AND invoice.
      assert.deepEqual(await index.search('hello:invoice'), [2])
    })
  })

  it('ANDs the words of a query', async () => {
    await withIndex(async ({ index }) => {
      index.add(1, text({ body: 'red apple' }))
      index.add(2, text({ body: 'green apple' }))
      index.add(3, text({ body: 'red pepper' }))
      assert.deepEqual(await index.search('red apple'), [1])
      assert.deepEqual(await index.search('apple'), [2, 1])
      assert.deepEqual(await index.search('red'), [3, 1])
      assert.deepEqual(await index.search('red green'), [])
      assert.deepEqual(await index.search('from:nobody apple'), [])
      assert.deepEqual(await index.search('"red  apple"'), [1])
    })
  })

  it('returns the newest first, honours limit and pages with before', async () => {
    await withIndex(async ({ index }) => {
      const order = [5, 1, 9, 3, 7, 2, 10, 4, 8, 6] // out of order, as after a locked vault
      for (const doc of order) index.add(doc, text({ body: `common word${doc % 2 === 0 ? ' even' : ''}` }))
      await index.flush()
      index.add(11, text({ body: 'common' }))
      assert.deepEqual(await index.search('common'), [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1])
      assert.deepEqual(await index.search('common', { limit: 3 }), [11, 10, 9])
      assert.deepEqual(await index.search('common', { limit: 3, before: 9 }), [8, 7, 6])
      assert.deepEqual(await index.search('common', { limit: 3, before: 6 }), [5, 4, 3])
      assert.deepEqual(await index.search('common', { limit: 3, before: 3 }), [2, 1])
      assert.deepEqual(await index.search('common', { before: 1 }), [])
      assert.deepEqual(await index.search('common even', { limit: 2, before: 8 }), [6, 4])
      assert.deepEqual(await index.search('common', { limit: 0 }), [])
      await assert.rejects(index.search('common', { limit: -1 }), SearchError)
    })
  })

  it('returns nothing for an empty or all-stopword query', async () => {
    await withIndex(async ({ index }) => {
      index.add(1, text({ body: 'the cat and the hat' }))
      assert.deepEqual(await index.search(''), [])
      assert.deepEqual(await index.search('   '), [])
      assert.deepEqual(await index.search('the and'), [])
      assert.deepEqual(await index.search('subject:'), [])
      assert.deepEqual(await index.search('the cat'), [1])
    })
  })

  it('normalises with NFKC and lowercase, and skips words over 64 characters', async () => {
    await withIndex(async ({ index }) => {
      const long = 'q'.repeat(65)
      index.add(1, text({ body: `ＦＵＬＬＷＩＤＴＨ Straße ﬁnance Ölförderung ${long} ${'r'.repeat(64)}` }))
      assert.deepEqual(await index.search('fullwidth'), [1])
      assert.deepEqual(await index.search('STRASSE'), []) // lowercasing is not case folding
      assert.deepEqual(await index.search('straße'), [1])
      assert.deepEqual(await index.search('finance'), [1])
      assert.deepEqual(await index.search('ölförderung'), [1])
      assert.deepEqual(await index.search(long), [])
      assert.deepEqual(await index.search('r'.repeat(64)), [1])
    })
  })
})

describe('search index: message text', () => {
  it('indexes the text of an HTML body but not scripts, styles, comments or attributes', async () => {
    const raw = eml([
      'From: Dora <dora@example.org>',
      'To: eve@example.org',
      'Subject: newsletter',
      'MIME-Version: 1.0',
      'Content-Type: text/html; charset=utf-8',
      '',
      '<html><head><title>headtitle</title><style>.hiddenstyle { color: red }</style></head>',
      '<body><p class="attrvalue">Visible&nbsp;paragraph with caf&eacute; &amp; cr&#232;me &#x41;mpersand</p>',
      '<script>var secretword = 1</script><!-- commentword --><a href="https://linkword.example/">click here</a>',
      '</body></html>'
    ])
    const t = await extractSearchText(raw)
    assert.match(t.body, /Visible paragraph/)
    await withIndex(async ({ index }) => {
      index.add(1, t)
      assert.deepEqual(await index.search('visible paragraph'), [1])
      assert.deepEqual(await index.search('crème'), [1])
      assert.deepEqual(await index.search('ampersand'), [1])
      assert.deepEqual(await index.search('click'), [1])
      for (const hidden of ['secretword', 'hiddenstyle', 'commentword', 'attrvalue', 'linkword', 'headtitle', 'script', 'href', 'nbsp', 'html']) {
        assert.deepEqual(await index.search(hidden), [], hidden)
      }
    })
  })

  it('decodes quoted-printable and base64 bodies and RFC 2047 subjects', async () => {
    const qp = eml([
      'From: =?UTF-8?Q?Fran=C3=A7ois?= <francois@example.org>',
      'To: a@example.org',
      'Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgTcO8bmNoZW4=?=',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      'Die Fa=C3=A7ade ist sch=C3=B6n, soft=',
      'wrapped word.'
    ])
    const b64 = eml([
      'From: b@example.org',
      'To: a@example.org',
      'Subject: =?iso-8859-1?Q?caf=E9_meeting?=',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="xyz"',
      '',
      '--xyz',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('The zanzibar budget is attached.', 'utf8').toString('base64'),
      '--xyz',
      'Content-Type: text/plain; name="notes.txt"',
      'Content-Disposition: attachment; filename="notes.txt"',
      '',
      'attachmentonlyword',
      '--xyz--',
      ''
    ])
    const t1 = await extractSearchText(qp)
    const t2 = await extractSearchText(b64)
    assert.equal(t1.subject, 'Grüße aus München')
    await withIndex(async ({ index }) => {
      index.add(1, t1)
      index.add(2, t2)
      assert.deepEqual(await index.search('subject:grüße münchen'), [1])
      assert.deepEqual(await index.search('from:françois'), [1])
      assert.deepEqual(await index.search('façade schön'), [1])
      assert.deepEqual(await index.search('softwrapped'), [1])
      assert.deepEqual(await index.search('zanzibar budget'), [2])
      assert.deepEqual(await index.search('subject:café'), [2])
      assert.deepEqual(await index.search('attachmentonlyword'), [])
    })
  })

  it('falls back to the raw bytes for a message it cannot parse, and never throws', async () => {
    for (const raw of [Buffer.from([0xff, 0xfe, 0x00, 0x41]), Buffer.alloc(0), Buffer.from('no headers at all, just fallbackword text'), Buffer.from('Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--')]) {
      const t = await extractSearchText(raw)
      assert.equal(typeof t.body, 'string')
    }
    const t = await extractSearchText(Buffer.from('no headers at all, just fallbackword text'))
    await withIndex(async ({ index }) => {
      index.add(1, t)
      assert.deepEqual(await index.search('fallbackword'), [1])
    })
  })

  it('caps the body text of a huge message', async () => {
    const raw = eml(['From: a@example.org', 'Subject: big', '', 'earlyword ' + 'filler '.repeat(40_000) + 'lateword'])
    const t = await extractSearchText(raw)
    assert.ok(t.body.length <= 64 * 1024)
    assert.match(t.body, /earlyword/)
    assert.doesNotMatch(t.body, /lateword/)
  })
})

describe('search index: changes and durability', () => {
  it('hides a removed document, buffered or flushed, and keeps it hidden after reopening', async () => {
    await withIndex(async (h) => {
      h.index.add(1, text({ body: 'alpha' }))
      h.index.add(2, text({ body: 'alpha' }))
      await h.index.flush()
      h.index.add(3, text({ body: 'alpha' }))
      h.index.remove(2)
      h.index.remove(3)
      assert.deepEqual(await h.index.search('alpha'), [1])
      assert.equal(h.index.has(2), false)
      assert.equal(h.index.has(3), false)
      // A removed number stays removed.
      h.index.add(2, text({ body: 'alpha beta' }))
      assert.deepEqual(await h.index.search('beta'), [])
      assert.equal(h.index.stats().docs, 1)
      await h.reopen()
      assert.deepEqual(await h.index.search('alpha'), [1])
      assert.equal(h.index.has(2), false)
      assert.equal(h.index.has(3), false)
      assert.equal(h.index.stats().docs, 1)
    })
  })

  it('ignores a second add of the same document', async () => {
    await withIndex(async ({ index }) => {
      index.add(1, text({ body: 'first version' }))
      index.add(1, text({ body: 'second version' }))
      assert.deepEqual(await index.search('first'), [1])
      assert.deepEqual(await index.search('second'), [])
      await index.flush()
      index.add(1, text({ body: 'third version' }))
      assert.deepEqual(await index.search('third'), [])
      assert.deepEqual(index.stats().docs, 1)
      assert.equal(index.stats().bufferedDocs, 0)
    })
  })

  it('keeps everything across flush, close and reopen', async () => {
    await withIndex(async (h) => {
      for (let doc = 1; doc <= 50; doc++) h.index.add(doc, text({ from: `user${doc % 5}@example.org`, subject: `report ${doc}`, body: doc % 3 === 0 ? 'fizz' : 'plain' }))
      const before = { fizz: await h.index.search('fizz'), user2: await h.index.search('from:user2@example.org'), report: await h.index.search('subject:report', { limit: 100 }) }
      await h.reopen()
      assert.equal(h.index.stats().bufferedDocs, 0)
      assert.equal(h.index.stats().docs, 50)
      assert.deepEqual(await h.index.search('fizz'), before.fizz)
      assert.deepEqual(await h.index.search('from:user2@example.org'), before.user2)
      assert.deepEqual(await h.index.search('subject:report', { limit: 100 }), before.report)
      assert.equal(before.report.length, 50)
      for (let doc = 1; doc <= 50; doc++) assert.equal(h.index.has(doc), true)
      assert.equal(h.index.has(51), false)
    })
  })

  it('after a crash, knows only the flushed documents, and finds exactly those', async () => {
    await withIndex(async (h) => {
      for (let doc = 1; doc <= 20; doc++) h.index.add(doc, text({ body: `crashword w${doc}` }))
      await h.index.flush()
      h.index.remove(5)
      for (let doc = 21; doc <= 30; doc++) h.index.add(doc, text({ body: `crashword w${doc}` }))
      // The process dies: the db closes under the index, which never flushes.
      await h.db.close()
      h.db = openDb(h.dir)
      await h.db.open()
      h.index = searchIndex({ db: h.db, keys: { term: Buffer.from(h.keys.term), postings: Buffer.from(h.keys.postings) } })
      await h.index.open()
      for (let doc = 1; doc <= 20; doc++) assert.equal(h.index.has(doc), true, `flushed ${doc}`)
      for (let doc = 21; doc <= 30; doc++) assert.equal(h.index.has(doc), false, `unflushed ${doc}`)
      assert.deepEqual(await h.index.search('crashword', { limit: 100 }), Array.from({ length: 20 }, (_, i) => 20 - i))
      assert.deepEqual(await h.index.search('w25'), [])
      // The vault indexes what is missing again.
      for (let doc = 21; doc <= 30; doc++) if (!h.index.has(doc)) h.index.add(doc, text({ body: `crashword w${doc}` }))
      await h.index.flush()
      assert.equal((await h.index.search('crashword', { limit: 100 })).length, 30)
    })
  })

  it('flushes by itself every flushEvery documents, and not before', async () => {
    await withIndex(async ({ index }) => {
      for (let doc = 1; doc <= 9; doc++) index.add(doc, text({ body: 'tick' }))
      await new Promise((resolve) => setTimeout(resolve, 100))
      assert.equal(index.stats().bufferedDocs, 9)
      assert.equal(index.stats().terms, 0)
      index.add(10, text({ body: 'tick' }))
      // No flush() call: the add that filled the buffer started one.
      for (let waited = 0; index.stats().bufferedDocs > 0 && waited < 10_000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10))
      assert.equal(index.stats().bufferedDocs, 0)
      assert.equal(index.stats().terms, 1)
      assert.equal(index.stats().docs, 10)
    }, { flushEvery: 10 })
  })

  it('keeps results identical through many flushes and chunk merges, with searches running during flushes', async () => {
    // A small vocabulary over many tiny out-of-order flushes forces spills and merges (each
    // common word spills a chunk every few flushes; more than MAX_CHUNKS chunks per word are
    // written over the run); the reference is a brute-force scan of the same texts.
    let seed = 7
    const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
    const vocabulary = Array.from({ length: 12 }, (_, i) => `v${i}`)
    const docs = new Map<number, string[]>()
    const order = Array.from({ length: 400 }, (_, i) => i + 1).sort(() => random() - 0.5)
    await withIndex(async (h) => {
      const running: Array<Promise<unknown>> = []
      for (const [n, doc] of order.entries()) {
        const words = vocabulary.filter((_, i) => random() < 1 / (i + 1.5))
        docs.set(doc, words)
        h.index.add(doc, text({ body: words.join(' ') }))
        if (n % 37 === 0) h.index.remove(doc)
        // Searches racing the flushes must always see every document added so far.
        if (n % 10 === 0) {
          const expected = [...docs.entries()].filter(([d, w]) => w.includes('v0') && h.index.has(d)).map(([d]) => d).sort((a, b) => b - a)
          running.push(h.index.search('v0', { limit: 1000 }).then((got) => {
            // Removals after the search started may hide some; additions after it may show more.
            for (const d of expected) if (h.index.has(d)) assert.ok(got.includes(d), `doc ${d} missing while flushing`)
          }))
        }
        // Flush every third add: the search just started takes its snapshot now and reads
        // while this flush commits (and merges away chunks its heads name). Flush sizes, and
        // so the chunk layout, are the same run to run.
        if (n % 3 === 2) await h.index.flush()
      }
      await Promise.all(running)
      await h.index.flush()
      const stats = h.index.stats()
      assert.ok(stats.chunks <= stats.terms * MAX_CHUNKS)
      assert.ok(stats.chunks > stats.terms, 'the test should leave terms with several chunks')
      const check = async (): Promise<void> => {
        for (const query of ['v0', 'v1', 'v5', 'v11', 'v0 v1', 'v2 v3 v4', 'v1 v11']) {
          const want = query.split(' ')
          const expected = [...docs.entries()].filter(([d, w]) => h.index.has(d) && want.every((x) => w.includes(x))).map(([d]) => d).sort((a, b) => b - a)
          assert.deepEqual(await h.index.search(query, { limit: 1000 }), expected, query)
          assert.deepEqual(await h.index.search(query, { limit: 7, before: 200 }), expected.filter((d) => d < 200).slice(0, 7), `${query} before 200`)
        }
      }
      await check()
      await h.reopen()
      await check()
      // Every head stays within MAX_CHUNKS: count chunk keys per term name.
      const perTerm = new Map<string, number>()
      for await (const key of h.db.keys({ gte: Buffer.from('x'), lt: Buffer.from('y') })) {
        if (key.length === 21) perTerm.set(key.subarray(1, 17).toString('hex'), (perTerm.get(key.subarray(1, 17).toString('hex')) ?? 0) + 1)
      }
      assert.ok(Math.max(...perTerm.values()) <= MAX_CHUNKS)
      assert.equal([...perTerm.values()].reduce((a, b) => a + b, 0), h.index.stats().chunks)
    }, { flushEvery: 1000, inlineBytes: 8 })
  })

  it('refuses to work once closed, and leaves the keys it was given alone', async () => {
    await withIndex(async ({ index, db, keys }) => {
      index.add(1, text({ body: 'x' }))
      await index.close()
      // close zeroes the index's own copies of the keys, not the buffers it was given.
      const given = { term: Buffer.from(keys.term), postings: Buffer.from(keys.postings) }
      const second = searchIndex({ db, keys: given })
      await second.open()
      assert.deepEqual(await second.search('x'), [1])
      await second.close()
      assert.deepEqual(given, keys)
      assert.throws(() => index.has(1), SearchError)
      assert.throws(() => index.add(2, text({ body: 'y' })), SearchError)
      await assert.rejects(index.search('x'), SearchError)
      await assert.rejects(index.flush(), SearchError)
    })
  })
})

/** Every value in the index's keyspace, by key. */
async function indexEntries (db: Db): Promise<Array<[Buffer, Buffer]>> {
  const out: Array<[Buffer, Buffer]> = []
  for (const [lo, hi] of [['X', 'Y'], ['x', 'y']]) {
    for await (const entry of db.iterator({ gte: Buffer.from(lo!), lt: Buffer.from(hi!) })) out.push(entry)
  }
  return out
}

/**
 * The database with its getMany calls held at a gate: reads with a snapshot are a search's,
 * reads without are a flush's. Lets a test stop one side at an exact point.
 */
function gatedDb (db: Db, hold: (keys: Buffer[], snapshotted: boolean) => Promise<void> | undefined): Db {
  return new Proxy(db, {
    get (target, prop) {
      if (prop === 'getMany') {
        return async (keys: Buffer[], options?: { snapshot?: unknown }) => {
          await hold(keys, options?.snapshot !== undefined)
          return options === undefined ? target.getMany(keys) : target.getMany(keys, options as never)
        }
      }
      const value = Reflect.get(target, prop, target) as unknown
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
    }
  })
}

function gate (): { wait: Promise<void>, open: () => void } {
  let open!: () => void
  const wait = new Promise<void>((resolve) => { open = resolve })
  return { wait, open }
}

describe('search index: searches racing flushes', () => {
  it('a search that read a head before a flush merged its chunks away still reads them', { timeout: 10_000 }, async () => {
    await withIndex(async (h) => {
      // Holds the next read of chunks: the search's, which comes before the flush's own.
      const chunkRead = gate()
      let holdChunks = false
      const hold = (keys: Buffer[]): Promise<void> | undefined => {
        if (!holdChunks || keys[0]!.length !== 21) return undefined
        holdChunks = false
        return chunkRead.wait
      }
      const index = searchIndex({ db: gatedDb(h.db, hold), keys: { term: Buffer.from(h.keys.term), postings: Buffer.from(h.keys.postings) }, inlineBytes: 0 })
      await index.open()
      index.add(1, text({ body: 'merged' }))
      index.add(2, text({ body: 'merged' }))
      await index.flush() // one chunk: 1, 2
      index.add(3, text({ body: 'merged' }))
      index.add(4, text({ body: 'merged' }))
      holdChunks = true
      const searching = index.search('merged')
      await new Promise((resolve) => setTimeout(resolve, 20)) // the search has read the head and waits
      // 3 and 4 spill into a chunk as big as the one there: the merge policy folds that one
      // in and deletes it, under the search that is about to read it.
      await index.flush()
      assert.equal(index.stats().chunks, 1)
      assert.equal((await indexEntries(h.db)).filter(([k]) => k.length === 21).length, 1)
      chunkRead.open()
      assert.deepEqual(await searching, [4, 3, 2, 1])
      await index.close()
    })
  })

  it('a search during a flush finds the documents that flush is writing', { timeout: 10_000 }, async () => {
    await withIndex(async (h) => {
      const flushRead = gate()
      let holdFlush = false
      const index = searchIndex({ db: gatedDb(h.db, (_keys, snapshotted) => !snapshotted && holdFlush ? flushRead.wait : undefined), keys: { term: Buffer.from(h.keys.term), postings: Buffer.from(h.keys.postings) } })
      await index.open()
      index.add(1, text({ body: 'inflight' }))
      await index.flush()
      index.add(2, text({ body: 'inflight' }))
      holdFlush = true
      const flushing = index.flush()
      await new Promise((resolve) => setTimeout(resolve, 20)) // the flush has taken the buffer and waits
      assert.equal(index.has(2), true)
      assert.deepEqual(await index.search('inflight'), [2, 1])
      flushRead.open()
      await flushing
      assert.deepEqual(await index.search('inflight'), [2, 1])
      await index.close()
    })
  })

  it('a database closed in the middle of a flush keeps the state of the last whole flush', { timeout: 10_000 }, async () => {
    await withIndex(async (h) => {
      const flushRead = gate()
      let holdFlush = false
      let index = searchIndex({ db: gatedDb(h.db, (_keys, snapshotted) => !snapshotted && holdFlush ? flushRead.wait : undefined), keys: { term: Buffer.from(h.keys.term), postings: Buffer.from(h.keys.postings) } })
      await index.open()
      index.add(1, text({ body: 'whole' }))
      await index.flush()
      index.add(2, text({ body: 'whole partial' }))
      holdFlush = true
      const flushing = index.flush()
      await new Promise((resolve) => setTimeout(resolve, 20))
      await h.db.close()
      flushRead.open()
      await assert.rejects(flushing, SearchError) // its reads and batch find the database closed
      h.db = openDb(h.dir)
      await h.db.open()
      index = searchIndex({ db: h.db, keys: { term: Buffer.from(h.keys.term), postings: Buffer.from(h.keys.postings) } })
      await index.open()
      assert.equal(index.has(1), true)
      assert.equal(index.has(2), false)
      assert.deepEqual(await index.search('whole'), [1])
      assert.deepEqual(await index.search('partial'), [])
      await index.close()
    })
  })
})

describe('search index after kill -9', () => {
  it('after the process dies mid-indexing, every document it claims is found, and nothing else', { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'smtorp-search-kill-'))
    const keys = newKeys()
    // The child indexes documents with automatic flushes (flushEvery 150) until it is killed,
    // printing the highest document of every flush that completed.
    const child = `
      import { ClassicLevel } from ${JSON.stringify(import.meta.resolve('classic-level'))}
      import { searchIndex } from ${JSON.stringify(new URL('./index.ts', import.meta.url).href)}
      const db = new ClassicLevel(${JSON.stringify(join(dir, 'db'))}, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
      await db.open()
      const index = searchIndex({ db, keys: { term: Buffer.from('${keys.term.toString('hex')}', 'hex'), postings: Buffer.from('${keys.postings.toString('hex')}', 'hex') }, flushEvery: 150, inlineBytes: 16 })
      await index.open()
      for (let doc = 1; doc <= 100000; doc++) {
        index.add(doc, { from: '', to: '', subject: 'kill', body: 'common u' + doc + ' m' + (doc % 7) })
        if (doc % 150 === 0) { await index.flush(); process.stdout.write('flushed ' + doc + '\\n') }
        if (doc % 10 === 0) await new Promise((resolve) => setImmediate(resolve))
      }
    `
    await writeFile(join(dir, 'child.mts'), child)
    try {
      const proc = spawn(process.execPath, ['--import', 'tsx', join(dir, 'child.mts')], { stdio: ['ignore', 'pipe', 'inherit'] })
      let flushedUpTo = 0
      await new Promise<void>((resolve, reject) => {
        proc.once('exit', () => { reject(new Error(`the child exited before it was killed, having flushed up to ${flushedUpTo}`)) })
        proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          for (const m of chunk.matchAll(/flushed (\d+)/g)) flushedUpTo = Number(m[1])
          // Kill it somewhere in the fourth flush or the adds before it.
          if (flushedUpTo >= 450) setTimeout(() => { proc.kill('SIGKILL'); resolve() }, 3)
        })
      })
      await new Promise((resolve) => { if (proc.exitCode !== null || proc.signalCode !== null) resolve(undefined); else proc.once('exit', resolve) })

      const db = openDb(join(dir, 'db'))
      await db.open()
      const index = searchIndex({ db, keys })
      await index.open()
      try {
        const claimed: number[] = []
        for (let doc = 1; doc <= flushedUpTo + 2000; doc++) if (index.has(doc)) claimed.push(doc)
        assert.ok(claimed.length >= flushedUpTo, `claims ${claimed.length}, flushed ${flushedUpTo}`)
        assert.deepEqual(claimed, Array.from({ length: claimed.length }, (_, i) => i + 1))
        const all = await index.search('common', { limit: 100_000 })
        assert.deepEqual(all, [...claimed].reverse())
        for (const doc of [1, claimed.length, Math.ceil(claimed.length / 2)]) assert.deepEqual(await index.search(`u${doc}`), [doc])
        assert.deepEqual(await index.search(`u${claimed.length + 1}`), [])
        assert.deepEqual(await index.search('m3 kill', { limit: 100_000 }), claimed.filter((d) => d % 7 === 3).reverse())
      } finally {
        await index.close()
        await db.close()
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('search index: tampering', () => {
  const seedDocs = async (index: SearchIndex): Promise<void> => {
    index.add(1, text({ from: 'mallory@example.org', body: 'tamperword' }))
    index.add(2, text({ body: 'otherword' }))
    await index.flush()
  }

  it('a flipped byte in any chunk or term head makes the search that reads it fail', async () => {
    await withIndex(async (h) => {
      await seedDocs(h.index)
      const keys = (await indexEntries(h.db)).map(([k]) => k).filter((k) => k.length === 21 || k.length === 17)
      assert.equal(keys.length, 20, 'ten terms, each a head and a chunk')
      for (const key of keys) {
        const value = (await h.db.get(key))!
        const flipped = Buffer.from(value)
        flipped[flipped.length - 20]! ^= 0x01
        await h.db.put(key, flipped)
        // Which term this chunk belongs to is unknown to the test: one of the queries reads it.
        let failed = 0
        for (const q of ['tamperword', 'otherword', 'mallory', 'example', 'org', 'from:mallory', 'from:example', 'from:org', 'mallory@example.org', 'from:mallory@example.org']) {
          const r = await h.index.search(q).then(() => 'ok', (err: unknown) => err)
          if (r !== 'ok') { assert.ok(r instanceof SearchError, String(r)); assert.match(r.message, /Rebuild/); failed++ }
        }
        assert.equal(failed, 1, 'exactly the query of that chunk fails')
        await h.db.put(key, value)
      }
      assert.deepEqual(await h.index.search('tamperword'), [1])
    }, { inlineBytes: 0 })
  })

  it('a chunk moved to another key, a deleted chunk, or a changed head fails, and a flush over it too', async () => {
    await withIndex(async (h) => {
      await seedDocs(h.index)
      const entries = await indexEntries(h.db)
      const chunks = entries.filter(([k]) => k.length === 21)
      const [a, b] = [chunks[0]!, chunks[1]!]
      await h.db.put(b[0], a[1])
      const results = await Promise.all(['tamperword', 'otherword', 'mallory', 'example', 'org', 'from:mallory', 'from:example', 'from:org', 'mallory@example.org', 'from:mallory@example.org'].map(async (q) => h.index.search(q).then(() => 'ok', (err: unknown) => err)))
      assert.equal(results.filter((r) => r instanceof SearchError).length, 1)
      assert.equal(results.filter((r) => r !== 'ok' && !(r instanceof SearchError)).length, 0)
      await h.db.put(b[0], b[1])

      // Deleted chunk: the head still names it.
      await h.db.del(a[0])
      const afterDelete = await Promise.all(['tamperword', 'otherword', 'mallory', 'example', 'org', 'from:mallory', 'from:example', 'from:org', 'mallory@example.org', 'from:mallory@example.org'].map(async (q) => h.index.search(q).then(() => 'ok', (err: unknown) => err)))
      assert.equal(afterDelete.filter((r) => r instanceof SearchError).length, 1)
      await h.db.put(a[0], a[1])

      // A head swapped for another term's head.
      const heads = entries.filter(([k]) => k.length === 17)
      await h.db.put(heads[0]![0], heads[1]![1])
      const afterHead = await Promise.all(['tamperword', 'otherword', 'mallory', 'example', 'org', 'from:mallory', 'from:example', 'from:org', 'mallory@example.org', 'from:mallory@example.org'].map(async (q) => h.index.search(q).then(() => 'ok', (err: unknown) => err)))
      assert.equal(afterHead.filter((r) => r instanceof SearchError).length, 1)
      // A flush that touches every term reads every head: it fails, and keeps its documents.
      h.index.add(3, text({ from: 'mallory@example.org', body: 'tamperword otherword' }))
      await assert.rejects(h.index.flush(), SearchError)
      assert.equal(h.index.stats().bufferedDocs, 1)
      assert.equal(h.index.has(3), true)
      await h.db.put(heads[0]![0], heads[0]![1])
      await h.index.flush()
      assert.deepEqual(await h.index.search('tamperword'), [3, 1])
    }, { inlineBytes: 0 })
  })

  it('a changed or missing state makes open fail', async () => {
    await withIndex(async (h) => {
      await seedDocs(h.index)
      await h.index.close()
      const stateKey = Buffer.from('Xs')
      const state = (await h.db.get(stateKey))!
      const flipped = Buffer.from(state)
      flipped[5]! ^= 0x80
      await h.db.put(stateKey, flipped)
      const reopened = (): SearchIndex => searchIndex({ db: h.db, keys: { term: Buffer.from(h.keys.term), postings: Buffer.from(h.keys.postings) } })
      await assert.rejects(reopened().open(), (err) => err instanceof SearchError && /state does not authenticate/.test(err.message))
      // A chunk value put where the state goes.
      const chunk = (await indexEntries(h.db)).find(([k]) => k.length === 21)!
      await h.db.put(stateKey, chunk[1])
      await assert.rejects(reopened().open(), SearchError)
      await h.db.del(stateKey)
      await assert.rejects(reopened().open(), (err) => err instanceof SearchError && /no state/.test(err.message))
      // Wrong keys: nothing opens.
      await h.db.put(stateKey, state)
      await assert.rejects(searchIndex({ db: h.db, keys: newKeys() }).open(), SearchError)
      const good = reopened()
      await good.open()
      assert.deepEqual(await good.search('tamperword'), [1])
      await good.close()
    }, { inlineBytes: 0 })
  })
})

describe('search index: nothing in plaintext on disk', () => {
  it('no word, address or subject appears in any file of the database', async () => {
    const markers = ['zqxmarkerone', 'vwkmarkertwo', 'plaintextleakcheck', 'bzcorrespondent@leak-domain.example', 'leak-domain', 'Confidential merger plans', 'confidential']
    await withIndex(async (h) => {
      // A sanity check that the scan works: a marker put in plaintext by the test is found.
      await h.db.put(Buffer.from('zz-outside-the-index'), Buffer.from('canarymarker '.repeat(4)))
      for (let doc = 1; doc <= 300; doc++) {
        h.index.add(doc, text({
          from: `Bz Correspondent <bzcorrespondent@leak-domain.example>`,
          to: `recipient${doc}@leak-domain.example`,
          subject: 'Confidential merger plans',
          body: `zqxmarkerone vwkmarkertwo plaintextleakcheck ${'zqxmarkerone '.repeat(doc % 4)} number ${doc}`
        }))
        if (doc % 100 === 0) await h.index.flush()
      }
      await h.index.close()
      await h.db.close() // everything in the log and tables, nothing only in memory
      const bytes: Buffer[] = []
      for (const file of await readdir(h.dir)) bytes.push(await readFile(join(h.dir, file)))
      const all = Buffer.concat(bytes)
      assert.ok(all.includes(Buffer.from('canarymarker')), 'the scan finds a plaintext marker')
      for (const marker of markers) {
        for (const form of [marker, marker.toLowerCase(), marker.toUpperCase()]) {
          assert.equal(all.includes(Buffer.from(form, 'utf8')), false, `found ${form}`)
          assert.equal(all.includes(Buffer.from(form, 'utf16le')), false, `found ${form} as UTF-16`)
        }
      }
      // Snappy keeps literals of up to 60 bytes contiguous; a shorter prefix of each marker
      // would show up too if the word were stored in plaintext.
      for (const marker of ['zqxmarker', 'vwkmarker', 'bzcorresp', 'leakcheck']) assert.equal(all.includes(Buffer.from(marker)), false, `found ${marker}`)
    })
  })
})
