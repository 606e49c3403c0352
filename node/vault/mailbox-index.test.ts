// MailboxIndex against a plain model of the same mailbox: random adds (some late, as filed
// arrivals are), moves, flag changes and deletions, then every page of every folder.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { MailboxIndex } from './mailbox-index.ts'
import { FOLDERS, type Folder } from '../store/mail-store.ts'
import { prng } from '../../bench/lib/stats.ts'

const id = (n: number): string => String(n).padStart(16, '0')

describe('MailboxIndex paging', () => {
  it('pages every folder newest first as a sorted model does, through late ids, moves and mass deletion', () => {
    const random = prng(7)
    const index = new MailboxIndex()
    const model = new Map<string, Folder>()
    let next = 10_000
    const pick = (): string | undefined => { const ids = [...model.keys()]; return ids[Math.floor(random() * ids.length)] }
    for (let step = 0; step < 12_000; step++) {
      const r = random()
      if (r < 0.5) {
        // Mostly new ids; some smaller than ones already there (an arrival filed late).
        const n = random() < 0.1 ? Math.floor(random() * 10_000) : next++
        const key = id(n)
        if (model.has(key)) continue
        const folder = FOLDERS[Math.floor(random() * FOLDERS.length)]!
        index.set(key, folder, [], undefined)
        model.set(key, folder)
      } else if (r < 0.65) {
        const key = pick()
        if (key === undefined) continue
        const folder = FOLDERS[Math.floor(random() * FOLDERS.length)]!
        index.set(key, folder, random() < 0.5 ? ['\\Seen'] : [], undefined)
        model.set(key, folder)
      } else if (step > 6000 && r < 0.99) {
        // A long run of deletions, so the array of ids is compacted more than once.
        const key = pick()
        if (key === undefined) continue
        index.delete(key, undefined)
        model.delete(key)
      }
      if (step % 997 === 0 || step === 11_999) {
        for (const folder of FOLDERS) {
          const expected = [...model].filter(([, f]) => f === folder).map(([k]) => k).sort().reverse()
          const got: string[] = []
          let before: string | undefined
          for (;;) {
            const page = index.newest(folder, 37, before)
            got.push(...page)
            if (page.length < 37) break
            before = page[page.length - 1]
          }
          assert.deepEqual(got, expected, `${folder} at step ${step}`)
          assert.deepEqual(index.ids(folder), [...expected].reverse())
          // Forward, as the OpenPGP reader walks the Inbox from its watermark.
          const forward: string[] = []
          let after: string | undefined
          for (;;) {
            const page = index.oldestAfter(folder, 41, after)
            forward.push(...page)
            if (page.length < 41) break
            after = page[page.length - 1]
          }
          assert.deepEqual(forward, [...expected].reverse(), `${folder} forward at step ${step}`)
        }
      }
    }
    assert.ok(model.size > 0)
  })
})
