// The local submission port (RFC 6409, on 127.0.0.1 unless configured otherwise): where the owner's mail client,
// `smtorp send`, swaks or Python's smtplib hand mail to the node. The owner authenticates
// with AUTH PLAIN or LOGIN, either with the initial password (<dataDir>/submission.secret,
// user name the owner's local part or address) or with a mail client's own credential
// (credentials.ts), and may send only as their own address. A message is acknowledged with
// 250 only once it is durably in the Outbox and in the queue; then the queue delivers it.
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { AddressInfo, Socket } from 'node:net'
import type { Logger } from '../log/index.ts'
import type { MailStore } from '../store/mail-store.ts'
import type { OutboundQueue } from '../queue/index.ts'
import type { CredentialVerifier, LoginCheck } from './credentials.ts'
import { SmtpReplyError } from '../smtp-in/errors.ts'
import { parseAddress, AddressError } from '../../protocol/address.ts'
import { completeSubmittedMessage } from '../../protocol/message.ts'

export { CredentialStore, CredentialError, MAX_FAILED_LOGINS, type Credential, type CredentialVerifier, type LoginCheck, type CredentialStoreInit, type CredentialStoreComponents } from './credentials.ts'

export interface SubmissionInit {
  /** The owner's address, user@<onion>.onion. */
  address: string
  /** Other addresses the owner may send from (their ordinary address); the envelope still names `address`. */
  aliases?: string[]
  /** The initial password, for the owner's local part or address as user name. */
  password: string
  /** Default 127.0.0.1. */
  host?: string
  port: number
  requireAuth: boolean
  maxMessageBytes: number
  /** RFC 5321 4.5.3.1.8 asks servers to take at least 100. */
  maxRecipients?: number
}

export interface SubmissionComponents {
  logger: Logger
  store: MailStore
  queue: OutboundQueue
  /** Why mail cannot be taken now (the vault is locked), or undefined when it can. */
  refuseBecause?: () => string | undefined
  /** The mail clients' own credentials (a CredentialStore); without it only the initial password logs in. */
  credentials?: CredentialVerifier
  /**
   * Make a submitted message ready to leave (node/openpgp: header fields that identify the
   * machine removed, Autocrypt, signed or encrypted copies). Without it the message is queued
   * as submitted.
   */
  prepare?: (raw: Buffer, to: string[]) => Promise<PreparedSubmission>
}

export interface PreparedSubmission {
  /** What the owner keeps in the Outbox and then Sent. */
  stored: Buffer
  messageId: string
  /** What each recipient gets, when it differs from `stored`. */
  copies?: Array<{ to: string[], raw: Buffer }>
}

export interface Submission {
  start (): Promise<void>
  stop (): Promise<void>
  port (): number
}

function digest (text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}

export function submission (init: SubmissionInit, components: SubmissionComponents): Submission {
  const log = components.logger.child({ component: 'submission' })
  const owner = init.address.toLowerCase()
  const [ownerLocal, domain] = owner.split('@') as [string, string]
  const passwordDigest = digest(init.password)
  const maxRecipients = init.maxRecipients ?? 100
  const senders = new Set([owner, ...(init.aliases ?? []).map(a => a.toLowerCase())])
  let boundPort = 0

  const server = new SMTPServer({
    name: 'localhost',
    banner: 'smtorp submission',
    logger: false,
    disabledCommands: ['STARTTLS'], // loopback only
    authMethods: ['PLAIN', 'LOGIN'],
    authOptional: !init.requireAuth,
    allowInsecureAuth: true,
    disableReverseLookup: true,
    size: init.maxMessageBytes,
    hideSMTPUTF8: true, // addresses are ASCII only (protocol/address.ts)
    useXClient: false,
    useXForward: false,
    closeTimeout: 5_000, // on stop, give open client sessions this long

    onAuth (auth, session, callback) {
      const user = (auth.username ?? '').toLowerCase()
      const password = auth.password ?? ''
      let check: LoginCheck = 'wrong'
      if (user === ownerLocal || user === owner) {
        // Compare digests so the comparison takes the same time whatever the guess.
        if (timingSafeEqual(digest(password), passwordDigest)) check = 'ok'
      } else if (components.credentials !== undefined) {
        check = components.credentials.verify(user, password)
      }
      if (check === 'ok') return callback(null, { user: owner })
      // The user name, cut short (a client may send anything), and never the password.
      log.info({ session: session.id, username: user.slice(0, 64), reason: check }, 'submission login failed')
      if (check === 'disabled') {
        return callback(new SmtpReplyError(535, '5.7.8', 'This credential is disabled after too many failed logins; the owner can re-enable or replace it in the web UI'))
      }
      // RFC 4954 6: 454 4.7.0, a temporary failure; the client keeps its password and retries.
      if (check === 'unavailable') return callback(new SmtpReplyError(454, '4.7.0', 'Temporary authentication failure: the node is locked; unlock it, then try again'))
      callback(new SmtpReplyError(535, '5.7.8', 'Authentication credentials invalid'))
    },

    onMailFrom (address: SMTPServerAddress, session: SMTPServerSession, callback) {
      if (init.requireAuth && session.user === undefined) return callback(new SmtpReplyError(530, '5.7.0', 'Authentication required'))
      if (!senders.has(address.address.toLowerCase())) return callback(new SmtpReplyError(553, '5.7.1', `You may send only as ${[...senders].join(' or ')}`))
      const refusal = components.refuseBecause?.()
      // 451: the mail client keeps the message and tries again later.
      if (refusal !== undefined) return callback(new SmtpReplyError(451, '4.3.0', refusal))
      callback()
    },

    onRcptTo (address: SMTPServerAddress, session: SMTPServerSession, callback) {
      if (session.envelope.rcptTo.length >= maxRecipients) return callback(new SmtpReplyError(452, '4.5.3', `Too many recipients: at most ${maxRecipients} per message`))
      try {
        parseAddress(address.address)
      } catch (err) {
        return callback(new SmtpReplyError(553, '5.1.3', `Bad recipient address: ${err instanceof AddressError ? err.message : 'unreadable'}`))
      }
      callback()
    },

    onData (stream: SMTPServerDataStream, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = []
      let length = 0
      stream.on('data', (chunk: Buffer) => {
        length += chunk.length
        if (length <= init.maxMessageBytes) chunks.push(chunk)
      })
      stream.on('end', () => {
        if (stream.sizeExceeded || length > init.maxMessageBytes) {
          return callback(new SmtpReplyError(552, '5.3.4', `Message too big: the limit is ${init.maxMessageBytes} bytes`))
        }
        // No Received field of our own: outgoing headers say nothing of the machine or the
        // software that sent them (issue 5).
        const completed = completeSubmittedMessage(Buffer.concat(chunks, length), domain, new Date())
        const raw = completed.raw
        const to = session.envelope.rcptTo.map(r => r.address.toLowerCase())
        accept(raw, to, completed.messageId).then(
          queueId => { callback(null, `2.0.0 Queued as ${queueId}`) },
          (err: Error) => {
            log.error({ session: session.id, err: err.message }, 'could not queue a submitted message')
            callback(new SmtpReplyError(451, '4.3.0', 'Local error queueing the message, try again later', false))
          })
      })
    }
  })
  // Replies to pipelined commands go out as separate writes; without TCP_NODELAY the second
  // waits for the peer's delayed ACK (about 40 ms a time, measured through Tor).
  server.server.on('connection', (socket: Socket) => { socket.setNoDelay(true) })
  server.on('error', err => { log.warn({ err: err.message }, 'submission server error') })

  async function accept (submitted: Buffer, to: string[], submittedId: string): Promise<string> {
    const prepared = components.prepare !== undefined ? await components.prepare(submitted, to) : { stored: submitted, messageId: submittedId }
    const { stored: raw, messageId } = prepared
    const stored = await components.store.add({ folder: 'Outbox', raw, from: owner, to, messageId, flags: ['\\Seen'] })
    const entry = await components.queue.enqueue({ storeId: stored.meta.id, from: owner, to, messageId, raw, ...(prepared.copies !== undefined ? { copies: prepared.copies } : {}) })
    log.info({ queue: entry.id, recipients: to.length, size: raw.length }, 'accepted a message for delivery')
    return entry.id
  }

  return {
    async start () {
      await new Promise<void>((resolve, reject) => {
        server.server.once('error', reject)
        server.listen(init.port, init.host ?? '127.0.0.1', () => {
          server.server.off('error', reject)
          boundPort = (server.server.address() as AddressInfo).port
          resolve()
        })
      })
      log.info({ host: init.host ?? '127.0.0.1', port: boundPort }, 'submission port listening')
    },
    async stop () {
      await new Promise<void>(resolve => server.close(() => resolve()))
    },
    port () { return boundPort }
  }
}
