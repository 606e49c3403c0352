// A BackupTarget in a folder of the owner's existing IMAP account (spec/backup.md section 3),
// over imapflow: one message per blob (imap-message.ts), replaced by APPEND-then-expunge so a
// crash leaves two copies rather than none, listed from two header fields without fetching
// any body.
//
// IMAP references: RFC 3501 6.3.11 (APPEND), 6.4.4 (SEARCH HEADER), 6.4.5 (FETCH
// BODY.PEEK[HEADER.FIELDS]), 6.4.6 (STORE), 6.4.3 (EXPUNGE); RFC 4315 (UIDPLUS: APPENDUID,
// UID EXPUNGE, so that only our own \Deleted messages are expunged).
import { randomBytes } from 'node:crypto'
import { ImapFlow, type ImapFlowOptions, type ImapFlowError } from 'imapflow'
import type { Logger } from '../log/index.ts'
import { blobMessage, readBlobHeaders, readBlobMessage, BLOB_HEADER, BLOB_SIZE_HEADER, FORMAT_HEADER } from './imap-message.ts'
import {
  checkBlob, checkBlobName, BackupTargetError, TargetRefusedError, TargetUnavailableError,
  type BackupTarget, type BlobInfo
} from './target.ts'

export const DEFAULT_BACKUP_FOLDER = 'smtorp-backup'

export interface ImapTargetInit {
  host: string
  port: number
  /** TLS from the first byte (port 993). */
  secure: boolean
  /**
   * STARTTLS when not `secure`: true requires it, false never uses it (loopback tests only),
   * absent uses it when offered (imapflow's default, which an attacker can strip).
   */
  doSTARTTLS?: boolean
  user: string
  pass: string
  /** The folder holding the blobs, created when missing. Default "smtorp-backup". */
  folder?: string
  /** Node TLS options (servername, ca, ...), passed to imapflow. */
  tls?: ImapFlowOptions['tls']
  /** Connect (TCP+TLS) and greeting budget each, ms. Default 15 s. */
  connectTimeoutMs?: number
  /** Silence on an open connection before it is dropped, ms. Default 120 s (a 16 MiB APPEND on a slow line). */
  socketTimeoutMs?: number
  /**
   * Reach the server through this proxy, e.g. Tor's SOCKS port as `socks5://127.0.0.1:9050`
   * (imapflow hands the host name to a socks5 proxy unresolved, so tor resolves it). A SOCKS
   * URL without a user name gets a new random one for each connection, so that tor, which
   * isolates streams by SOCKS credentials, builds each connection its own circuit: a retry
   * after a stalled circuit then does not wait on the same circuit again.
   */
  proxy?: string
}

export interface ImapTargetComponents {
  logger: Logger
}

/** An open, authenticated connection with the folder selected. */
interface Session {
  client: ImapFlow
  /** Whether the server has UIDPLUS (RFC 4315). */
  uidplus: boolean
  /**
   * The live copies of every blob, by name: read by list() on this connection, then kept up to
   * date by put and delete, so that a put of a new name is one APPEND and a get one FETCH (over
   * Tor each round trip is a third of a second). Complete because one target writes a folder
   * (spec/backup.md 2); kept only with UIDPLUS, whose APPENDUID names the new copy. Dropped
   * when a call fails, and with the connection.
   */
  index?: Map<string, Copy[]>
}

/** A blob message in the folder: its UID and what its headers say (the name checked exactly, as SEARCH HEADER matches substrings, RFC 3501 6.4.4). */
interface Copy { uid: number, name: string, size: number }

const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  'NoConnection', 'EConnectionClosed', 'ClosedAfterConnectText', 'ClosedAfterConnectTLS',
  'CONNECT_TIMEOUT', 'GREETING_TIMEOUT', 'UPGRADE_TIMEOUT', 'ETIMEOUT', 'ETHROTTLE', 'StateLogout',
])
// RFC 5530 response codes meaning "later" rather than "no".
const TRANSIENT_RESPONSE_CODES = new Set(['UNAVAILABLE', 'INUSE', 'SERVERBUG', 'CONTACTADMIN', 'EXPUNGEISSUED'])

export class ImapBackupTarget implements BackupTarget {
  readonly description: string
  private readonly folder: string
  private readonly log: Logger
  private session: Session | undefined
  private connecting: Promise<Session> | undefined
  private queue: Promise<unknown> = Promise.resolve()
  private closed = false

  constructor (private readonly init: ImapTargetInit, components: ImapTargetComponents) {
    this.folder = init.folder ?? DEFAULT_BACKUP_FOLDER
    this.description = `imap ${init.user}@${init.host}:${init.port}/${this.folder}`
    this.log = components.logger.child({ component: 'backup-imap', target: this.description })
  }

  // ---- the contract ----

  async put (name: string, bytes: Uint8Array): Promise<void> {
    checkBlob(name, bytes)
    const message = blobMessage(name, bytes)
    await this.run(`store backup blob ${name}`, async (session) => {
      const { client, uidplus, index } = session
      const appended = await client.append(this.folder, message)
      if (appended === false) throw commandFailed(`the IMAP server did not store backup blob ${name} in ${this.folder}`)
      // Only now, with the new copy durable on the server, remove the older ones: a crash in
      // between leaves two copies, and get/list take the newest (highest UID). Without the
      // index, SEARCH HEADER finds them (it scans the folder's headers: measured on Dovecot,
      // 260 puts/s of 64 KiB in an empty folder, 180/s at 1,000 blobs, ~380/s for APPEND alone).
      const copies = index !== undefined && appended.uid !== undefined ? index.get(name) ?? [] : await this.copiesOf(client, name)
      // Only APPENDUID (UIDPLUS) names the new copy for sure: without it imapflow guesses its UID
      // from the message count, which another client's message can make wrong.
      const newest = uidplus && appended.uid !== undefined ? appended.uid : Math.max(...copies.map((c) => c.uid))
      const older = copies.filter((c) => c.uid < newest).map((c) => c.uid)
      if (older.length > 0) await this.expunge(client, uidplus, older)
      index?.set(name, [{ uid: newest, name, size: bytes.length }])
    })
  }

  async get (name: string): Promise<Buffer | undefined> {
    checkBlobName(name)
    return await this.run(`fetch backup blob ${name}`, async (session) => {
      const { client, index } = session
      if (index !== undefined) {
        const known = newestOf(index.get(name) ?? [])
        if (known === undefined) return undefined
        const source = await fetchSource(client, known.uid)
        if (source !== undefined) return readBlobMessage(name, source)
        // The index was wrong, or the connection is gone: ask the server.
        session.index = undefined
      }
      const newest = newestOf(await this.copiesOf(client, name))
      if (newest === undefined) return undefined
      const source = await fetchSource(client, newest.uid)
      // Expunged by another client between SEARCH and FETCH: as if it were never there.
      return source === undefined ? undefined : readBlobMessage(name, source)
    })
  }

  async list (): Promise<BlobInfo[]> {
    return await this.run('list backup blobs', async (session) => {
      const index = new Map<string, Copy[]>()
      for (const copy of await this.copies(session.client, { deleted: false })) index.set(copy.name, [...index.get(copy.name) ?? [], copy])
      if (session.uidplus) session.index = index
      return [...index.values()].map((copies) => newestOf(copies)!).map(({ name, size }) => ({ name, size }))
    })
  }

  async delete (name: string): Promise<void> {
    checkBlobName(name)
    await this.run(`delete backup blob ${name}`, async ({ client, uidplus, index }) => {
      // Always searched: copies flagged \Deleted by a crash inside an earlier delete go too.
      const uids = (await this.copiesOf(client, name, true)).map((c) => c.uid)
      if (uids.length > 0) await this.expunge(client, uidplus, uids)
      index?.delete(name)
    })
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    // Let calls already made finish first.
    await this.queue.catch(() => {})
    const session = this.session ?? await this.connecting?.catch(() => undefined)
    this.session = undefined
    if (session === undefined) return
    try {
      await withTimeout(session.client.logout(), 5000)
    } catch (err) {
      this.log.debug({ err: describe(err) }, 'The IMAP logout failed; the connection is closed without it.')
      session.client.close()
    }
  }

  // ---- IMAP ----

  /** UIDs, names and sizes of the live (not \Deleted) copies of one blob, or of all when `all`. */
  private async copiesOf (client: ImapFlow, name: string, includeDeleted = false): Promise<Copy[]> {
    const query = includeDeleted ? { header: { [BLOB_HEADER]: name } } : { header: { [BLOB_HEADER]: name }, deleted: false }
    return (await this.copies(client, query)).filter((c) => c.name === name)
  }

  /** Every blob message matching `query`, read from its headers only. */
  private async copies (client: ImapFlow, query: { header?: Record<string, string>, deleted?: boolean }): Promise<Copy[]> {
    const uids = await client.search(query, { uid: true })
    // false is not "nothing found": the search did not run (a refusal, or no folder selected
    // because the connection went away).
    if (uids === false || uids === undefined) throw commandFailed(`the IMAP server did not search folder ${this.folder}`)
    if (uids.length === 0) return []
    const copies: Copy[] = []
    let foreign = 0
    // BODY.PEEK[HEADER.FIELDS (...)]: the server sends a few dozen bytes per message and sets no \Seen.
    for await (const msg of client.fetch(uidSet(uids), { uid: true, headers: [FORMAT_HEADER, BLOB_HEADER, BLOB_SIZE_HEADER] }, { uid: true })) {
      const headers = msg.headers === undefined ? undefined : readBlobHeaders(msg.headers)
      if (headers === undefined) foreign++
      else copies.push({ uid: msg.uid, ...headers })
    }
    if (foreign > 0) this.log.info({ foreign }, 'The backup folder holds messages that are not smtorp backup blobs; they are left alone.')
    return copies
  }

  /** Flags \Deleted and expunges exactly these UIDs (UID EXPUNGE with UIDPLUS). */
  private async expunge (client: ImapFlow, uidplus: boolean, uids: number[]): Promise<void> {
    if (!uidplus) {
      // todo: without UIDPLUS, EXPUNGE also removes messages another client flagged \Deleted in
      // this folder; acceptable for a folder that only smtorp writes. Dovecot has UIDPLUS.
      this.log.debug('The IMAP server lacks UIDPLUS; expunging the whole folder.')
    }
    // imapflow's messageDelete: UID STORE +FLAGS.SILENT (\Deleted), then UID EXPUNGE when the
    // server has UIDPLUS, else EXPUNGE.
    const done = await client.messageDelete(uidSet(uids), { uid: true })
    if (!done) throw commandFailed(`the IMAP server did not delete ${uids.length} message(s) in ${this.folder}`)
  }

  /** The open session, connecting (and creating the folder) when there is none or it dropped. */
  private async connect (): Promise<Session> {
    if (this.session !== undefined && this.session.client.usable) return this.session
    if (this.session !== undefined) {
      this.log.info('The IMAP connection was dropped; reconnecting.')
      this.session.client.close()
      this.session = undefined
    }
    this.connecting ??= this.open().finally(() => { this.connecting = undefined })
    const session = await this.connecting
    this.session = session
    return session
  }

  private async open (): Promise<Session> {
    const timeout = this.init.connectTimeoutMs ?? 15_000
    const client = new ImapFlow({
      host: this.init.host,
      port: this.init.port,
      secure: this.init.secure,
      ...(this.init.doSTARTTLS !== undefined ? { doSTARTTLS: this.init.doSTARTTLS } : {}),
      ...(this.init.tls !== undefined ? { tls: this.init.tls } : {}),
      auth: { user: this.init.user, pass: this.init.pass },
      logger: false,
      // We never wait for new mail; IDLE would only add round trips between our commands.
      disableAutoIdle: true,
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      socketTimeout: this.init.socketTimeoutMs ?? 120_000,
      // RFC 2971 ID: imapflow would name itself, its version and vendor; say nothing that tells the software apart.
      clientInfo: { name: 'mail', version: '1', vendor: 'mail', 'support-url': 'none' },
      ...(this.init.proxy !== undefined ? { proxy: withFreshSocksUser(this.init.proxy) } : {}),
    })
    // imapflow emits 'error' for a connection that fails between commands; without a
    // listener that would end the process. The failed command itself rejects and is reported.
    client.on('error', (err: unknown) => {
      this.log.debug({ err: describe(err) }, 'The IMAP connection reported an error; the next call reconnects.')
    })
    try {
      await client.connect()
      try {
        await client.mailboxOpen(this.folder)
      } catch (err) {
        if (!isMissingMailbox(err)) throw err
        this.log.info({ folder: this.folder }, 'Creating the backup folder in the IMAP account.')
        await client.mailboxCreate(this.folder)
        await client.mailboxOpen(this.folder)
      }
    } catch (err) {
      client.close()
      throw err
    }
    return { client, uidplus: client.capabilities.has('UIDPLUS') }
  }

  /**
   * Runs `op` after every call made before it, on a connected session. A call that fails for
   * a reason that may pass (a connection that dropped while idle, a Tor circuit that stalls
   * before the greeting, a server busy just now) is tried once more on a new connection, and
   * through a SOCKS proxy on a new circuit: every operation here may be repeated (a repeated
   * APPEND leaves a copy the next put of the name removes, and get/list read the newest).
   */
  private async run<T> (what: string, op: (session: Session) => Promise<T>): Promise<T> {
    if (this.closed) throw new BackupTargetError(`the IMAP backup target ${this.description} was closed`)
    const task = this.queue.then(async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await op(await this.connect())
        } catch (err) {
          if (err instanceof BackupTargetError) throw err
          // What failed may have changed the folder half way: the index is read again by the next list().
          if (this.session !== undefined) this.session.index = undefined
          const mapped = this.mapError(what, err)
          if (mapped.transient) {
            this.session?.client.close()
            this.session = undefined
            if (attempt === 1) {
              this.log.info({ err: describe(err) }, `The IMAP connection failed while trying to ${what}; trying once more on a new connection.`)
              continue
            }
          }
          this.log.warn({ err: describe(err) }, `Could not ${what}: ${mapped.message}`)
          throw mapped
        }
      }
    })
    this.queue = task.catch(() => {})
    return await task
  }

  /** A BackupTargetError for an imapflow or socket error, with a sentence for the owner. */
  private mapError (what: string, err: unknown): BackupTargetError {
    const e = err as ImapFlowError
    const where = `${this.init.host}:${this.init.port}`
    const code = e?.serverResponseCode?.toUpperCase()
    if (e?.authenticationFailed === true) {
      if (code !== undefined && TRANSIENT_RESPONSE_CODES.has(code)) {
        return new TargetUnavailableError(`the IMAP server at ${where} could not check the login of ${this.init.user} just now (${code}); trying again later may work`, { cause: err })
      }
      return new TargetRefusedError(`the IMAP server at ${where} refused the login of ${this.init.user}: the user name or the password is wrong${code !== undefined ? ` (${code})` : ''}; correct them in the backup settings`, { cause: err })
    }
    if (e?.tlsFailed === true) {
      return new TargetRefusedError(`could not set up TLS with the IMAP server at ${where}: ${e.message}; check the host name, port and TLS settings`, { cause: err })
    }
    if (e?.responseStatus === 'NO' || e?.responseStatus === 'BAD') {
      const text = e.responseText ?? e.message
      if (code !== undefined && TRANSIENT_RESPONSE_CODES.has(code)) {
        return new TargetUnavailableError(`the IMAP server at ${where} could not ${what} just now: ${text}`, { cause: err })
      }
      if (code === 'OVERQUOTA' || code === 'LIMIT') {
        return new TargetRefusedError(`the IMAP account ${this.init.user} at ${where} is full, so the server refused to ${what}: ${text}; free space or raise the quota`, { cause: err })
      }
      return new TargetRefusedError(`the IMAP server at ${where} refused to ${what} in folder ${this.folder}: ${text}`, { cause: err })
    }
    if (e?.code !== undefined && NETWORK_CODES.has(e.code)) {
      return new TargetUnavailableError(`the IMAP server at ${where} cannot be reached (${e.code}); the backup will try again later`, { cause: err })
    }
    // Anything else (a parser error, an unexpected close): not the owner's doing, and a new
    // connection may well succeed.
    return new TargetUnavailableError(`the connection to the IMAP server at ${where} failed while trying to ${what}: ${e?.message ?? String(err)}`, { cause: err })
  }
}

/** A BackupTarget in the owner's IMAP account. Connects on first use; call close() when done. */
export function imapBackupTarget (init: ImapTargetInit, components: ImapTargetComponents): ImapBackupTarget {
  return new ImapBackupTarget(init, components)
}

/** The copy with the highest UID: the newest (a crash between APPEND and expunge leaves two). */
function newestOf (copies: Copy[]): Copy | undefined {
  return copies.length === 0 ? undefined : copies.reduce((a, b) => (b.uid > a.uid ? b : a))
}

/** The raw message with this UID, or undefined when the server has none (BODY.PEEK: no \Seen). */
async function fetchSource (client: ImapFlow, uid: number): Promise<Buffer | undefined> {
  const message = await client.fetchOne(String(uid), { uid: true, source: true }, { uid: true })
  return message === false || message.source === undefined ? undefined : message.source
}

/**
 * The proxy URL with a new random SOCKS user name, when it is a SOCKS URL without one. Tor
 * isolates streams by SOCKS credentials (IsolateSOCKSAuth, on by default), so this gives the
 * connection a circuit of its own. HTTP proxies and URLs with credentials are left as given.
 */
function withFreshSocksUser (proxy: string): string {
  const url = new URL(proxy)
  if (!url.protocol.startsWith('socks') || url.username !== '' || url.password !== '') return proxy
  url.username = `smtorp-imap-${randomBytes(8).toString('hex')}`
  url.password = 'x'
  return url.href
}

/**
 * For an imapflow call that answered `false` instead of throwing (search, store and expunge
 * do, after logging the cause; append rejects on a NO). Measured with Dovecot: a UID SEARCH cut
 * off by the server's BYE answered false while `client.usable` was still true, so neither the
 * answer nor the connection state tells a refusal from a dropped connection. Report it as a
 * connection failure: run() retries it once on a new connection and reports it as transient,
 * which at worst makes a caller try a real refusal again later.
 */
function commandFailed (sentence: string): Error {
  const err = new Error(`${sentence}; the connection may have closed`) as ImapFlowError
  err.code = 'NoConnection'
  return err
}

function isMissingMailbox (err: unknown): boolean {
  const e = err as ImapFlowError
  return e?.mailboxMissing === true || e?.serverResponseCode?.toUpperCase() === 'NONEXISTENT'
}

/** A compact UID set: "1:4,7,9:10". */
function uidSet (uids: number[]): string {
  const sorted = [...uids].sort((a, b) => a - b)
  const parts: string[] = []
  for (let i = 0; i < sorted.length;) {
    let j = i
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++
    parts.push(j === i ? String(sorted[i]) : `${sorted[i]}:${sorted[j]}`)
    i = j + 1
  }
  return parts.join(',')
}

/** What to log of an error: its name, code and message, never the command (it may hold a password). */
function describe (err: unknown): Record<string, unknown> {
  const e = err as ImapFlowError
  return { name: e?.name, code: e?.code, message: e?.message, response: e?.responseText }
}

async function withTimeout<T> (promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms) })])
  } finally {
    clearTimeout(timer)
  }
}
