// npm run demo: a private Tor network on this machine, two nodes (alice and bob), one message
// each way over their onion services (the first signed, the answer encrypted: each node learns
// the other's key from the Autocrypt header), and what happened at each step. No internet needed.
import { startPrivateTorNetwork } from '../test/harness/tor-network.ts'
import { startTestNode, testSettings, waitFor, type TestNode } from '../test/harness/nodes.ts'

const started = Date.now()
const say = (text: string): void => { process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}\n`) }

/** The message holding `marker` as its owner reads it (mail between nodes is signed, and encrypted once both know each other's key). */
async function inboxHas (node: TestNode, marker: string): Promise<{ raw: Buffer, shown: string, security: string } | undefined> {
  for (const meta of await node.node.store.list('Inbox')) {
    const message = await node.node.store.get(meta.id)
    if (message === undefined) continue
    const read = await node.node.openpgp.readMessage(message.raw)
    const shown = (read.display ?? message.raw).toString()
    if (!shown.includes(marker)) continue
    const s = read.security
    const security = `${s.encrypted ? (s.decrypted === true ? 'encrypted (decrypted here)' : 'encrypted') : 'not encrypted'}, ${s.signature === 'good' ? 'signature good' : s.signature === 'none' ? 'not signed' : `signature ${s.signature}`}`
    return { raw: message.raw, shown, security }
  }
  return undefined
}

async function send (from: TestNode, to: TestNode, subject: string, body: string): Promise<void> {
  const marker = `${from.name}-${Date.now()}`
  const t0 = Date.now()
  const { results } = await from.submit([to.identity.address], subject, `${body}\r\n(${marker})\r\n`)
  say(`${from.name}'s node accepted the message: ${results[0]?.reply ?? ''}`)
  const found = await waitFor(`${to.name} to receive`, async () => await inboxHas(to, marker), 120_000, 50)
  say(`${to.name}'s node stored it ${Date.now() - t0} ms later (OpenPGP: ${found.security}). As stored it begins:`)
  for (const line of found.raw.toString().split('\r\n').slice(0, 4)) process.stdout.write(`          | ${line.slice(0, 110)}\n`)
}

say('starting a private Tor network: 5 directory authorities on 127.0.0.1')
const network = await startPrivateTorNetwork()
const nodes: TestNode[] = []
const cleanup = async (): Promise<void> => {
  await Promise.allSettled(nodes.map(async n => { await n.stop(); await n.remove() }))
  await network.stop()
}
process.on('SIGINT', () => { void cleanup().then(() => process.exit(130)) })
try {
  say('network is up; starting alice and bob, each with its own tor')
  const [alice, bob] = await Promise.all([startTestNode('alice', testSettings(network)), startTestNode('bob', testSettings(network))])
  nodes.push(alice, bob)
  say(`alice is ${alice.identity.address}`)
  say(`bob   is ${bob.identity.address}`)
  await Promise.all([alice, bob].map(async n => {
    await n.node.tor.waitForBootstrap(90_000)
    await n.node.tor.waitForDescriptorUpload(n.identity.onionKey.address, 60_000)
    say(`${n.name}'s tor is bootstrapped and its onion service is published`)
  }))
  await send(alice, bob, 'Hello from alice', 'Hi Bob, this came to you over Tor, from my node to yours.')
  await send(bob, alice, 'Re: Hello from alice', 'Got it, Alice. No mail provider in between.')
  say(`alice opened ${alice.node.status().connections.opened} connection(s) to deliver; each sender proved its onion address with AUTH X-SMTORP-ONION`)
  say('done; stopping the nodes and the network')
} catch (err) {
  say(`the demo failed: ${(err as Error).message}`)
  process.exitCode = 1
} finally {
  await cleanup()
}
