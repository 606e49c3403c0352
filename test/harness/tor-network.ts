// A private Tor network on 127.0.0.1 for tests, benchmarks and the demo.
//
// Shape and options follow shared/notes/private-tor-network.md (measured on these
// machines): 5 directory authorities that are also the only relays, guards and HSDirs
// (plain relays made clients fetch from caches that 404 for 10-30 s; fewer than 5
// authorities did not carry onion services reliably), voting every 10 s, and clients
// started only once a consensus lists all 5 relays without mixing zero and non-zero
// bandwidths (a mixed first consensus left clients at "Bootstrapped 95%" for ~16 s).
//
// Authority keys (RSA-3072 identity via tor-gencert, 5-10 s for five) and relay keys
// are cached in node_modules/.cache/smtorp-tor-keys; certificates last 24 months.
//
// Every tor runs in its own session and its pid is recorded in
// $TMPDIR/smtorp-tor-pids/<owner pid>.json; a later start kills what a crashed run left.
import { mkdir, mkdtemp, readFile, rename, rm, writeFile, cp, chmod, unlink } from 'node:fs/promises'
import { existsSync, readdirSync, readFileSync, writeFileSync, unlinkSync, mkdirSync } from 'node:fs'
import { createServer } from 'node:net'
import { execFile } from 'node:child_process'
import { get as httpGet } from 'node:http'
import { tmpdir } from 'node:os'
import { join, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { spawnTor, stopProcess, killNow, isAlive, commandLine } from '../../node/tor/process.ts'
import { TorControl, parseBootstrap } from '../../node/tor/control.ts'

const execFileAsync = promisify(execFile)

export const AUTHORITY_COUNT = 5
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const KEY_CACHE = process.env.SMTORP_TOR_KEY_CACHE ?? join(REPO_ROOT, 'node_modules/.cache/smtorp-tor-keys')
const PID_DIR = join(tmpdir(), 'smtorp-tor-pids')
const TOR = process.env.SMTORP_TOR_BINARY ?? 'tor'
const TOR_GENCERT = process.env.SMTORP_TOR_GENCERT ?? 'tor-gencert'

export interface TorClient {
  name: string
  socksPort: number
  controlPort: number
  cookieFile: string
  dataDir: string
  pid: number
  stop (): Promise<void>
}

export interface PrivateTorNetwork {
  /**
   * torrc lines a client tor needs to join this network (DirAuthority lines,
   * TestingTorNetwork 1, PathsNeededToBuildCircuits, LearnCircuitBuildTimeout 0,
   * ClientUseIPv6 0, VanguardsLiteEnabled 0, empty GeoIP files, ShutdownWaitLength 0).
   */
  clientTorrc: string[]
  /** Directory holding this network's data, logs and the JSON description. */
  dir: string
  /**
   * Start an extra client tor (SocksPort with ExtendedErrors, ControlPort with cookie
   * auth, ports chosen by tor) on this network; resolves once it has bootstrapped.
   */
  startClient (name: string, opts?: { bootstrapTimeoutMs?: number }): Promise<TorClient>
  /** Stop the clients this process started and, if this process started the network, the network. */
  stop (): Promise<void>
}

export interface PrivateTorNetworkInit {
  /** First of 10 consecutive ports (ORPort, DirPort per authority). Default: a free block in 19000-28999. */
  basePort?: number
  /** Where data and logs go; default $TMPDIR/smtorp-tor-net-<basePort>. Emptied at start. */
  dir?: string
  /** Give up waiting for a usable consensus after this long (default 90 s). */
  readyTimeoutMs?: number
}

/** What `scripts/tor-network.ts start` writes, for SMTORP_TOR_NETWORK. */
export interface NetworkDescription {
  version: 1
  ownerPid: number
  basePort: number
  dir: string
  clientTorrc: string[]
  authorities: { nickname: string, orPort: number, dirPort: number, fingerprint: string, v3ident: string, pid: number }[]
}

// ---------------------------------------------------------------------------------
// Process tracking

const tracked = new Map<number, string>() // pid -> marker (a path in its command line)
let exitHooked = false

function pidFile (): string { return join(PID_DIR, `${process.pid}.json`) }

function writePidFile (): void {
  mkdirSync(PID_DIR, { recursive: true })
  const entries = [...tracked].map(([pid, marker]) => ({ pid, marker }))
  if (entries.length === 0) {
    try { unlinkSync(pidFile()) } catch {}
    return
  }
  writeFileSync(pidFile(), JSON.stringify({ owner: process.pid, pids: entries }))
}

function track (pid: number, marker: string): void {
  tracked.set(pid, marker)
  writePidFile()
  hookExit()
}

function untrack (pid: number): void {
  tracked.delete(pid)
  writePidFile()
}

function hookExit (): void {
  if (exitHooked) return
  exitHooked = true
  // Last resort: whatever is still tracked dies with us. SIGKILL because we cannot wait.
  process.on('exit', () => {
    for (const pid of tracked.keys()) killNow(pid)
    try { unlinkSync(pidFile()) } catch {}
  })
  // Only take over signals nobody else handles (the CLI handles its own, to tear down politely).
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    if (process.listenerCount(sig) > 0) continue
    process.once(sig, () => {
      void Promise.all([...tracked.keys()].map(async (pid) => { await stopProcess(pid) }))
        .finally(() => process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1)))
    })
  }
}

/** Kill tor processes recorded by runs whose owner process is gone. */
export async function reapLeftovers (): Promise<number> {
  let killed = 0
  let files: string[]
  try { files = readdirSync(PID_DIR) } catch { return 0 }
  for (const f of files) {
    const owner = Number(f.replace(/\.json$/, ''))
    if (!Number.isInteger(owner) || owner === process.pid || isAlive(owner)) continue
    try {
      const { pids } = JSON.parse(readFileSync(join(PID_DIR, f), 'utf8')) as { pids: { pid: number, marker: string }[] }
      for (const { pid, marker } of pids) {
        // Only kill it if the pid still is our tor (pids get reused).
        if (isAlive(pid) && (commandLine(pid)?.includes(marker) ?? false)) {
          await stopProcess(pid)
          killed++
        }
      }
    } catch {}
    try { unlinkSync(join(PID_DIR, f)) } catch {}
  }
  return killed
}

// ---------------------------------------------------------------------------------
// Keys

interface AuthorityKeys { nickname: string, fingerprint: string, v3ident: string, keysDir: string }

async function emptyFile (dir: string): Promise<string> {
  const path = join(dir, 'empty')
  if (!existsSync(path)) await writeFile(path, '')
  return path
}

async function generateAuthorityKeys (dir: string, nickname: string): Promise<void> {
  const keys = join(dir, 'keys')
  await mkdir(keys, { recursive: true, mode: 0o700 })
  await new Promise<void>((resolvePromise, reject) => {
    // -m 24: the certificate lasts 24 months, so a cached set stays usable.
    const child = execFile(TOR_GENCERT, ['--create-identity-key', '--passphrase-fd', '0', '-m', '24',
      '-i', join(keys, 'authority_identity_key'), '-s', join(keys, 'authority_signing_key'),
      '-c', join(keys, 'authority_certificate')], (err) => { err ? reject(err) : resolvePromise() })
    child.stdin?.end('\n')
  })
  // Relay keys; `-f /dev/null` fails, an empty regular file works.
  await execFileAsync(TOR, ['--list-fingerprint', '--DataDirectory', dir, '--ORPort', '1', '--Nickname', nickname,
    '-f', await emptyFile(dir), '--defaults-torrc', await emptyFile(dir), '--Log', 'err stderr'])
}

async function readKeys (dir: string, nickname: string): Promise<AuthorityKeys> {
  const fingerprint = (await readFile(join(dir, 'fingerprint'), 'utf8')).trim().split(/\s+/)[1]
  const cert = await readFile(join(dir, 'keys', 'authority_certificate'), 'utf8')
  const v3ident = /^fingerprint ([0-9A-F]{40})$/m.exec(cert)?.[1]
  const expires = /^dir-key-expires (.+)$/m.exec(cert)?.[1]
  if (fingerprint === undefined || v3ident === undefined || expires === undefined) throw new Error(`unreadable cached keys in ${dir}`)
  // Regenerate keys that expire within a week.
  if (Date.parse(expires.replace(' ', 'T') + 'Z') < Date.now() + 7 * 86400_000) throw new Error('cached authority certificate expires soon')
  return { nickname, fingerprint, v3ident, keysDir: join(dir, 'keys') }
}

/** Authority and relay keys, generated once and cached. */
export async function authorityKeys (): Promise<AuthorityKeys[]> {
  const nicknames = Array.from({ length: AUTHORITY_COUNT }, (_, i) => `auth${i}`)
  try {
    return await Promise.all(nicknames.map(async (n) => await readKeys(join(KEY_CACHE, n), n)))
  } catch {}
  await mkdir(dirname(KEY_CACHE), { recursive: true })
  const tmp = await mkdtemp(KEY_CACHE + '.tmp-')
  await Promise.all(nicknames.map(async (n) => { await generateAuthorityKeys(join(tmp, n), n) }))
  await rm(KEY_CACHE, { recursive: true, force: true })
  try {
    await rename(tmp, KEY_CACHE)
  } catch {
    // Another run won the race; use its keys.
    await rm(tmp, { recursive: true, force: true })
  }
  return await Promise.all(nicknames.map(async (n) => await readKeys(join(KEY_CACHE, n), n)))
}

// ---------------------------------------------------------------------------------
// Ports

async function portFree (port: number): Promise<boolean> {
  return await new Promise((resolvePromise) => {
    const server = createServer()
    server.once('error', () => { resolvePromise(false) })
    server.listen(port, '127.0.0.1', () => { server.close(() => { resolvePromise(true) }) })
  })
}

async function blockFree (base: number, count: number): Promise<boolean> {
  for (let p = base; p < base + count; p++) if (!await portFree(p)) return false
  return true
}

async function chooseBasePort (): Promise<number> {
  const fromEnv = process.env.SMTORP_TOR_BASE_PORT
  if (fromEnv !== undefined) return Number(fromEnv)
  // Blocks of 20 in 19000-28999, tried in random order, so concurrent runs rarely meet.
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 19000 + 20 * Math.floor(Math.random() * 500)
    if (await blockFree(base, 2 * AUTHORITY_COUNT)) return base
  }
  throw new Error('no free block of ports for a private tor network in 19000-28999')
}

// ---------------------------------------------------------------------------------
// Consensus

async function httpText (url: string, timeoutMs = 2000): Promise<{ status: number, body: string }> {
  return await new Promise((resolvePromise, reject) => {
    const req = httpGet(url, { timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => { resolvePromise({ status: res.statusCode ?? 0, body }) })
      res.on('error', reject)
    })
    req.on('timeout', () => { req.destroy(new Error('timeout')) })
    req.on('error', reject)
  })
}

/** Why a consensus is not yet good enough for clients, or undefined when it is. */
export function consensusProblem (consensus: string, relays: number): string | undefined {
  const routers = consensus.split('\n').filter((l) => l.startsWith('r '))
  if (routers.length < relays) return `consensus lists ${routers.length} of ${relays} relays`
  const running = consensus.split('\n').filter((l) => l.startsWith('s ') && l.includes(' Running'))
  if (running.length < relays) return `consensus marks ${running.length} of ${relays} relays Running`
  const bandwidths = consensus.split('\n').filter((l) => l.startsWith('w ')).map((l) => Number(/Bandwidth=(\d+)/.exec(l)?.[1] ?? 0))
  const zero = bandwidths.filter((b) => b === 0).length
  if (zero > 0 && zero < bandwidths.length) return 'consensus mixes zero and non-zero bandwidths'
  return undefined
}

// ---------------------------------------------------------------------------------
// Network

function dirAuthorityLines (keys: AuthorityKeys[], basePort: number): string[] {
  return keys.map((k, i) => `DirAuthority ${k.nickname} orport=${basePort + 2 * i} v3ident=${k.v3ident} 127.0.0.1:${basePort + 2 * i + 1} ${k.fingerprint}`)
}

function commonTorrc (dirAuthorities: string[], geoip: string): string[] {
  return [
    'TestingTorNetwork 1',
    ...dirAuthorities,
    'PathsNeededToBuildCircuits 0.67',
    'LearnCircuitBuildTimeout 0',
    'ClientUseIPv6 0',
    // Vanguards-lite pins second hops; with 5 relays it only narrows paths further.
    'VanguardsLiteEnabled 0',
    // An empty GeoIP file saves ~1.5 s and ~30 MB per tor.
    `GeoIPFile ${geoip}`,
    `GeoIPv6File ${geoip}`,
    'ShutdownWaitLength 0',
  ]
}

function authorityTorrc (k: AuthorityKeys, i: number, basePort: number, dataDir: string, common: string[]): string {
  return [
    `DataDirectory ${dataDir}`,
    `Nickname ${k.nickname}`,
    'Address 127.0.0.1',
    `ORPort 127.0.0.1:${basePort + 2 * i}`,
    `DirPort 127.0.0.1:${basePort + 2 * i + 1}`,
    'SocksPort 0',
    `__OwningControllerProcess ${process.pid}`,
    `Log notice file ${join(dataDir, 'notice.log')}`,
    ...common,
    'AuthoritativeDirectory 1',
    'V3AuthoritativeDirectory 1',
    'AssumeReachable 1',
    'ExitRelay 0',
    'ExitPolicy reject *:*',
    'ContactInfo smtorp test network',
    // 10 s is the smallest voting interval tor accepts.
    'V3AuthVotingInterval 10',
    'V3AuthVoteDelay 2',
    'V3AuthDistDelay 2',
    'TestingV3AuthInitialVotingInterval 10',
    'TestingV3AuthInitialVoteDelay 2',
    'TestingV3AuthInitialDistDelay 2',
    'V3AuthNIntervalsValid 2',
    'TestingDirAuthVoteGuard *',
    'TestingDirAuthVoteHSDir *',
    // Without it every authority diffs against every old consensus and CPU climbs
    // from 0.1 to 0.4 core within minutes.
    'MaxConsensusAgeForDiffs 30 seconds',
    '',
  ].join('\n')
}

/** The end of a tor's log, with what it printed before its log file was set up. */
async function logTail (file: string, lines = 15): Promise<string> {
  let text = ''
  for (const f of [join(dirname(file), 'tor.out'), file]) {
    try { text += await readFile(f, 'utf8') } catch {}
  }
  return text.trimEnd().split('\n').slice(-lines).join('\n') || '(no log)'
}

const delay = async (ms: number): Promise<void> => { await new Promise((resolvePromise) => setTimeout(resolvePromise, ms)) }

/** Start a client tor on a network described by `clientTorrc`, under `parentDir`. */
async function startClientIn (parentDir: string, clientTorrc: string[], name: string, bootstrapTimeoutMs: number): Promise<TorClient> {
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error('client name must be alphanumeric')
  const dataDir = join(parentDir, 'clients', `${name}-${process.pid}-${Date.now().toString(36)}`)
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  await chmod(dataDir, 0o700)
  const cookieFile = join(dataDir, 'control_auth_cookie')
  const portFile = join(dataDir, 'control-port')
  const torrc = join(dataDir, 'torrc')
  await writeFile(torrc, [
    `DataDirectory ${dataDir}`,
    // Ports chosen by tor: no race with other runs over a port we picked.
    'SocksPort 127.0.0.1:auto ExtendedErrors',
    'ControlPort 127.0.0.1:auto',
    `ControlPortWriteToFile ${portFile}`,
    'CookieAuthentication 1',
    `CookieAuthFile ${cookieFile}`,
    `__OwningControllerProcess ${process.pid}`,
    `Log notice file ${join(dataDir, 'notice.log')}`,
    ...clientTorrc,
    '',
  ].join('\n'))
  const child = spawnTor({ torBinary: TOR, args: ['-f', torrc, '--defaults-torrc', await emptyFile(dataDir)], outputFile: join(dataDir, 'tor.out') })
  const pid = child.pid
  if (pid === undefined) throw new Error(`cannot start tor for client ${name}`)
  track(pid, torrc)
  const stop = async (): Promise<void> => { await stopProcess(pid); untrack(pid) }
  try {
    const deadline = Date.now() + bootstrapTimeoutMs
    let controlPort = 0
    while (controlPort === 0) {
      if (!isAlive(pid)) throw new Error(`client tor ${name} exited:\n${await logTail(join(dataDir, 'notice.log'))}`)
      if (Date.now() > deadline) throw new Error(`client tor ${name} did not open its control port`)
      try {
        controlPort = Number(/PORT=[^:\s]+:(\d+)/.exec(await readFile(portFile, 'utf8'))?.[1] ?? 0)
      } catch {}
      if (controlPort === 0) await delay(50)
    }
    const control = await TorControl.connect('127.0.0.1', controlPort)
    try {
      await control.authenticate({ cookieFile })
      const socks = (await control.getInfo('net/listeners/socks')).get('net/listeners/socks') ?? ''
      const socksPort = Number(/:(\d+)"?\s*$/.exec(socks.split(' ')[0] ?? '')?.[1] ?? 0)
      if (socksPort === 0) throw new Error(`client tor ${name} reports no SOCKS listener (${socks})`)
      for (;;) {
        const phase = (await control.getInfo('status/bootstrap-phase')).get('status/bootstrap-phase') ?? ''
        if (parseBootstrap(phase)?.percent === 100) break
        if (Date.now() > deadline) throw new Error(`client tor ${name} did not bootstrap in ${bootstrapTimeoutMs} ms (${phase}):\n${await logTail(join(dataDir, 'notice.log'))}`)
        await delay(100)
      }
      return { name, socksPort, controlPort, cookieFile, dataDir, pid, stop }
    } finally {
      control.close()
    }
  } catch (err) {
    await stop()
    throw err
  }
}

function clientApi (dir: string, clientTorrc: string[], stopNetwork: () => Promise<void>): PrivateTorNetwork {
  const clients = new Set<TorClient>()
  return {
    clientTorrc,
    dir,
    async startClient (name, opts) {
      const client = await startClientIn(dir, clientTorrc, name, opts?.bootstrapTimeoutMs ?? 60_000)
      const stop = client.stop
      const wrapped = { ...client, stop: async () => { clients.delete(wrapped); await stop() } }
      clients.add(wrapped)
      return wrapped
    },
    async stop () {
      await Promise.all([...clients].map(async (c) => { await c.stop() }))
      await stopNetwork()
    },
  }
}

/** Start 5 authorities and wait until their consensus is usable by clients. */
export async function startPrivateTorNetwork (init: PrivateTorNetworkInit = {}): Promise<PrivateTorNetwork & { description: NetworkDescription }> {
  await reapLeftovers()
  const keys = await authorityKeys()
  const basePort = init.basePort ?? await chooseBasePort()
  if (!await blockFree(basePort, 2 * AUTHORITY_COUNT)) throw new Error(`ports ${basePort}-${basePort + 2 * AUTHORITY_COUNT - 1} are not all free`)
  const dir = init.dir ?? join(tmpdir(), `smtorp-tor-net-${basePort}`)
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const geoip = await emptyFile(dir)
  const common = commonTorrc(dirAuthorityLines(keys, basePort), geoip)
  const clientTorrc = common

  // The first consensus is due ~11 s after start (offsets under 8 s often missed the
  // first round); without the offset it waits for the next multiple of the interval.
  const nowS = Math.ceil(Date.now() / 1000)
  const startOffset = (nowS + 11) % 10

  const pids: number[] = []
  const stopAll = async (): Promise<void> => {
    await Promise.all(pids.map(async (pid) => { await stopProcess(pid); untrack(pid) }))
  }
  try {
    await Promise.all(keys.map(async (k, i) => {
      const dataDir = join(dir, k.nickname)
      await mkdir(dataDir, { recursive: true, mode: 0o700 })
      await cp(k.keysDir, join(dataDir, 'keys'), { recursive: true })
      await chmod(join(dataDir, 'keys'), 0o700)
      await cp(join(dirname(k.keysDir), 'fingerprint'), join(dataDir, 'fingerprint'))
      const torrc = join(dataDir, 'torrc')
      await writeFile(torrc, authorityTorrc(k, i, basePort, dataDir, common))
      const child = spawnTor({
        torBinary: TOR,
        args: ['-f', torrc, '--defaults-torrc', geoip, '--TestingV3AuthVotingStartOffset', `${startOffset} seconds`],
        outputFile: join(dataDir, 'tor.out'),
      })
      if (child.pid === undefined) throw new Error(`cannot start tor for ${k.nickname}`)
      pids[i] = child.pid
      track(child.pid, torrc)
    }))

    const started = Date.now()
    const history: string[] = []
    const deadline = started + (init.readyTimeoutMs ?? 90_000)
    let problem = 'no consensus yet'
    let mixedSince: number | undefined
    for (;;) {
      const dead = keys.filter((_, i) => !isAlive(pids[i]!))
      if (dead.length > 0) {
        throw new Error(`authority ${dead[0]!.nickname} exited:\n${await logTail(join(dir, dead[0]!.nickname, 'notice.log'))}`)
      }
      // Clients may ask any authority, so every one must serve a good consensus.
      const problems = await Promise.all(keys.map(async (k, i) => {
        try {
          const res = await httpText(`http://127.0.0.1:${basePort + 2 * i + 1}/tor/status-vote/current/consensus`)
          if (res.status !== 200) return `${k.nickname}: HTTP ${res.status}`
          const p = consensusProblem(res.body, AUTHORITY_COUNT)
          return p === undefined ? undefined : `${k.nickname}: ${p}`
        } catch (err) {
          return `${k.nickname}: ${(err as Error).message}`
        }
      }))
      const first = problems.find((p) => p !== undefined)
      if (first !== problem) {
        history.push(`+${((Date.now() - started) / 1000).toFixed(1)}s ${first ?? 'ready'}`)
        if (process.env.SMTORP_TOR_DEBUG !== undefined) process.stderr.write(`tor network ${history[history.length - 1]}\n`)
      }
      if (first === undefined) {
        // Usually ready in 11-13 s. Twice in ~40 starts it took ~73 s for a reason not yet
        // found; say what we waited for, so the next occurrence explains itself.
        // todo: find the cause (a relay republishing its descriptor after 60 s?) and nudge it.
        // V3BandwidthsFile does not help: tor ignores measured bandwidths of authorities
        // ("MeasuredButAuthority" in votes), and here every relay is an authority.
        if (Date.now() - started > 30_000) process.stderr.write(`private tor network was slow to get a usable consensus: ${history.join('; ')}\n`)
        break
      }
      problem = first
      // A mixed consensus costs clients ~16 s at "Bootstrapped 95%"; waiting for the relays
      // to republish can cost ~60 s. After 20 s of nothing else wrong, take the lesser evil.
      if (problems.every((p) => p?.endsWith('mixes zero and non-zero bandwidths') === true)) {
        mixedSince ??= Date.now()
        if (Date.now() - mixedSince > 20_000) {
          process.stderr.write(`private tor network: accepting a consensus with mixed bandwidths after 20 s (${history.join('; ')}); clients may bootstrap slowly\n`)
          break
        }
      } else {
        mixedSince = undefined
      }
      if (Date.now() > deadline) {
        throw new Error(`private tor network not ready (${history.join('; ')}):\n${await logTail(join(dir, 'auth0', 'notice.log'))}`)
      }
      await delay(250)
    }
  } catch (err) {
    await stopAll()
    throw err
  }

  const description: NetworkDescription = {
    version: 1,
    ownerPid: process.pid,
    basePort,
    dir,
    clientTorrc,
    authorities: keys.map((k, i) => ({
      nickname: k.nickname, orPort: basePort + 2 * i, dirPort: basePort + 2 * i + 1, fingerprint: k.fingerprint, v3ident: k.v3ident, pid: pids[i]!,
    })),
  }
  let stopped = false
  const network = clientApi(dir, clientTorrc, async () => {
    if (stopped) return
    stopped = true
    await stopAll()
    if (process.env.SMTORP_KEEP_TOR_DIR === undefined) await rm(dir, { recursive: true, force: true })
  })
  return { ...network, description }
}

/** Attach to a network another process started (see scripts/tor-network.ts). */
export async function connectToTorNetwork (descriptionFile: string): Promise<PrivateTorNetwork> {
  const d = JSON.parse(await readFile(descriptionFile, 'utf8')) as NetworkDescription
  if (d.version !== 1) throw new Error(`unknown tor network description version in ${descriptionFile}`)
  if (!isAlive(d.ownerPid)) throw new Error(`the tor network described in ${descriptionFile} is gone (owner ${d.ownerPid} exited)`)
  // stop() only stops our own clients; the network belongs to its starter.
  return clientApi(d.dir, d.clientTorrc, async () => {})
}

let shared: Promise<PrivateTorNetwork> | undefined

/**
 * One network for all test files of a run: if SMTORP_TOR_NETWORK names a description
 * file written by a running network, use that; otherwise start one in this process
 * (stopped at exit at the latest).
 */
export async function sharedTorNetwork (): Promise<PrivateTorNetwork> {
  shared ??= (async () => {
    const file = process.env.SMTORP_TOR_NETWORK
    if (file !== undefined && file !== '') return await connectToTorNetwork(file)
    return await startPrivateTorNetwork()
  })()
  try {
    return await shared
  } catch (err) {
    shared = undefined
    throw err
  }
}

/** Pids of the tor processes this process has started and not yet stopped. */
export function trackedTorPids (): number[] {
  return [...tracked.keys()]
}

// Exported for the CLI.
export async function writeDescription (file: string, d: NetworkDescription): Promise<void> {
  await writeFile(file + '.tmp', JSON.stringify(d, null, 2))
  await rename(file + '.tmp', file)
}

export async function removeDescription (file: string): Promise<void> {
  try { await unlink(file) } catch {}
}

/**
 * Open a TCP connection to `host:port` through a tor SOCKS port, retrying failures for
 * up to `retryMs`: for 2-3 s after publication an onion answers 0xF0 (descriptor not
 * found), and after a service restart a client may first try stale introduction points.
 */
export async function connectThroughTor (socksPort: number, host: string, port: number, retryMs = 30_000): Promise<{ socket: import('node:net').Socket, attempts: number, ms: number }> {
  const { SocksClient } = await import('socks')
  const started = Date.now()
  let attempts = 0
  for (;;) {
    attempts++
    try {
      const { socket } = await SocksClient.createConnection({
        proxy: { host: '127.0.0.1', port: socksPort, type: 5 },
        command: 'connect',
        destination: { host, port },
        timeout: 20_000,
      })
      return { socket, attempts, ms: Date.now() - started }
    } catch (err) {
      if (Date.now() - started > retryMs) throw new Error(`no connection to ${host}:${port} through tor after ${attempts} attempts: ${(err as Error).message}`)
      await delay(500)
    }
  }
}
