// The node's configuration: one typed schema with defaults and validation that says what
// is wrong in words. It lives in <dataDir>/config.yaml (written, commented, by `smtorp init`)
// and flows down to the services through their `init` objects, never through a global.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parse } from 'yaml'
import { DEFAULT_RETRY_POLICY } from '../../protocol/retry-schedule.ts'
import { parseAddress } from '../../protocol/address.ts'

export type TorConfig =
  | { mode: 'own', torBinary: string, socksPort: number | 'auto', extraTorrc: string[] }
  | { mode: 'attach', controlHost: string, controlPort: number, cookieFile?: string, password?: string, socksHost: string, socksPort: number }

export interface RelayConfig {
  host: string
  port: number
  /** Refuse to send unless the relay offers STARTTLS (default true). */
  requireTls: boolean
  /** Verify the relay's certificate (default true; turn off only for a relay you run yourself). */
  verifyCertificate: boolean
  username?: string
  password?: string
  /** Reach the relay through Tor's SOCKS port instead of directly (default false). */
  viaTor: boolean
}

/** Encrypted, incremental backup into a folder of the owner's IMAP account (spec/backup.md). */
export interface ImapBackupConfig {
  host: string
  /** Default 993. */
  port: number
  /** "tls": TLS from the first byte (default); "starttls": plain then STARTTLS, required;
   * "plain": no TLS at all (only for a server on loopback, e.g. tests). */
  security: 'tls' | 'starttls' | 'plain'
  user: string
  password: string
  /** Default "smtorp-backup". */
  folder: string
  /** A backup runs this often (default 60; 0: only after new mail and "smtorp backup"). */
  everyMinutes: number
  /** A backup runs this long after new mail arrives (default 300; 0: not after new mail). */
  afterNewMailSeconds: number
  /** Reach the account through Tor's SOCKS port (default true). */
  viaTor: boolean
}

export interface NodeConfig {
  dataDir: string
  /** The owner's local part: mail address is <user>@<onion>.onion. */
  user: string
  tor: TorConfig
  smtpIn: {
    /** Where the onion service's port 25 is forwarded to; always loopback. 0 picks a free port. */
    port: number
    maxMessageBytes: number
    maxMessagesPerPeerPerMinute: number
    maxConnections: number
  }
  submission: {
    /** Listen address: 127.0.0.1 by default. Only a container, whose port is published on
     * the host's loopback, has reason to set 0.0.0.0. */
    host: string
    port: number
    /** Require SMTP AUTH on the submission port (default true). Only benchmarks turn it off. */
    requireAuth: boolean
  }
  relay?: RelayConfig
  ui: {
    /** The web UI: on 127.0.0.1 unless allowNonLoopback says otherwise. Port 0 picks a free one. */
    host: string
    port: number
    /** Must be true for any host that is not a loopback address (say why in the file). */
    allowNonLoopback: boolean
    /** Turn the web UI off (only scripts and benchmarks do). */
    enabled: boolean
  }
  queue: {
    retryDelaysMs: number[]
    delayedNoticeAfterAttempts: number
    /** Deliveries in flight at once, across all destinations. */
    concurrency: number
    /** Close an idle connection to a peer after this long. */
    idleConnectionMs: number
  }
  vault: {
    /** Data and parity shards per stored object (spec/storage.md: 4 + 2). */
    dataShards: number
    parityShards: number
    /** Argon2id memory (KiB) and passes for a new passphrase; only slow machines and tests lower them. */
    passphraseMemoryKiB: number
    passphraseIterations: number
    /** A slow background scrub starts this often (0: never), pausing between objects. */
    scrubEveryHours: number
    scrubPauseMs: number
  }
  openpgp: {
    /**
     * The owner's ordinary address (e.g. alice@example.org), when they have one: new mail is
     * sent from it, and signed mail announces the onion address as its route (spec/smtorp.md 9).
     */
    address?: string
    /** The name in the key's user ids and on the From line. */
    name?: string
    /** Autocrypt prefer-encrypt: "mutual" (encrypt when both sides say so) or "nopreference". */
    preferEncrypt: 'mutual' | 'nopreference'
    /** HKP keyservers asked for unknown keys, only through Tor (e.g. an onion keyserver). */
    keyservers: string[]
    /** Ask the recipient's domain's Web Key Directory, only through Tor. */
    wkd: boolean
  }
  backup: { imap?: ImapBackupConfig }
  friends: FriendsConfig
  log: { level: string }
}

/** Friends: backups on friends' nodes and recovery shares (spec/friends.md, spec/backup.md part 3). */
export interface FriendsConfig {
  /** Run the libp2p host behind the onion's port 4001 (default true). */
  enabled: boolean
  /** Its 127.0.0.1 port (0: any free one). */
  listenPort: number
  /** Also dial friends' direct addresses (tests and LAN set-ups only; default false: only through Tor). */
  direct: boolean
  /** Storage offered to a new friend, in MiB (default 1024). */
  offerMiB: number
  /** Data shards per backup blob (default 2): any 2 friends bring a blob back. */
  dataShards: number
  /** A backup to friends runs this often (default 60; 0: only after new mail and on demand). */
  everyMinutes: number
  /** ... and this long after new mail (default 120; 0: not after new mail). */
  afterNewMailSeconds: number
  /** Friends are audited this often (default 360; 0: never). */
  auditEveryMinutes: number
  /** Shards on a friend not seen for this long are placed elsewhere (default 72). */
  replaceAfterHours: number
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export const CONFIG_FILE = 'config.yaml'

export function defaultConfig (dataDir: string, user = 'me'): NodeConfig {
  return {
    dataDir,
    user,
    tor: { mode: 'own', torBinary: 'tor', socksPort: 'auto', extraTorrc: [] },
    smtpIn: { port: 0, maxMessageBytes: 25 * 1024 * 1024, maxMessagesPerPeerPerMinute: 120, maxConnections: 32 },
    submission: { host: '127.0.0.1', port: 2525, requireAuth: true },
    ui: { host: '127.0.0.1', port: 8025, allowNonLoopback: false, enabled: true },
    queue: {
      retryDelaysMs: [...DEFAULT_RETRY_POLICY.delaysMs],
      delayedNoticeAfterAttempts: DEFAULT_RETRY_POLICY.delayedNoticeAfterAttempts,
      concurrency: 8,
      idleConnectionMs: 60_000
    },
    vault: { dataShards: 4, parityShards: 2, passphraseMemoryKiB: 65536, passphraseIterations: 3, scrubEveryHours: 24, scrubPauseMs: 20 },
    openpgp: { preferEncrypt: 'mutual', keyservers: [], wkd: true },
    backup: {},
    friends: { enabled: true, listenPort: 0, direct: false, offerMiB: 1024, dataShards: 2, everyMinutes: 60, afterNewMailSeconds: 120, auditEveryMinutes: 360, replaceAfterHours: 72 },
    log: { level: 'info' }
  }
}

type Json = Record<string, unknown>

function isObject (value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

class Reader {
  constructor (private readonly source: Json, private readonly path: string) {}

  private fail (key: string, expected: string): never {
    throw new ConfigError(`config: ${this.path}${key} must be ${expected}`)
  }

  has (key: string): boolean { return this.source[key] !== undefined && this.source[key] !== null }

  string (key: string, fallback: string): string {
    if (!this.has(key)) return fallback
    const value = this.source[key]
    if (typeof value !== 'string' || value === '') this.fail(key, 'a non-empty string')
    return value
  }

  optionalString (key: string): string | undefined {
    return this.has(key) ? this.string(key, '') : undefined
  }

  int (key: string, fallback: number, min: number, max: number): number {
    if (!this.has(key)) return fallback
    const value = this.source[key]
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) this.fail(key, `a whole number from ${min} to ${max}`)
    return value
  }

  bool (key: string, fallback: boolean): boolean {
    if (!this.has(key)) return fallback
    const value = this.source[key]
    if (typeof value !== 'boolean') this.fail(key, 'true or false')
    return value
  }

  strings (key: string, fallback: string[]): string[] {
    if (!this.has(key)) return fallback
    const value = this.source[key]
    if (!Array.isArray(value) || !value.every(v => typeof v === 'string')) this.fail(key, 'a list of strings')
    return value as string[]
  }

  numbers (key: string, fallback: number[]): number[] {
    if (!this.has(key)) return fallback
    const value = this.source[key]
    if (!Array.isArray(value) || value.length === 0 || !value.every(v => typeof v === 'number' && v >= 0)) this.fail(key, 'a non-empty list of non-negative numbers')
    return value as number[]
  }

  /** A port number, or "auto" (the default) for tor to pick one. */
  portOrAuto (key: string): number | 'auto' {
    if (!this.has(key) || this.source[key] === 'auto') return 'auto'
    return this.int(key, 0, 1, 65535)
  }

  oneOf (key: string, fallback: string, allowed: string[]): string {
    const value = this.string(key, fallback)
    if (!allowed.includes(value)) this.fail(key, `one of ${allowed.join(', ')}`)
    return value
  }

  section (key: string): Reader {
    if (!this.has(key)) return new Reader({}, `${this.path}${key}.`)
    const value = this.source[key]
    if (!isObject(value)) this.fail(key, 'a section (key: value pairs)')
    return new Reader(value, `${this.path}${key}.`)
  }

  unknownKeys (known: string[]): void {
    for (const key of Object.keys(this.source)) {
      if (!known.includes(key)) throw new ConfigError(`config: unknown setting ${this.path}${key} (known here: ${known.join(', ')})`)
    }
  }
}

const LOCAL_PART = /^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$/

/** Validate a parsed config document on top of the defaults. */
export function configFromObject (dataDir: string, source: unknown): NodeConfig {
  if (source === undefined || source === null) source = {}
  if (!isObject(source)) throw new ConfigError('config: the file must be a YAML mapping')
  const base = defaultConfig(dataDir)
  const top = new Reader(source, '')
  top.unknownKeys(['user', 'tor', 'smtpIn', 'submission', 'relay', 'ui', 'queue', 'vault', 'openpgp', 'backup', 'friends', 'log'])
  const user = top.string('user', base.user).toLowerCase()
  if (!LOCAL_PART.test(user)) throw new ConfigError('config: user must be a plain local part such as "alice" (letters, digits, ".", "_", "-")')

  const t = top.section('tor')
  const mode = t.oneOf('mode', 'own', ['own', 'attach'])
  let tor: TorConfig
  if (mode === 'own') {
    t.unknownKeys(['mode', 'torBinary', 'socksPort', 'extraTorrc'])
    tor = { mode: 'own', torBinary: t.string('torBinary', 'tor'), socksPort: t.portOrAuto('socksPort'), extraTorrc: t.strings('extraTorrc', []) }
  } else if (mode === 'attach') {
    t.unknownKeys(['mode', 'controlHost', 'controlPort', 'cookieFile', 'password', 'socksHost', 'socksPort'])
    if (!t.has('controlPort') || !t.has('socksPort')) throw new ConfigError('config: tor.mode "attach" needs tor.controlPort and tor.socksPort')
    const cookieFile = t.optionalString('cookieFile')
    const password = t.optionalString('password')
    tor = {
      mode: 'attach',
      controlHost: t.string('controlHost', '127.0.0.1'),
      controlPort: t.int('controlPort', 9051, 1, 65535),
      ...(cookieFile !== undefined ? { cookieFile } : {}),
      ...(password !== undefined ? { password } : {}),
      socksHost: t.string('socksHost', '127.0.0.1'),
      socksPort: t.int('socksPort', 9050, 1, 65535)
    }
  } else {
    throw new ConfigError('config: tor.mode must be "own" (the node runs its own tor) or "attach" (use an existing tor)')
  }

  const s = top.section('smtpIn')
  s.unknownKeys(['port', 'maxMessageBytes', 'maxMessagesPerPeerPerMinute', 'maxConnections'])
  const sub = top.section('submission')
  sub.unknownKeys(['host', 'port', 'requireAuth'])
  const q = top.section('queue')
  q.unknownKeys(['retryDelaysMs', 'delayedNoticeAfterAttempts', 'concurrency', 'idleConnectionMs'])
  const v = top.section('vault')
  v.unknownKeys(['dataShards', 'parityShards', 'passphraseMemoryKiB', 'passphraseIterations', 'scrubEveryHours', 'scrubPauseMs'])
  const u = top.section('ui')
  u.unknownKeys(['host', 'port', 'allowNonLoopback', 'enabled'])
  const ui = { host: u.string('host', base.ui.host), port: u.int('port', base.ui.port, 0, 65535), allowNonLoopback: u.bool('allowNonLoopback', false), enabled: u.bool('enabled', true) }
  // A non-loopback host without allowNonLoopback is refused by the UI itself (ui/server.ts).
  const l = top.section('log')
  l.unknownKeys(['level'])
  const o = top.section('openpgp')
  o.unknownKeys(['address', 'name', 'preferEncrypt', 'keyservers', 'wkd'])
  const ordinary = o.optionalString('address')?.toLowerCase()
  if (ordinary !== undefined) {
    try {
      if (parseAddress(ordinary).route === 'onion') throw new ConfigError('config: openpgp.address is for an ordinary address; the onion one is already yours')
    } catch (err) {
      if (err instanceof ConfigError) throw err
      throw new ConfigError(`config: openpgp.address is not a mail address: ${(err as Error).message}`)
    }
  }
  const name = o.optionalString('name')
  if (name !== undefined && /[\x00-\x1f\x7f<>"]/.test(name)) throw new ConfigError('config: openpgp.name may not hold control characters, <, > or "')
  const keyservers = o.strings('keyservers', [])
  for (const k of keyservers) {
    if (!/^https?:\/\/[^/?#@\s]+(\/[^?#\s]*)?$/i.test(k)) throw new ConfigError(`config: openpgp.keyservers entry "${k}" must be an http(s) URL without credentials, query or fragment`)
  }
  const openpgp = {
    ...(ordinary !== undefined ? { address: ordinary } : {}),
    ...(name !== undefined ? { name } : {}),
    preferEncrypt: o.oneOf('preferEncrypt', base.openpgp.preferEncrypt, ['mutual', 'nopreference']) as 'mutual' | 'nopreference',
    keyservers,
    wkd: o.bool('wkd', base.openpgp.wkd)
  }

  let relay: RelayConfig | undefined
  if (top.has('relay')) {
    const r = top.section('relay')
    r.unknownKeys(['host', 'port', 'requireTls', 'verifyCertificate', 'username', 'password', 'viaTor'])
    if (!r.has('host')) throw new ConfigError('config: relay.host is required when a relay is configured')
    const username = r.optionalString('username')
    const password = r.optionalString('password')
    if ((username === undefined) !== (password === undefined)) throw new ConfigError('config: relay.username and relay.password go together')
    relay = {
      host: r.string('host', ''),
      port: r.int('port', 587, 1, 65535),
      requireTls: r.bool('requireTls', true),
      verifyCertificate: r.bool('verifyCertificate', true),
      ...(username !== undefined ? { username, password: password! } : {}),
      viaTor: r.bool('viaTor', false)
    }
  }

  const b = top.section('backup')
  b.unknownKeys(['imap'])
  let imapBackup: ImapBackupConfig | undefined
  if (b.has('imap')) {
    const i = b.section('imap')
    i.unknownKeys(['host', 'port', 'security', 'user', 'password', 'folder', 'everyMinutes', 'afterNewMailSeconds', 'viaTor'])
    for (const key of ['host', 'user', 'password']) {
      if (!i.has(key)) throw new ConfigError(`config: backup.imap.${key} is required when backup.imap is configured`)
    }
    const folder = i.string('folder', 'smtorp-backup')
    if (/[\x00-\x1f\x7f*%]/.test(folder)) throw new ConfigError('config: backup.imap.folder may not hold control characters, * or %')
    imapBackup = {
      host: i.string('host', ''),
      port: i.int('port', 993, 1, 65535),
      security: i.oneOf('security', 'tls', ['tls', 'starttls', 'plain']) as ImapBackupConfig['security'],
      user: i.string('user', ''),
      password: i.string('password', ''),
      folder,
      everyMinutes: i.int('everyMinutes', 60, 0, 7 * 24 * 60),
      afterNewMailSeconds: i.int('afterNewMailSeconds', 300, 0, 24 * 3600),
      // Through Tor by default: the provider then does not learn where the node is (issue 6:
      // nothing leaves the node except through Tor during backup).
      viaTor: i.bool('viaTor', true)
    }
  }

  const fr = top.section('friends')
  fr.unknownKeys(['enabled', 'listenPort', 'direct', 'offerMiB', 'dataShards', 'everyMinutes', 'afterNewMailSeconds', 'auditEveryMinutes', 'replaceAfterHours'])
  const bf = base.friends
  const friends: FriendsConfig = {
    enabled: fr.bool('enabled', bf.enabled),
    listenPort: fr.int('listenPort', bf.listenPort, 0, 65535),
    direct: fr.bool('direct', bf.direct),
    offerMiB: fr.int('offerMiB', bf.offerMiB, 0, 16 * 1024 * 1024),
    dataShards: fr.int('dataShards', bf.dataShards, 1, 8),
    everyMinutes: fr.int('everyMinutes', bf.everyMinutes, 0, 7 * 24 * 60),
    afterNewMailSeconds: fr.int('afterNewMailSeconds', bf.afterNewMailSeconds, 0, 24 * 3600),
    auditEveryMinutes: fr.int('auditEveryMinutes', bf.auditEveryMinutes, 0, 30 * 24 * 60),
    replaceAfterHours: fr.int('replaceAfterHours', bf.replaceAfterHours, 1, 24 * 365)
  }

  return {
    dataDir,
    user,
    tor,
    smtpIn: {
      port: s.int('port', base.smtpIn.port, 0, 65535),
      maxMessageBytes: s.int('maxMessageBytes', base.smtpIn.maxMessageBytes, 1024, 1024 * 1024 * 1024),
      maxMessagesPerPeerPerMinute: s.int('maxMessagesPerPeerPerMinute', base.smtpIn.maxMessagesPerPeerPerMinute, 1, 1_000_000),
      maxConnections: s.int('maxConnections', base.smtpIn.maxConnections, 1, 10_000)
    },
    submission: {
      host: sub.string('host', base.submission.host),
      port: sub.int('port', base.submission.port, 0, 65535),
      requireAuth: sub.bool('requireAuth', true)
    },
    ...(relay !== undefined ? { relay } : {}),
    ui,
    queue: {
      retryDelaysMs: q.numbers('retryDelaysMs', base.queue.retryDelaysMs),
      delayedNoticeAfterAttempts: q.int('delayedNoticeAfterAttempts', base.queue.delayedNoticeAfterAttempts, 1, 100),
      concurrency: q.int('concurrency', base.queue.concurrency, 1, 256),
      idleConnectionMs: q.int('idleConnectionMs', base.queue.idleConnectionMs, 100, 3_600_000)
    },
    vault: {
      // @ronomon/reed-solomon's limits: k <= 24, m <= 6.
      dataShards: v.int('dataShards', base.vault.dataShards, 1, 24),
      parityShards: v.int('parityShards', base.vault.parityShards, 1, 6),
      passphraseMemoryKiB: v.int('passphraseMemoryKiB', base.vault.passphraseMemoryKiB, 1024, 4 * 1024 * 1024),
      passphraseIterations: v.int('passphraseIterations', base.vault.passphraseIterations, 1, 100),
      scrubEveryHours: v.int('scrubEveryHours', base.vault.scrubEveryHours, 0, 24 * 365),
      scrubPauseMs: v.int('scrubPauseMs', base.vault.scrubPauseMs, 0, 60_000)
    },
    openpgp,
    backup: imapBackup !== undefined ? { imap: imapBackup } : {},
    friends,
    log: { level: l.oneOf('level', base.log.level, ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']) }
  }
}

export async function loadConfig (dataDir: string): Promise<NodeConfig> {
  let text: string
  try {
    text = await readFile(join(dataDir, CONFIG_FILE), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ConfigError(`no ${CONFIG_FILE} in ${dataDir}: run "smtorp init" first`)
    throw err
  }
  let document: unknown
  try {
    document = parse(text)
  } catch (err) {
    throw new ConfigError(`config: ${CONFIG_FILE} is not valid YAML: ${(err as Error).message}`)
  }
  return configFromObject(dataDir, document)
}
