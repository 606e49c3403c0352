// docker-compose.yml must be valid wherever a Compose is installed (no Docker engine runs
// here, but `config` needs none). Skipped, and says so, when there is no Compose at all.
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { join } from 'node:path'

const run = promisify(execFile)
const ROOT = join(import.meta.dirname, '..')

async function compose (): Promise<string[] | undefined> {
  for (const command of [['docker', 'compose'], ['docker-compose']]) {
    try {
      await run(command[0]!, [...command.slice(1), 'version'], { timeout: 10_000 })
      return command
    } catch {}
  }
  return undefined
}

it('docker-compose.yml passes `docker compose config`, two nodes with their own data, ports on loopback only', async t => {
  const command = await compose()
  if (command === undefined) return t.skip('no docker compose or docker-compose here')
  const { stdout } = await run(command[0]!, [...command.slice(1), '-f', join(ROOT, 'docker-compose.yml'), 'config'], { timeout: 30_000, cwd: ROOT })
  assert.match(stdout, /alice:/)
  assert.match(stdout, /bob:/)
  assert.match(stdout, /alice-data/)
  assert.match(stdout, /bob-data/)
  // The vault passphrase reaches each node as a secret file, never through the environment.
  assert.equal([...stdout.matchAll(/--passphrase-file/g)].length, 2)
  assert.match(stdout, /alice\.passphrase/)
  assert.doesNotMatch(stdout, /^\s*-?\s*[A-Z_]*PASSPHRASE[A-Z_]*\s*[:=]/m)
  // Compose v1 prints short syntax ("- 127.0.0.1:2525:2525/tcp"), v2 long syntax ("host_ip: ...").
  const short = [...stdout.matchAll(/^\s*- "?([0-9.]*):?(\d+):(\d+)/gm)].map(m => m[1])
  const long = [...stdout.matchAll(/^\s*host_ip: "?([0-9.]+)/gm)].map(m => m[1])
  const published = [...short, ...long]
  assert.ok(published.length >= 4, 'both nodes publish submission and UI ports')
  assert.deepEqual(published.filter(ip => ip !== '127.0.0.1'), [], 'every published port is bound to 127.0.0.1')
  const longCount = [...stdout.matchAll(/^\s*published: /gm)].length
  assert.equal(longCount, long.length, 'no long-syntax port without a host_ip')
})
