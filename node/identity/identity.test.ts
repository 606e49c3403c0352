import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { webUiPathKey, IdentityError } from './index.ts'

describe('the web UI path key in the data directory', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'smtorp-ui-key-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('is made once, 128 random bits, mode 0600, and read back the same after a restart', async () => {
    const first = await webUiPathKey(dir)
    assert.match(first, /^[A-Za-z0-9_-]{22}$/)
    assert.equal(Buffer.from(first, 'base64url').length, 16)
    assert.equal((await readFile(join(dir, 'web-ui.key'), 'utf8')), `${first}\n`)
    assert.equal((await stat(join(dir, 'web-ui.key'))).mode & 0o777, 0o600)
    assert.equal(await webUiPathKey(dir), first)
    const other = await mkdtemp(join(tmpdir(), 'smtorp-ui-key-'))
    try {
      assert.notEqual(await webUiPathKey(other), first)
    } finally {
      await rm(other, { recursive: true, force: true })
    }
  })

  it('refuses a file that does not hold a key, saying what to do, and leaves it alone', async () => {
    await writeFile(join(dir, 'web-ui.key'), 'short\n')
    await assert.rejects(webUiPathKey(dir), (err: Error) => err instanceof IdentityError && /remove it and a new one is made/.test(err.message))
    assert.equal(await readFile(join(dir, 'web-ui.key'), 'utf8'), 'short\n')
  })
})
