// The node's Tor service: one tor (our own child, or an existing one we attach to),
// reached over its ControlPort, carrying the node's onion services.
//
// Own mode: we write <dataDir>/tor/torrc, start tor in its own session and supervise it.
// tor picks its ports ("auto") and tells us the control port through
// ControlPortWriteToFile; we learn the SOCKS port with GETINFO net/listeners/socks and
// ask for the same port again after a restart, so socksEndpoint() normally stays put.
// tor dies with the node twice over: TAKEOWNERSHIP (tor exits as soon as our control
// connection closes) and __OwningControllerProcess (tor polls our pid).
// If tor dies, we restart it with backoff (bounded), reconnect and republish every onion.
//
// Attach mode: we use someone else's tor; if the control connection drops we reconnect
// with backoff (without limit: the tor is not ours to give up on) and republish.
//
// Onions are added with ADD_ONION without Flags=Detach, so they live exactly as long as
// our control connection (control-spec 3.27); a reconnect therefore always republishes.
import { mkdir, writeFile, readFile, rm, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import type { Logger } from '../log/index.ts'
import { TorControl, TorControlError, parseBootstrap, type Reply } from './control.ts'
import { spawnTor, stopProcess, killNow, isAlive } from './process.ts'

export type TorInit =
  | {
    mode: 'own'
    /** The node's data directory; tor's files go in <dataDir>/tor. */
    dataDir: string
    /** Path of the tor binary (default: `tor` from PATH). */
    torBinary?: string
    /** SOCKS port on 127.0.0.1; default 'auto' (tor picks a free one). */
    socksPort?: number | 'auto'
    /** Extra torrc lines, e.g. a private network's DirAuthority lines. */
    extraTorrc?: string[]
    /** Give up after this many restarts in a row that did not run 60 s (default 8). */
    maxRestarts?: number
  }
  | {
    mode: 'attach'
    controlHost: string
    controlPort: number
    /** Cookie file; default: the one tor names in PROTOCOLINFO. */
    cookieFile?: string
    password?: string
    socksHost: string
    socksPort: number
  }

export interface TorComponents {
  logger: Logger
}

export interface OnionServiceConfig {
  /** 64-byte expanded Ed25519 secret key (protocol/onion.ts expandedSecretKey). Secret: never logged. */
  expandedSecretKey: Buffer
  /** Port on the onion address (e.g. 25). */
  virtualPort: number
  /** Where tor forwards connections to (an IP address and port). */
  target: { host: string, port: number }
  /**
   * More ports on the same onion, each with its own target (e.g. the friends' libp2p port
   * beside SMTP's 25). One ADD_ONION carries them all as several Port= arguments.
   */
  extraPorts?: Array<{ virtualPort: number, target: { host: string, port: number } }>
}

/** The ports of an onion, the main one first. */
function portsOf (config: OnionServiceConfig): Array<{ virtualPort: number, target: { host: string, port: number } }> {
  return [{ virtualPort: config.virtualPort, target: config.target }, ...(config.extraPorts ?? [])]
}

/** Checks an onion's ports: in range, targets IP addresses, no virtual port twice. */
export function checkOnionPorts (config: OnionServiceConfig): void {
  const seen = new Set<number>()
  for (const { virtualPort, target } of portsOf(config)) {
    if (!Number.isInteger(virtualPort) || virtualPort < 1 || virtualPort > 65535) throw new TorServiceError('virtual port out of range')
    if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) throw new TorServiceError('target port out of range')
    if (!/^[0-9a-fA-F.:[\]]+$/.test(target.host)) throw new TorServiceError('target host must be an IP address')
    if (seen.has(virtualPort)) throw new TorServiceError(`virtual port ${virtualPort} is given twice`)
    seen.add(virtualPort)
  }
}

/**
 * The ADD_ONION command for an onion (control-spec 3.27): the key, then one
 * `Port=<virtual>,<host>:<port>` argument per port. Contains the secret key: never log it.
 */
export function addOnionCommand (config: OnionServiceConfig): string {
  const ports = portsOf(config).map(({ virtualPort, target }) => `Port=${virtualPort},${target.host}:${target.port}`)
  return `ADD_ONION ED25519-V3:${config.expandedSecretKey.toString('base64')} ${ports.join(' ')}`
}

export interface TorStatus {
  mode: 'own' | 'attach'
  /** tor is up and our control connection is open and set up. */
  running: boolean
  bootstrapPercent: number
  bootstrapSummary: string
  onions: { address: string, descriptorUploaded: boolean }[]
  /** Own mode: tor restarts after it died. Attach mode: control reconnections. */
  restarts: number
  /** Own mode: pid of the running tor. */
  pid?: number
  lastError?: string
}

export interface TorService {
  /** Own mode: start tor and connect; attach mode: connect. Does not wait for bootstrap. */
  start (): Promise<void>
  /** Remove our onions, close the control connection; own mode: stop tor (SIGTERM, SIGKILL after 3 s). */
  stop (): Promise<void>
  /** Where to send SOCKS5 connections. May change after an own-mode restart; ask each time. */
  socksEndpoint (): { host: string, port: number }
  /**
   * Publish an onion service (ADD_ONION ED25519-V3) and resolve with its 56-character
   * address (no ".onion"). Kept across tor restarts and control reconnections.
   * Publishing the same key again replaces the earlier mapping.
   */
  publishOnion (onion: OnionServiceConfig): Promise<string>
  /** Stop publishing an onion (DEL_ONION). */
  removeOnion (address: string): Promise<void>
  /**
   * Ask tor to fetch another onion's descriptor again (HSFETCH, control-spec 3.26), replacing
   * the cached one: after that onion's node restarted, its old introduction points are dead.
   */
  refreshDescriptor (address: string): Promise<void>
  status (): TorStatus
  waitForBootstrap (timeoutMs: number): Promise<void>
  /** Resolves once an HSDir accepted the onion's current descriptor (650 HS_DESC UPLOADED). */
  waitForDescriptorUpload (address: string, timeoutMs: number): Promise<void>
  /** Called on every status change; returns a function that unsubscribes. */
  onStatus (listener: (status: TorStatus) => void): () => void
}

export class TorServiceError extends Error {
  override name = 'TorServiceError'
}

export class TorTimeoutError extends TorServiceError {
  override name = 'TorTimeoutError'
}

interface Onion {
  config: OnionServiceConfig
  descriptorUploaded: boolean
}

// Options we set in own mode that extraTorrc must not change: they are how we reach tor.
const RESERVED_OPTIONS = new Set(['datadirectory', 'socksport', 'controlport', 'controlportwritetofile',
  'cookieauthentication', 'cookieauthfile', '__owningcontrollerprocess', 'hashedcontrolpassword', 'runasdaemon'])

const delay = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

export class TorServiceImpl implements TorService {
  readonly #init: TorInit
  readonly #log: Logger
  #control: TorControl | undefined
  #child: ChildProcess | undefined
  #childStartedAt = 0
  #started = false
  #stopping = false
  #launching = false
  #retryTimer: NodeJS.Timeout | undefined
  #failures = 0
  #socks: { host: string, port: number } | undefined
  #knownSocksPort: number | undefined
  #status: TorStatus
  readonly #onions = new Map<string, Onion>()
  /** Uploads reported before ADD_ONION's reply reached publishOnion (events and replies share one socket). */
  readonly #uploadedEarly = new Set<string>()
  readonly #listeners = new Set<(s: TorStatus) => void>()
  readonly #exitHook = (): void => { if (this.#child?.pid !== undefined) killNow(this.#child.pid) }

  constructor (init: TorInit, components: TorComponents) {
    this.#init = init
    this.#log = components.logger.child({ component: 'tor' })
    this.#status = { mode: init.mode, running: false, bootstrapPercent: 0, bootstrapSummary: 'Not started', onions: [], restarts: 0 }
    if (init.mode === 'attach') this.#socks = { host: init.socksHost, port: init.socksPort }
    if (init.mode === 'own') {
      for (const line of init.extraTorrc ?? []) {
        const key = line.trim().split(/\s+/, 1)[0]?.toLowerCase() ?? ''
        if (RESERVED_OPTIONS.has(key)) throw new TorServiceError(`extra torrc line may not set ${key}: the tor service manages it`)
        if (/[\r\n]/.test(line)) throw new TorServiceError('extra torrc lines must not contain line breaks')
      }
      if (typeof init.socksPort === 'number') this.#knownSocksPort = init.socksPort
    }
  }

  // --- status -------------------------------------------------------------------

  status (): TorStatus {
    const pid = this.#child?.pid
    return { ...this.#status, ...(pid !== undefined ? { pid } : {}), onions: [...this.#onions].map(([address, o]) => ({ address, descriptorUploaded: o.descriptorUploaded })) }
  }

  onStatus (listener: (s: TorStatus) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  #update (change: Partial<TorStatus>): void {
    Object.assign(this.#status, change)
    const snapshot = this.status()
    for (const listener of this.#listeners) {
      try {
        listener(snapshot)
      } catch (err) {
        this.#log.error({ err }, 'A tor status listener threw; ignoring it.')
      }
    }
  }

  async #waitFor (what: string, done: (s: TorStatus) => boolean, timeoutMs: number): Promise<void> {
    if (done(this.status())) return
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        unsubscribe()
        const s = this.status()
        reject(new TorTimeoutError(`timed out after ${timeoutMs} ms waiting for ${what} (bootstrap ${s.bootstrapPercent}% ${s.bootstrapSummary}${s.lastError !== undefined ? `; last error: ${s.lastError}` : ''})`))
      }, timeoutMs)
      const unsubscribe = this.onStatus((s) => {
        if (this.#stopping) {
          clearTimeout(timer); unsubscribe(); reject(new TorServiceError(`tor service stopped while waiting for ${what}`))
        } else if (done(s)) {
          clearTimeout(timer); unsubscribe(); resolve()
        }
      })
    })
  }

  async waitForBootstrap (timeoutMs: number): Promise<void> {
    await this.#waitFor('tor to bootstrap', (s) => s.running && s.bootstrapPercent === 100, timeoutMs)
  }

  async waitForDescriptorUpload (address: string, timeoutMs: number): Promise<void> {
    const label = address.toLowerCase().replace(/\.onion$/, '')
    await this.#waitFor(`the descriptor of ${label}.onion to be uploaded`,
      (s) => s.onions.some((o) => o.address === label && o.descriptorUploaded), timeoutMs)
  }

  socksEndpoint (): { host: string, port: number } {
    if (this.#socks === undefined) throw new TorServiceError('tor has no SOCKS port yet: start the tor service first')
    return { ...this.#socks }
  }

  // --- lifecycle ----------------------------------------------------------------

  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    this.#stopping = false
    try {
      if (this.#init.mode === 'own') {
        process.on('exit', this.#exitHook)
        await this.#launch()
      } else {
        await this.#connect()
      }
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  async stop (): Promise<void> {
    if (!this.#started) return
    this.#stopping = true
    this.#started = false
    clearTimeout(this.#retryTimer)
    const control = this.#control
    this.#control = undefined
    if (control !== undefined && !control.closed) {
      // In own mode tor goes away anyway; in attach mode the tor stays, so tidy up.
      if (this.#init.mode === 'attach') {
        await Promise.race([
          Promise.allSettled([...this.#onions.keys()].map(async (a) => await control.command(`DEL_ONION ${a}`))),
          delay(2000),
        ])
      }
      control.close()
    }
    const pid = this.#child?.pid
    if (pid !== undefined) await stopProcess(pid, 3000)
    this.#child = undefined
    process.off('exit', this.#exitHook)
    for (const onion of this.#onions.values()) onion.descriptorUploaded = false
    this.#update({ running: false, bootstrapSummary: 'Stopped' })
    this.#log.info('Tor service stopped.')
  }

  #torDir (): string {
    if (this.#init.mode !== 'own') throw new TorServiceError('no tor directory in attach mode')
    return join(this.#init.dataDir, 'tor')
  }

  async #writeTorrc (): Promise<string> {
    if (this.#init.mode !== 'own') throw new TorServiceError('no torrc in attach mode')
    const dir = this.#torDir()
    const dataDir = join(dir, 'data')
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    await chmod(dir, 0o700)
    await chmod(dataDir, 0o700)
    const extra = this.#init.extraTorrc ?? []
    const extraKeys = new Set(extra.map((l) => l.trim().split(/\s+/, 1)[0]?.toLowerCase()))
    const defaults = [
      'ShutdownWaitLength 0',
      `Log notice file ${join(dir, 'notice.log')}`,
    ].filter((l) => !extraKeys.has(l.split(' ', 1)[0]!.toLowerCase()))
    const lines = [
      '# Written by smtorp at every start of its tor; edits are lost. Use extraTorrc in the node config.',
      `DataDirectory ${dataDir}`,
      // ExtendedErrors: SOCKS replies say 0xF0 "onion descriptor not found" etc. instead of a general failure.
      `SocksPort 127.0.0.1:${this.#knownSocksPort ?? 'auto'} ExtendedErrors`,
      'ControlPort 127.0.0.1:auto',
      `ControlPortWriteToFile ${join(dir, 'control-port')}`,
      'CookieAuthentication 1',
      `CookieAuthFile ${join(dir, 'control_auth_cookie')}`,
      `__OwningControllerProcess ${process.pid}`,
      ...defaults,
      ...extra,
      '',
    ]
    const torrc = join(dir, 'torrc')
    await writeFile(torrc, lines.join('\n'), { mode: 0o600 })
    await writeFile(join(dir, 'torrc-defaults'), '', { mode: 0o600 })
    return torrc
  }

  /** Own mode: start tor, wait for its control port, connect. */
  async #launch (): Promise<void> {
    if (this.#init.mode !== 'own') return
    this.#launching = true
    try {
      const dir = this.#torDir()
      const torrc = await this.#writeTorrc()
      const portFile = join(dir, 'control-port')
      await rm(portFile, { force: true })
      // No await between this check and the spawn: a stop() that came first must not leave a tor behind.
      if (this.#stopping) throw new TorServiceError('tor service stopped during startup')
      const child = spawnTor({
        args: ['-f', torrc, '--defaults-torrc', join(dir, 'torrc-defaults')],
        outputFile: join(dir, 'tor.out'),
        ...(this.#init.torBinary !== undefined ? { torBinary: this.#init.torBinary } : {}),
      })
      let spawnError: Error | undefined
      child.on('error', (err) => { spawnError = err })
      child.on('exit', (code, signal) => { this.#onTorExit(child, code, signal) })
      this.#child = child
      this.#childStartedAt = Date.now()
      this.#update({ bootstrapPercent: 0, bootstrapSummary: 'Starting tor' })
      this.#log.info({ pid: child.pid }, 'Started tor.')

      const deadline = Date.now() + 30_000
      let controlPort = 0
      while (controlPort === 0) {
        if (child.pid === undefined || spawnError !== undefined) {
          // spawn reports a missing binary through an 'error' event on a later tick.
          await new Promise((resolve) => setImmediate(resolve))
          throw new TorServiceError(`cannot run tor: ${spawnError?.message ?? 'spawn failed'}`)
        }
        if (this.#child !== child || !isAlive(child.pid)) {
          throw new TorServiceError(`tor exited during startup: ${await this.#logTail()}`)
        }
        if (this.#stopping) throw new TorServiceError('tor service stopped during startup')
        if (Date.now() > deadline) throw new TorServiceError('tor did not open its control port within 30 s')
        try {
          controlPort = Number(/PORT=[^:\s]+:(\d+)/.exec(await readFile(portFile, 'utf8'))?.[1] ?? 0)
        } catch {}
        if (controlPort === 0) await delay(25)
      }
      await this.#connect('127.0.0.1', controlPort, join(dir, 'control_auth_cookie'))
    } finally {
      this.#launching = false
    }
  }

  /** The last warnings tor wrote (its log file, or stdout for errors before logging started). */
  async #logTail (): Promise<string> {
    let text = ''
    for (const file of ['tor.out', 'notice.log']) {
      try { text += await readFile(join(this.#torDir(), file), 'utf8') } catch {}
    }
    return text.trimEnd().split('\n').filter((l) => /\[(warn|err)\]/.test(l)).slice(-3).join(' | ') || '(no warnings in its log)'
  }

  #onTorExit (child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.#child) return
    this.#child = undefined
    if (this.#stopping) return
    const how = signal !== null ? `signal ${signal}` : `exit code ${code}`
    const ranMs = Date.now() - this.#childStartedAt
    // A tor that ran a while was healthy: start counting failures afresh.
    if (ranMs > 60_000) this.#failures = 0
    this.#log.warn({ how, ranMs }, 'Tor exited unexpectedly; restarting it.')
    this.#control?.close()
    this.#control = undefined
    for (const onion of this.#onions.values()) onion.descriptorUploaded = false
    this.#update({ running: false, bootstrapPercent: 0, bootstrapSummary: 'tor exited', lastError: `tor exited unexpectedly (${how})` })
    // If we are inside #launch, it notices the exit and fails; its caller schedules the retry.
    if (!this.#launching) this.#scheduleRecovery()
  }

  /** Restart (own mode) or reconnect (attach mode) after a backoff. */
  #scheduleRecovery (): void {
    if (this.#stopping || this.#retryTimer !== undefined) return
    this.#failures++
    const own = this.#init.mode === 'own'
    const max = this.#init.mode === 'own' ? (this.#init.maxRestarts ?? 8) : Infinity
    if (this.#failures > max) {
      const message = `gave up restarting tor after ${max} attempts in a row`
      this.#log.error(message)
      this.#update({ lastError: `${message}; last error: ${this.#status.lastError ?? 'unknown'}` })
      return
    }
    // 250 ms, 1 s, 2 s, 4 s ... at most 30 s.
    const backoff = this.#failures === 1 ? 250 : Math.min(30_000, 1000 * 2 ** (this.#failures - 2))
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      if (this.#stopping) return
      this.#update({ restarts: this.#status.restarts + 1 })
      const attempt = own ? this.#launch() : this.#connect()
      attempt.then(() => {
        if (!own) this.#failures = 0
        this.#log.info({ restarts: this.#status.restarts }, own ? 'Tor restarted and onions republished.' : 'Reconnected to tor and republished onions.')
      }, async (err: Error) => {
        if (this.#stopping) return
        this.#log.warn({ err: err.message }, own ? 'Restarting tor failed; will retry.' : 'Reconnecting to tor failed; will retry.')
        this.#update({ lastError: err.message })
        if (own) {
          // A port we asked for may be taken now; let tor choose on the next try.
          if (this.#init.mode === 'own' && typeof this.#init.socksPort !== 'number') this.#knownSocksPort = undefined
          const pid = this.#child?.pid
          this.#child = undefined
          if (pid !== undefined) await stopProcess(pid, 3000)
        }
        this.#scheduleRecovery()
      })
    }, backoff)
  }

  /** Open and set up the control connection, then republish every onion. */
  async #connect (host?: string, port?: number, cookieFile?: string): Promise<void> {
    const init = this.#init
    const own = init.mode === 'own'
    const control = own
      ? await TorControl.connect(host!, port!)
      : await TorControl.connect(init.controlHost, init.controlPort)
    try {
      if (own) {
        await control.authenticate({ cookieFile: cookieFile! })
        // control-spec 3.23: tor exits when this connection closes, so it never outlives us.
        await control.command('TAKEOWNERSHIP')
      } else {
        await control.authenticate({
          ...(init.cookieFile !== undefined ? { cookieFile: init.cookieFile } : {}),
          ...(init.password !== undefined ? { password: init.password } : {}),
        })
      }
      control.on('event', (reply) => { this.#onEvent(reply) })
      control.on('close', () => { this.#onControlClose(control) })
      await control.command('SETEVENTS STATUS_CLIENT HS_DESC')
      const info = await control.getInfo('status/bootstrap-phase', 'net/listeners/socks')
      const bootstrap = parseBootstrap(info.get('status/bootstrap-phase') ?? '')
      if (bootstrap !== undefined) this.#update({ bootstrapPercent: bootstrap.percent, bootstrapSummary: bootstrap.summary })
      if (own) {
        // e.g. "127.0.0.1:9050" (quoted); the first listener is ours.
        const listener = (info.get('net/listeners/socks') ?? '').split(' ')[0]?.replace(/"/g, '') ?? ''
        const m = /^(.*):(\d+)$/.exec(listener)
        if (m === null) throw new TorServiceError(`tor reports no SOCKS listener (${listener})`)
        this.#socks = { host: m[1]!, port: Number(m[2]) }
        this.#knownSocksPort = Number(m[2])
      }
      this.#control = control
      for (const [address, onion] of this.#onions) {
        onion.descriptorUploaded = false
        await this.#addOnion(control, onion.config, address)
      }
      if (this.#stopping) throw new TorServiceError('tor service stopped during startup')
      this.#update({ running: true })
      this.#log.info({ socks: this.#socks, bootstrapPercent: this.#status.bootstrapPercent }, 'Connected to tor control port.')
    } catch (err) {
      if (this.#control === control) this.#control = undefined
      control.close()
      throw err
    }
  }

  #onControlClose (control: TorControl): void {
    if (control !== this.#control) return
    this.#control = undefined
    if (this.#stopping) return
    for (const onion of this.#onions.values()) onion.descriptorUploaded = false
    this.#update({ running: false, lastError: 'tor control connection closed' })
    if (this.#init.mode === 'own') {
      // TAKEOWNERSHIP makes tor exit now; make sure, and let the exit handler restart it.
      const pid = this.#child?.pid
      this.#log.warn('Lost the control connection to our tor; restarting tor.')
      if (pid !== undefined) void stopProcess(pid, 3000)
    } else {
      this.#log.warn('Lost the control connection to tor; reconnecting.')
      this.#scheduleRecovery()
    }
  }

  #onEvent (reply: Reply): void {
    const text = reply.lines[0]?.text ?? ''
    if (text.startsWith('STATUS_CLIENT ')) {
      const b = parseBootstrap(text)
      if (b !== undefined && (b.percent !== this.#status.bootstrapPercent || b.summary !== this.#status.bootstrapSummary)) {
        if (b.percent === 100) this.#log.info('Tor has bootstrapped.')
        this.#update({ bootstrapPercent: b.percent, bootstrapSummary: b.summary })
      }
    } else if (text.startsWith('HS_DESC ')) {
      // control-spec 4.1.25: 650 HS_DESC Action HSAddress AuthType HsDir ...
      const [, action, address, , hsDir] = text.split(' ')
      const onion = address !== undefined ? this.#onions.get(address) : undefined
      if (onion === undefined) {
        if (action === 'UPLOADED' && address !== undefined) this.#uploadedEarly.add(address)
        return
      }
      if (action === 'UPLOADED' && !onion.descriptorUploaded) {
        onion.descriptorUploaded = true
        this.#log.info({ onion: address, hsDir }, 'Onion service descriptor uploaded.')
        this.#update({})
      } else if (action === 'FAILED') {
        this.#log.debug({ onion: address, hsDir, event: text.slice(0, 300) }, 'An onion service descriptor upload failed.')
      }
    }
  }

  // --- onions -------------------------------------------------------------------

  async #addOnion (control: TorControl, config: OnionServiceConfig, expected?: string): Promise<string> {
    const reply = await control.command(addOnionCommand(config))
    const address = reply.lines.map((l) => /^ServiceID=([a-z2-7]{56})$/.exec(l.text)?.[1]).find((a) => a !== undefined)
    if (address === undefined) throw new TorServiceError('tor accepted ADD_ONION but named no service id')
    if (expected !== undefined && address !== expected) throw new TorServiceError(`tor derived ${address} instead of ${expected} from the same key`)
    return address
  }

  async publishOnion (config: OnionServiceConfig): Promise<string> {
    if (config.expandedSecretKey.length !== 64) throw new TorServiceError('an expanded Ed25519 secret key has 64 bytes')
    checkOnionPorts(config)
    if (!this.#started) throw new TorServiceError('start the tor service before publishing onions')
    // Wait (bounded) for a control connection: tor may be restarting.
    await this.#waitFor('the tor control connection', (s) => s.running, 60_000)
    const control = this.#control
    if (control === undefined) throw new TorServiceError('tor control connection is not open')
    // The same key again: replace the old mapping (tor refuses a second ADD_ONION with 550 collision).
    for (const [address, onion] of this.#onions) {
      if (onion.config.expandedSecretKey.equals(config.expandedSecretKey)) {
        await control.command(`DEL_ONION ${address}`).catch((err: Error) => {
          this.#log.warn({ onion: address, err: err.message }, 'Removing the previous mapping of an onion failed; adding it anyway.')
        })
        this.#onions.delete(address)
      }
    }
    this.#uploadedEarly.clear()
    const address = await this.#addOnion(control, config)
    this.#onions.set(address, {
      config: {
        ...config,
        expandedSecretKey: Buffer.from(config.expandedSecretKey),
        target: { ...config.target },
        ...(config.extraPorts !== undefined ? { extraPorts: config.extraPorts.map((p) => ({ virtualPort: p.virtualPort, target: { ...p.target } })) } : {}),
      },
      descriptorUploaded: this.#uploadedEarly.delete(address),
    })
    this.#log.info({ onion: address, ports: portsOf(config) }, 'Published onion service.')
    this.#update({})
    return address
  }

  async refreshDescriptor (address: string): Promise<void> {
    const label = address.toLowerCase().replace(/\.onion$/, '')
    const control = this.#control
    if (control === undefined || !/^[a-z2-7]{56}$/.test(label)) return
    try {
      await control.command(`HSFETCH ${label}`)
    } catch (err) {
      if (!(err instanceof TorControlError)) throw err
      this.#log.debug({ err: err.message }, 'tor did not refetch an onion descriptor.')
    }
  }

  async removeOnion (address: string): Promise<void> {
    const label = address.toLowerCase().replace(/\.onion$/, '')
    if (!this.#onions.delete(label)) return
    this.#update({})
    const control = this.#control
    if (control === undefined) return
    try {
      await control.command(`DEL_ONION ${label}`)
    } catch (err) {
      if (!(err instanceof TorControlError)) throw err
      this.#log.warn({ onion: label, err: err.message }, 'tor did not remove the onion service; it goes away with the control connection.')
    }
  }
}
