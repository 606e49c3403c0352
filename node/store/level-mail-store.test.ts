// The LevelDB mail store: the shared compliance suite, its on-disk format, and kill -9
// in the middle of a stream of adds.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { mailStoreCompliance } from '../../test/store-compliance.ts'
import { levelMailStore, LEVEL_STORE_FORMAT, MailStoreError } from './index.ts'

async function tempDir (): Promise<string> {
  return mkdtemp(join(tmpdir(), 'smtorp-store-'))
}

mailStoreCompliance('LevelMailStore', async () => {
  const dir = await tempDir()
  return {
    store: levelMailStore({ path: join(dir, 'store') }),
    cleanup: async () => { await rm(dir, { recursive: true, force: true }) }
  }
})

describe('LevelMailStore format', () => {
  it('hands out ids that sort in arrival order', async () => {
    const dir = await tempDir()
    const store = levelMailStore({ path: dir })
    try {
      await store.open()
      const got: string[] = []
      for (let i = 0; i < 12; i++) got.push((await store.add({ folder: 'Inbox', raw: Buffer.from('x'), from: 'a', to: ['b'] })).meta.id)
      got.push(...(await Promise.all(Array.from({ length: 12 }, () => store.add({ folder: 'Inbox', raw: Buffer.from('x'), from: 'a', to: ['b'] })))).map((r) => r.meta.id))
      assert.deepEqual([...got].sort(), got)
    } finally {
      await store.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('writes its format version and refuses another one', async () => {
    const dir = await tempDir()
    try {
      const store = levelMailStore({ path: dir })
      await store.open()
      await store.close()
      const db = new ClassicLevel<string, string>(dir)
      assert.equal(await db.get('s!format'), String(LEVEL_STORE_FORMAT))
      await db.put('s!format', '2')
      await db.close()
      await assert.rejects(levelMailStore({ path: dir }).open(), (err) => err instanceof MailStoreError && /format 2/.test(err.message))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('refuses a LevelDB database that is not a mail store', async () => {
    const dir = await tempDir()
    try {
      const db = new ClassicLevel<string, string>(dir)
      await db.put('something', 'else')
      await db.close()
      await assert.rejects(levelMailStore({ path: dir }).open(), MailStoreError)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

/** The bytes of crash-test message `i`; its source is sent to the child too. */
function crashBody (i: number): Buffer {
  const head = Buffer.from(`Message-ID: <crash-${i}@x.onion>\r\nSubject: crash ${i}\r\n\r\n`, 'latin1')
  const body = Buffer.alloc(500 + (i * 37) % 4000)
  for (let k = 0; k < body.length; k++) body[k] = (i * 31 + k * 7) & 0xff
  return Buffer.concat([head, body, Buffer.from('\r\n.\r\n')])
}

describe('LevelMailStore after kill -9', () => {
  it('keeps every message whose add had resolved', async () => {
    const dir = await tempDir()
    try {
      // Eight writers at once, so the kill also lands in the middle of group commits.
      const child = `
        import { levelMailStore } from ${JSON.stringify(new URL('./index.ts', import.meta.url).href)}
        const crashBody = ${crashBody.toString()}
        const store = levelMailStore({ path: ${JSON.stringify(dir)} })
        await store.open()
        let next = 0
        async function writer () {
          for (;;) {
            const i = next++
            const { meta } = await store.add({ folder: i % 2 ? 'Inbox' : 'Sent', raw: crashBody(i), from: 'a@x.onion', to: ['b@y.onion'], messageId: 'crash-' + i + '@x.onion' })
            process.stdout.write(i + ' ' + meta.id + '\\n')
          }
        }
        await Promise.all(Array.from({ length: 8 }, writer))
      `
      const proc = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), '--input-type=module', '-e', child], {
        stdio: ['ignore', 'pipe', 'inherit']
      })
      let out = ''
      let killed = false
      proc.stdout.setEncoding('utf8')
      proc.stdout.on('data', (chunk: string) => {
        out += chunk
        if (!killed && out.split('\n').length > 400) {
          killed = true
          proc.kill('SIGKILL')
        }
      })
      const signal = await new Promise<NodeJS.Signals | null>((resolve) => proc.on('close', (_code, sig) => { resolve(sig) }))
      assert.equal(signal, 'SIGKILL', 'the child should have been killed, not have exited')

      // Only whole lines: the child may die mid-write.
      const lines = out.split('\n').slice(0, -1)
      const printed = lines.map((line) => {
        const [i, id] = line.split(' ')
        return { i: Number(i), id: id! }
      })
      assert.ok(printed.length >= 400)

      const store = levelMailStore({ path: dir })
      await store.open()
      try {
        for (const { i, id } of printed) {
          const got = await store.get(id)
          assert.ok(got, `message ${i} (${id}) was acknowledged but is gone`)
          assert.ok(got.raw.equals(crashBody(i)), `message ${i} (${id}) changed`)
          assert.equal(got.messageId, `crash-${i}@x.onion`)
        }
        const listed = [...await store.list('Inbox'), ...await store.list('Sent')]
        const listedIds = new Set(listed.map((m) => m.id))
        for (const { id } of printed) assert.ok(listedIds.has(id), `${id} missing from list`)
        // Messages that were on disk but not yet acknowledged may be there too: they are whole.
        for (const m of listed) {
          const i = Number(/^crash-(\d+)@/.exec(m.messageId ?? '')?.[1])
          assert.ok((await store.get(m.id))?.raw.equals(crashBody(i)))
        }
        // The store goes on after the crash with fresh ids and working duplicate suppression.
        const fresh = await store.add({ folder: 'Inbox', raw: Buffer.from('after'), from: 'a', to: ['b'] })
        assert.ok(!listedIds.has(fresh.meta.id))
        const first = printed[0]!
        const again = await store.add({ folder: first.i % 2 ? 'Inbox' : 'Sent', raw: crashBody(first.i), from: 'a', to: ['b'], messageId: `crash-${first.i}@x.onion` })
        assert.equal(again.duplicate, true)
        assert.equal(again.meta.id, first.id)
      } finally {
        await store.close()
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
