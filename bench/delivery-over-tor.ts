/**
 * Delivery over Tor: alice and bob, two real nodes on a private Tor network on loopback,
 * each with its own tor. Every mail figure is printed beside the raw Tor round trip
 * measured in the same run over the same two tor processes.
 *
 *   node_modules/.bin/tsx bench/delivery-over-tor.ts [--messages 30] [--burst 200] [--rtts 50] [--size 1024]
 *
 * Reference: a TCP echo server published as an onion service by bob's tor (a generated key,
 * `tor.publishOnion`), reached through alice's SOCKS port with the same SOCKS code the node
 * uses (`connectViaSocks`, stream isolation on). Measured: the first connect (descriptor
 * fetch, introduction, rendezvous) plus one round trip, then `--rtts` 32-byte round trips
 * on the open stream, before and again after the mail phases.
 *
 * Mail (each timed from the moment the message is handed to alice's submission port on an
 * already open, authenticated submission connection, until bob's store.add resolved, i.e.
 * the message is synced in bob's Inbox; bob's store.add is wrapped in this process to
 * timestamp that, nothing in node/ is changed):
 *   (a) the first message alice sends bob: new Tor circuit and SMTorP session;
 *   (b) `--messages` messages one at a time on the open connection, each submitted after
 *       the previous one was stored at bob and alice's queue was empty again;
 *   (c) `--burst` messages submitted at once (4 submission connections): messages/s from
 *       the first submission to the last one stored at bob, and the connections alice opened.
 * To explain the figures: the submission hop alone (submit to 250), bob's store.add time,
 * and the bare SMTP transaction on an open connection: a second `delivery(...)` built as
 * node/node.ts builds it, with alice's onion key and alice's SOCKS port, timed around
 * `deliver` (MAIL+RCPT+DATA pipelined, then the body: 2 round trips plus bob's fsync).
 *
 * bob's per-peer rate limit (smtpIn.maxMessagesPerPeerPerMinute, default 120) is raised
 * for the run, or the burst would be deferred by design.
 */
import { parseArgs } from 'node:util'
import { createServer, type Server, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { sharedTorNetwork, type PrivateTorNetwork } from '../test/harness/tor-network.ts'
import { startTestNode, testSettings, type TestNode } from '../test/harness/nodes.ts'
import { SmtpConnection, connectViaSocks } from '../node/smtp-client/index.ts'
import { delivery, type Delivery } from '../node/delivery/index.ts'
import { silentLogger } from '../node/log/index.ts'
import type { NewMessage, AddResult } from '../node/store/index.ts'
import { expandedSecretKey, generateOnionKey } from '../protocol/onion.ts'
import { parseAddress } from '../protocol/address.ts'
import { rfc5322Date } from '../protocol/message.ts'
import { quantile } from './lib/stats.ts'

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '30' },
    burst: { type: 'string', default: '200' },
    rtts: { type: 'string', default: '50' },
    size: { type: 'string', default: '1024' },
    'timeout-s': { type: 'string', default: '240' }
  }
})
const MESSAGES = Number(args.messages)
const BURST = Number(args.burst)
const RTTS = Number(args.rtts)
const SIZE = Number(args.size)
const BURST_CONNECTIONS = 4
const ECHO_BYTES = 32

// ---------------------------------------------------------------------------------
// Small helpers

const now = (): number => performance.now()
// Nearest rank, as the figures in bench/RESULTS.md were taken.
const median = (values: number[]): number => quantile(values, 0.5)

const ms = (n: number): string => `${n.toFixed(1)} ms`
/** Share of samples above `limit`, as a percentage: how often a ~40 ms stall was added. */
const over = (values: number[], limit: number): string => `${Math.round(100 * values.filter(v => v > limit).length / values.length)}%`

function withTimeout<T> (what: string, promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise,
    new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)) }, timeoutMs) })
  ]).finally(() => { clearTimeout(timer) })
}

// ---------------------------------------------------------------------------------
// The raw Tor reference: an echo server behind an onion service

/**
 * Echoes each 32-byte request. A request starting with "s" is answered in three writes
 * (10, 10 and 12 bytes, a turn of the event loop apart), as smtp-server answers pipelined
 * MAIL, RCPT and DATA: that isolates what a reply split over several TCP segments costs.
 */
async function startEchoServer (): Promise<{ server: Server, port: number }> {
  const server = createServer(socket => {
    socket.setNoDelay(true)
    socket.on('error', () => {})
    let pending = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk])
      while (pending.length >= ECHO_BYTES) {
        const request = pending.subarray(0, ECHO_BYTES)
        pending = pending.subarray(ECHO_BYTES)
        if (request[0] !== 0x73) { socket.write(request); continue }
        socket.write(request.subarray(0, 10))
        setImmediate(() => {
          socket.write(request.subarray(10, 20))
          setImmediate(() => { socket.write(request.subarray(20)) })
        })
      }
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('echo server has no port')
  return { server, port: address.port }
}

/** One round trip of `payload` on an echo stream. */
async function echoRoundTrip (socket: Socket, payload: Buffer): Promise<number> {
  const started = now()
  await new Promise<void>((resolve, reject) => {
    let got = 0
    const onData = (chunk: Buffer): void => {
      got += chunk.length
      if (got >= payload.length) { cleanup(); resolve() }
    }
    const onEnd = (): void => { cleanup(); reject(new Error('echo stream closed')) }
    const cleanup = (): void => { socket.off('data', onData); socket.off('close', onEnd) }
    socket.on('data', onData)
    socket.on('close', onEnd)
    socket.write(payload)
  })
  return now() - started
}

async function measureEcho (socket: Socket, count: number, split = false): Promise<number[]> {
  const payload = Buffer.alloc(ECHO_BYTES, split ? 0x73 : 0x61)
  const samples: number[] = []
  for (let i = 0; i < count; i++) samples.push(await echoRoundTrip(socket, payload))
  return samples
}

// ---------------------------------------------------------------------------------
// Arrivals at bob

interface Arrivals {
  /** Resolves with the time bob's store.add resolved for this Message-ID. */
  wait (messageId: string, timeoutMs: number): Promise<number>
  /** Durations of bob's store.add calls, in order. */
  addDurations: number[]
}

function watchArrivals (bob: TestNode): Arrivals {
  const store = bob.node.store
  const original = store.add.bind(store)
  const arrived = new Map<string, number>()
  const waiters = new Map<string, (t: number) => void>()
  const addDurations: number[] = []
  store.add = async (message: NewMessage): Promise<AddResult> => {
    const started = now()
    const result = await original(message)
    const t = now()
    addDurations.push(t - started)
    if (message.folder === 'Inbox' && message.messageId !== undefined && !result.duplicate) {
      arrived.set(message.messageId, t)
      waiters.get(message.messageId)?.(t)
    }
    return result
  }
  return {
    addDurations,
    async wait (messageId, timeoutMs) {
      const t = arrived.get(messageId)
      if (t !== undefined) return t
      return await withTimeout(`message ${messageId} at bob`, new Promise<number>(resolve => { waiters.set(messageId, resolve) }), timeoutMs)
    }
  }
}

// ---------------------------------------------------------------------------------
// Submission to alice on an open connection

let sequence = 0

function message (alice: TestNode, bob: TestNode, label: string): { raw: Buffer, messageId: string } {
  const messageId = `bench-${process.pid}-${++sequence}-${label}@${alice.identity.domain}`
  const line = 'x'.repeat(74)
  const lines: string[] = []
  for (let size = 0; size < SIZE; size += line.length + 2) lines.push(line)
  const raw = Buffer.from([
    `From: alice <${alice.identity.address}>`,
    `To: <${bob.identity.address}>`,
    `Subject: bench ${label}`,
    `Date: ${rfc5322Date(new Date())}`,
    `Message-ID: <${messageId}>`,
    '',
    ...lines,
    ''
  ].join('\r\n'))
  return { raw, messageId }
}

async function openSubmission (alice: TestNode): Promise<SmtpConnection> {
  const socket = await SmtpConnection.dial('127.0.0.1', alice.node.submissionPort(), 5000)
  const connection = await SmtpConnection.open(socket, { ehloName: 'localhost', timeoutMs: 30_000 })
  await connection.authPlain(alice.name, alice.identity.submissionPassword)
  return connection
}

async function submit (connection: SmtpConnection, alice: TestNode, bob: TestNode, raw: Buffer): Promise<void> {
  const [result] = await connection.send({ from: alice.identity.address, to: [bob.identity.address], raw })
  if (result?.ok !== true) throw new Error(`alice's submission port refused a message: ${result?.reply}`)
}

async function queueEmpty (node: TestNode, timeoutMs: number): Promise<void> {
  const queue = node.node.queue
  if (queue.list().length === 0) return
  await withTimeout('alice\'s queue to empty', new Promise<void>(resolve => {
    const off = queue.onChange(() => { if (queue.list().length === 0) { off(); resolve() } })
  }), timeoutMs)
}

async function published (node: TestNode): Promise<void> {
  await node.node.tor.waitForBootstrap(90_000)
  await node.node.tor.waitForDescriptorUpload(node.identity.onionKey.address, 60_000)
}

// ---------------------------------------------------------------------------------

function ratio (value: number, reference: number): string {
  return `${(value / reference).toFixed(1)}x`
}

async function main (): Promise<void> {
  const runStarted = now()
  let network: PrivateTorNetwork | undefined
  let alice: TestNode | undefined
  let bob: TestNode | undefined
  let echo: Server | undefined
  let echoSocket: Socket | undefined
  let direct: Delivery | undefined
  const watchdog = setTimeout(() => {
    console.error(`benchmark took longer than ${args['timeout-s']} s; giving up`)
    process.exit(2) // the tor harness kills its tors on exit; node tors follow their owner
  }, Number(args['timeout-s']) * 1000)
  watchdog.unref()
  try {
    network = await sharedTorNetwork()
    ;[alice, bob] = await Promise.all([
      startTestNode('alice', testSettings(network)),
      startTestNode('bob', testSettings(network, { smtpIn: { maxMessagesPerPeerPerMinute: 1_000_000 } }))
    ])
    await Promise.all([published(alice), published(bob)])
    const echoKey = generateOnionKey()
    const started = await startEchoServer()
    echo = started.server
    await bob.node.tor.publishOnion({ expandedSecretKey: expandedSecretKey(echoKey.seed), virtualPort: 7, target: { host: '127.0.0.1', port: started.port } })
    await bob.node.tor.waitForDescriptorUpload(echoKey.address, 60_000)
    console.log(`setup: private network, alice and bob published, echo onion published: ${((now() - runStarted) / 1000).toFixed(1)} s`)
    console.log(`machine: 2 cores; everything (7 tors, both nodes, this script) on 127.0.0.1; message body ${SIZE} bytes`)
    console.log('')

    // --- raw Tor reference -------------------------------------------------------
    const socks = alice.node.tor.socksEndpoint()
    const echoConnectStarted = now()
    let echoAttempts = 0
    for (;;) {
      echoAttempts++
      try {
        echoSocket = await connectViaSocks({ proxyHost: socks.host, proxyPort: socks.port, host: `${echoKey.address}.onion`, port: 7, isolation: 'echo', timeoutMs: 30_000 })
        break
      } catch (err) {
        if (echoAttempts >= 5) throw err
        await new Promise(resolve => setTimeout(resolve, 500))
      }
    }
    echoSocket.setNoDelay(true)
    const echoConnect = now() - echoConnectStarted
    const echoFirstRtt = await echoRoundTrip(echoSocket, Buffer.alloc(ECHO_BYTES, 0x61))
    const echoFirst = echoConnect + echoFirstRtt
    const rttBefore = await measureEcho(echoSocket, RTTS)
    const rtt = median(rttBefore)
    console.log('raw Tor reference (echo onion on bob\'s tor, through alice\'s SOCKS port)')
    console.log(`  first connect + round trip: ${ms(echoFirst)} (connect ${ms(echoConnect)}${echoAttempts > 1 ? `, ${echoAttempts} attempts` : ''}, round trip ${ms(echoFirstRtt)})`)
    console.log(`  round trip on the open stream: median ${ms(rtt)}, p95 ${ms(quantile(rttBefore, 0.95))} over ${RTTS}`)
    const split = await measureEcho(echoSocket, RTTS, true)
    console.log(`  the same, answer written in 3 pieces (as smtp-server answers pipelined MAIL/RCPT/DATA): median ${ms(median(split))}, p95 ${ms(quantile(split, 0.95))}; ${over(split, rtt + 25)} took > 25 ms more than the median round trip (${over(rttBefore, rtt + 25)} of one-piece answers did)`)
    console.log('')

    const arrivals = watchArrivals(bob)
    const submitConnectStarted = now()
    const submitter = await openSubmission(alice)
    const submitConnect = now() - submitConnectStarted

    // --- (a) first message --------------------------------------------------------
    const openedBefore = alice.node.status().connections.opened
    const first = message(alice, bob, 'first')
    const firstStarted = now()
    await submit(submitter, alice, bob, first.raw)
    const firstAccepted = now() - firstStarted
    const firstLatency = (await arrivals.wait(first.messageId, 60_000)) - firstStarted
    await queueEmpty(alice, 30_000)
    console.log(`(a) first message alice -> bob (new circuit and SMTorP session): ${ms(firstLatency)}  = ${ratio(firstLatency, echoFirst)} the raw first connect + round trip`)
    console.log(`    of which the submission hop (submit to 250): ${ms(firstAccepted)}; opening a submission connection costs another ${ms(submitConnect)} (not counted)`)

    // --- (b) subsequent messages on the open connection ---------------------------
    const latencies: number[] = []
    const hops: number[] = []
    const afterAccept: number[] = []
    const addsBefore = arrivals.addDurations.length
    for (let i = 0; i < MESSAGES; i++) {
      const m = message(alice, bob, `seq${i}`)
      const t0 = now()
      await submit(submitter, alice, bob, m.raw)
      const t1 = now()
      const t2 = await arrivals.wait(m.messageId, 30_000)
      latencies.push(t2 - t0)
      hops.push(t1 - t0)
      afterAccept.push(t2 - t1)
      await queueEmpty(alice, 30_000)
    }
    const bobAdds = arrivals.addDurations.slice(addsBefore)
    const subsequent = median(latencies)
    console.log(`(b) subsequent message on the open connection: median ${ms(subsequent)}, p95 ${ms(quantile(latencies, 0.95))} over ${MESSAGES}  = ${ratio(subsequent, rtt)} the raw round trip (goal <= 1.5x)`)
    console.log(`    submission hop (submit to 250, store + queue fsyncs): median ${ms(median(hops))}; 250 to stored at bob: median ${ms(median(afterAccept))}; bob's store.add: median ${ms(median(bobAdds))}`)

    // --- (c) burst ----------------------------------------------------------------
    const burstSubmitters = [submitter, ...await Promise.all(Array.from({ length: BURST_CONNECTIONS - 1 }, async () => await openSubmission(alice!)))]
    const burst = Array.from({ length: BURST }, (_, i) => message(alice!, bob!, `burst${i}`))
    const openedBeforeBurst = alice.node.status().connections.opened
    const burstStarted = now()
    let submittedAt = 0
    const submitting = Promise.all(burstSubmitters.map(async (connection, c) => {
      for (let i = c; i < burst.length; i += BURST_CONNECTIONS) await submit(connection, alice!, bob!, burst[i]!.raw)
    })).then(() => { submittedAt = now() })
    const arrivedAll = await Promise.all(burst.map(async m => await arrivals.wait(m.messageId, 150_000)))
    await submitting
    const burstSeconds = (Math.max(...arrivedAll) - burstStarted) / 1000
    const burstRate = BURST / burstSeconds
    await queueEmpty(alice, 30_000)
    const status = alice.node.status().connections
    console.log(`(c) burst of ${BURST} to bob: ${burstRate.toFixed(1)} msg/s (${burstSeconds.toFixed(2)} s from first submission to last stored at bob; all submitted after ${((submittedAt - burstStarted) / 1000).toFixed(2)} s)`)
    const inOrder = [...arrivedAll].sort((a, b) => a - b)
    const gaps = inOrder.slice(1).map((t, i) => t - inOrder[i]!)
    console.log(`    gap between consecutive arrivals at bob: median ${ms(median(gaps))}, p95 ${ms(quantile(gaps, 0.95))}; ${over(gaps, 2 * rtt + 25)} of gaps > 2 round trips + 25 ms`)
    console.log(`    = ${(1000 / burstRate).toFixed(1)} ms per message = ${ratio(1000 / burstRate, rtt)} the raw round trip; connections alice opened to bob: ${status.opened - openedBefore} in total since (a), ${status.opened - openedBeforeBurst} during the burst, ${status.open} open`)
    for (const c of burstSubmitters) await c.quit()

    // --- the bare SMTP transaction ------------------------------------------------
    direct = delivery({ onionKey: alice.identity.onionKey, idleConnectionMs: 60_000 }, { logger: silentLogger(), socksEndpoint: () => alice!.node.tor.socksEndpoint() })
    const destination = parseAddress(bob.identity.address).domain
    const envelope = (raw: Buffer): { from: string, to: string[], raw: Buffer } => ({ from: alice!.identity.address, to: [bob!.identity.address], raw })
    const openStarted = now()
    const [opened] = await direct.deliver(destination, envelope(message(alice, bob, 'direct-open').raw))
    if (opened?.ok !== true) throw new Error(`direct delivery failed: ${opened?.reply}`)
    const directOpen = now() - openStarted
    const transactions: number[] = []
    for (let i = 0; i < MESSAGES; i++) {
      const t0 = now()
      const [r] = await direct.deliver(destination, envelope(message(alice, bob, `direct${i}`).raw))
      if (r?.ok !== true) throw new Error(`direct delivery failed: ${r?.reply}`)
      transactions.push(now() - t0)
    }
    const transaction = median(transactions)
    console.log(`bare SMTP transaction on an open connection (delivery.deliver, alice's key and SOCKS port): median ${ms(transaction)}, p95 ${ms(quantile(transactions, 0.95))}  = ${ratio(transaction, rtt)} the raw round trip (2 round trips + bob's fsync); ${over(transactions, 2 * rtt + 25)} took > 2 round trips + 25 ms`)
    console.log(`    new connection + SOCKS + greeting + EHLO + AUTH X-SMTORP-ONION + first transaction (circuit already up): ${ms(directOpen)}`)

    // --- the reference again --------------------------------------------------------
    const rttAfter = await measureEcho(echoSocket, RTTS)
    console.log(`raw round trip again after the mail phases: median ${ms(median(rttAfter))}, p95 ${ms(quantile(rttAfter, 0.95))}`)
    console.log(`total run time ${((now() - runStarted) / 1000).toFixed(1)} s`)
  } finally {
    echoSocket?.destroy()
    echo?.close()
    await direct?.stop()
    await Promise.allSettled([alice?.stop(), bob?.stop()])
    await Promise.allSettled([alice?.remove(), bob?.remove()])
    await network?.stop()
    clearTimeout(watchdog)
  }
}

await main()
