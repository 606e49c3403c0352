// The private Tor network harness: the CLI starts a network that another process joins
// (as test files do through SMTORP_TOR_NETWORK), a client bootstraps on it, SIGTERM
// tears everything down, and tors left by a crashed run are killed by the next start.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { connectToTorNetwork, reapLeftovers, consensusProblem, type NetworkDescription } from './harness/tor-network.ts'
import { isAlive } from '../node/tor/process.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

function startCli (file: string): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', join(root, 'scripts/tor-network.ts'), 'start', '--file', file], {
    cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
  })
}

async function waitForLine (child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<string> {
  return await new Promise((resolvePromise, reject) => {
    let out = ''
    let err = ''
    const timer = setTimeout(() => { reject(new Error(`CLI did not print ${pattern} in ${timeoutMs} ms; stderr: ${err}`)) }, timeoutMs)
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString()
      const m = pattern.exec(out)
      if (m !== null) { clearTimeout(timer); resolvePromise(m[0]) }
    })
    child.stderr!.on('data', (c: Buffer) => { err += c.toString() })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`CLI exited with ${code}; stderr: ${err}`)) })
  })
}

/** pids of running processes whose command line mentions `text`. */
function pgrep (text: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', text], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number)
  } catch {
    return [] // pgrep exits 1 when nothing matches
  }
}

describe('private tor network', { timeout: 180_000 }, () => {
  it('starts from the CLI, carries a client, and stops cleanly on SIGTERM', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'smtorp-tor-net-test-'))
    const file = join(dir, 'network.json')
    const cli = startCli(file)
    try {
      const t = Date.now()
      await waitForLine(cli, /ready \S+/, 120_000)
      const startMs = Date.now() - t
      const description = JSON.parse(await readFile(file, 'utf8')) as NetworkDescription
      assert.equal(description.authorities.length, 5)
      assert.ok(description.clientTorrc.some((l) => l.startsWith('DirAuthority auth0 ')))

      const network = await connectToTorNetwork(file)
      const t2 = Date.now()
      const client = await network.startClient('probe', { bootstrapTimeoutMs: 30_000 })
      console.log(`network ready in ${startMs} ms, client bootstrapped in ${Date.now() - t2} ms`)
      assert.ok(client.socksPort > 0 && client.controlPort > 0)
      await network.stop() // stops our client only
      assert.equal(isAlive(client.pid), false)
      assert.ok(description.authorities.every((a) => isAlive(a.pid)), 'the network itself belongs to the CLI')

      const exited = new Promise((resolvePromise) => cli.once('exit', resolvePromise))
      cli.kill('SIGTERM')
      assert.equal(await exited, 0)
      for (const a of description.authorities) assert.equal(isAlive(a.pid), false, `${a.nickname} is gone`)
      assert.deepEqual(pgrep(description.dir), [], 'no tor process mentions the network directory')
      assert.equal(existsSync(file), false, 'description file removed')
    } finally {
      if (cli.exitCode === null) cli.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('kills the tors of a crashed run at the next start', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'smtorp-tor-net-test-'))
    const cli = startCli(join(dir, 'network.json'))
    try {
      const cliPid = cli.pid!
      const pidFile = join(tmpdir(), 'smtorp-tor-pids', `${cliPid}.json`)
      // No need to wait for a consensus: crash as soon as all five tors are recorded.
      const deadline = Date.now() + 60_000
      let pids: number[] = []
      while (pids.length < 5) {
        assert.ok(Date.now() < deadline, 'authorities recorded in the pid file')
        try { pids = (JSON.parse(await readFile(pidFile, 'utf8')) as { pids: { pid: number }[] }).pids.map((p) => p.pid) } catch {}
        await new Promise((resolvePromise) => setTimeout(resolvePromise, 100))
      }
      const exited = new Promise((resolvePromise) => cli.once('exit', resolvePromise))
      cli.kill('SIGKILL')
      await exited
      assert.ok(pids.every(isAlive), 'tors outlive a crashed owner for a moment')
      await reapLeftovers() // may also reap other crashed runs, or find another run reaped these already
      assert.ok(!pids.some(isAlive))
      assert.equal(existsSync(pidFile), false)
    } finally {
      if (cli.exitCode === null) cli.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('consensusProblem', () => {
  const relay = (bw: number): string => `r x AAAA BBBB 2025-01-01 00:00:00 127.0.0.1 5000 0\ns Fast Guard HSDir Running Stable V2Dir Valid\nw Bandwidth=${bw}\n`
  it('accepts five running relays with equal-zeroness bandwidths', () => {
    assert.equal(consensusProblem([1, 2, 3, 4, 5].map(relay).join(''), 5), undefined)
    assert.equal(consensusProblem([0, 0, 0, 0, 0].map(relay).join(''), 5), undefined)
  })
  it('rejects a consensus that mixes zero and non-zero bandwidths (clients sat at 95% for ~16 s)', () => {
    assert.match(consensusProblem([20, 0, 0, 0, 0].map(relay).join(''), 5)!, /mixes/)
  })
  it('rejects a consensus missing relays', () => {
    assert.match(consensusProblem([1, 2, 3, 4].map(relay).join(''), 5)!, /4 of 5/)
  })
})
