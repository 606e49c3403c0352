// kill -9 of alice's node right after the submission's 250: after a restart the message is
// delivered, exactly once in bob's mailbox. alice runs as a real `smtorp start` process.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { promisify } from 'node:util'
import { join } from 'node:path'
import { rm } from 'node:fs/promises'
import { sharedTorNetwork, type PrivateTorNetwork } from './harness/tor-network.ts'
import { testPassphraseFile } from './harness/vault.ts'
import { initNodeDir, startTestNode, testSettings, waitFor, type TestNode } from './harness/nodes.ts'
import { SmtpConnection } from '../node/smtp-client/index.ts'
import type { Identity } from '../node/identity/index.ts'

const run = promisify(execFile)
const CLI = join(import.meta.dirname, '..', 'node', 'cli', 'main.ts')

let network: PrivateTorNetwork
let bob: TestNode
let aliceDir: string
let alice: Identity
const children: ChildProcess[] = []

/** Start `smtorp start` for alice; resolve with its submission port once it says it runs. */
async function startAlice (): Promise<{ child: ChildProcess, port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'start', '--data', aliceDir, '--passphrase-file', await testPassphraseFile()], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let output = ''
  child.stderr!.on('data', (d: Buffer) => { output += d.toString() })
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      output += d.toString()
      const match = /submission port 127\.0\.0\.1:(\d+)/.exec(output)
      if (match !== null) resolve(Number(match[1]))
    })
    child.once('exit', code => reject(new Error(`smtorp start exited with ${code}: ${output}`)))
    setTimeout(() => reject(new Error(`smtorp start did not come up: ${output}`)), 60_000)
  })
  return { child, port }
}

async function smtorp (...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', CLI, ...args, '--data', aliceDir], { timeout: 30_000 })
  return stdout
}

async function bobCopies (marker: string): Promise<number> {
  let count = 0
  for (const meta of await bob.node.store.list('Inbox')) {
    if ((await bob.node.store.get(meta.id))?.raw.includes(marker) === true) count++
  }
  return count
}

describe('crash safety of the outbound queue', { timeout: 600_000 }, () => {
  before(async () => {
    network = await sharedTorNetwork()
    bob = await startTestNode('bob', testSettings(network))
    const made = await initNodeDir('alice', testSettings(network, { log: { level: 'warn' } }))
    aliceDir = made.dir
    alice = made.identity
    await bob.node.tor.waitForBootstrap(90_000)
    await bob.node.tor.waitForDescriptorUpload(bob.identity.onionKey.address, 60_000)
  })
  after(async () => {
    for (const child of children) child.kill('SIGKILL')
    await bob?.stop()
    await bob?.remove()
    await rm(aliceDir, { recursive: true, force: true })
    await network?.stop()
  })

  it('a message acknowledged just before kill -9 is delivered after restart, exactly once', async () => {
    const first = await startAlice()
    const marker = `crash-${Date.now()}`
    const socket = await SmtpConnection.dial('127.0.0.1', first.port, 5000)
    const connection = await SmtpConnection.open(socket, { ehloName: 'localhost', timeoutMs: 10_000 })
    await connection.authPlain('alice', alice.submissionPassword)
    const raw = Buffer.from(`From: <${alice.address}>\r\nTo: <${bob.identity.address}>\r\nSubject: crash test\r\nMessage-ID: <${marker}@${alice.domain}>\r\n\r\n${marker}\r\n`)
    const results = await connection.send({ from: alice.address, to: [bob.identity.address], raw })
    first.child.kill('SIGKILL') // the instant the 250 is in
    assert.equal(results[0]?.ok, true, String(results[0]?.reply))
    await new Promise(resolve => first.child.once('exit', resolve))
    // Its tor must go with it (TAKEOWNERSHIP), or the restarted node could not take the data directory.
    await startAlice()
    const status = await smtorp('status')
    assert.match(status, new RegExp(`address\\s+${alice.address.replace(/\./g, '\\.')}`))
    await waitFor('bob to receive the acknowledged message', async () => await bobCopies(marker) >= 1, 150_000, 500)
    await waitFor('alice\'s queue to empty', async () => /the queue is empty/.test(await smtorp('queue')), 30_000, 500)
    assert.equal(await bobCopies(marker), 1)
  })
})
