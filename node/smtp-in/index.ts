// The inbound SMTorP endpoint: the SMTP server behind the node's onion service (tor forwards
// the onion's port 25 to it on 127.0.0.1). It is a final destination only:
// - every peer proves its onion address first (AUTH X-SMTORP-ONION, spec/smtorp.md) and may
//   then send only as that onion (or with the null sender for notices);
// - it accepts mail only for this node's own users at this node's own onion domain, and
//   never relays (other domains, source routes, "%" and "!" hacks, address literals: refused);
// - size is limited (SIZE, RFC 1870, and counted on the wire), and so is the message rate per
//   proven peer;
// - the greeting names only the onion the peer dialled; no host name, software or version.
// A message gets 250 only after the MailStore has it durably; duplicates by Message-ID
// (at-least-once delivery by peers) are acknowledged and not stored twice.
import { SMTPServer, type SMTPServerAddress, type SMTPServerAuthentication, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server'
import type { AddressInfo, Socket } from 'node:net'
import type { Logger } from '../log/index.ts'
import type { MailStore } from '../store/mail-store.ts'
import { parseAddress, AddressError } from '../../protocol/address.ts'
import { verifyOnionAuthResponse, OnionAuthError, ONION_AUTH_MECHANISM } from '../../protocol/smtorp-auth.ts'
import { messageIdOf, prependHeaders, rfc5322Date } from '../../protocol/message.ts'
import { registerOnionAuthMechanism, type OnionAuthAttempt } from './onion-auth-mechanism.ts'
import { RateLimiter } from './rate-limit.ts'
import { SmtpReplyError } from './errors.ts'

export interface SmtpInInit {
  /** This node's onion address, 56 characters without ".onion". */
  onion: string
  /** Local parts that receive mail here (the owner; "postmaster" is always added, RFC 5321 4.5.1). */
  users: string[]
  /** 0 picks a free port. Always bound to 127.0.0.1. */
  port: number
  maxMessageBytes: number
  maxMessagesPerPeerPerMinute: number
  maxConnections: number
}

export interface SmtpInComponents {
  logger: Logger
  store: MailStore
}

export interface SmtpIn {
  start (): Promise<void>
  stop (): Promise<void>
  /** The loopback port tor's onion service forwards to. */
  port (): number
}

/**
 * smtp-server writes each reply on its own. For a pipelined group (RFC 2920: the end of one
 * message, then MAIL, RCPT..., DATA of the next) that is several small writes, which tor
 * forwards as several cells, and the hops after it (Nagle meeting delayed ACKs) then stall
 * about 40 ms a time (bench/RESULTS.md). Everything written in one turn of the event loop is
 * held (cork) and sent as one write at the end of it.
 */
function sendRepliesTogether (socket: Socket): void {
  socket.setNoDelay(true)
  const write = socket.write
  socket.write = function (this: Socket, ...args: Parameters<Socket['write']>): boolean {
    if (socket.writableCorked === 0) {
      socket.cork()
      setImmediate(() => { socket.uncork() })
    }
    return (write as (...a: Parameters<Socket['write']>) => boolean).apply(this, args)
  } as Socket['write']
}

export function smtpIn (init: SmtpInInit, components: SmtpInComponents): SmtpIn {
  registerOnionAuthMechanism()
  const log = components.logger.child({ component: 'smtp-in' })
  const domain = `${init.onion}.onion`
  const users = new Set([...init.users.map(u => u.toLowerCase()), 'postmaster'])
  const limiter = new RateLimiter(init.maxMessagesPerPeerPerMinute)
  let boundPort = 0

  const server = new SMTPServer({
    name: domain,
    banner: '',
    lmtp: false,
    logger: false,
    disabledCommands: ['STARTTLS'], // the Tor circuit is the encrypted, server-authenticated channel
    authMethods: [ONION_AUTH_MECHANISM],
    authOptional: true, // checked in onMailFrom, so the reply can say what is missing
    allowInsecureAuth: true,
    disableReverseLookup: true,
    size: init.maxMessageBytes,
    maxClients: init.maxConnections,
    hideSMTPUTF8: true, // addresses are ASCII only (protocol/address.ts)
    useXClient: false,
    useXForward: false,
    socketTimeout: 60_000,
    closeTimeout: 5_000,
    heloResponse: '%s greets you',

    onAuth (auth: SMTPServerAuthentication | OnionAuthAttempt, session: SMTPServerSession, callback) {
      if (auth.method !== ONION_AUTH_MECHANISM || !('challenge' in auth)) {
        return callback(new SmtpReplyError(504, '5.5.4', 'Unrecognized authentication type'))
      }
      try {
        const peer = verifyOnionAuthResponse(init.onion, auth.challenge, auth.response)
        log.debug({ session: session.id, peer }, 'peer proved its onion address')
        callback(null, { user: peer })
      } catch (err) {
        if (err instanceof OnionAuthError) {
          log.info({ session: session.id, reason: err.message }, 'peer failed onion authentication')
          return callback(new SmtpReplyError(535, '5.7.8', `Onion authentication failed: ${err.message}`))
        }
        log.error({ session: session.id, err: (err as Error).message }, 'onion authentication crashed')
        callback(new SmtpReplyError(454, '4.7.0', 'Temporary authentication failure', false))
      }
    },

    onMailFrom (address: SMTPServerAddress, session: SMTPServerSession, callback) {
      const peer = session.user as string | undefined
      if (peer === undefined) {
        return callback(new SmtpReplyError(530, '5.7.0', `Authentication required: prove your onion address with AUTH ${ONION_AUTH_MECHANISM}`))
      }
      if (address.address !== '') {
        let sender
        try {
          sender = parseAddress(address.address)
        } catch (err) {
          return callback(new SmtpReplyError(553, '5.1.7', `Bad sender address: ${err instanceof AddressError ? err.message : 'unreadable'}`))
        }
        if (sender.route !== 'onion') {
          return callback(new SmtpReplyError(550, '5.7.1', 'Only onion senders are accepted here'))
        }
        if (sender.domain !== `${peer}.onion`) {
          return callback(new SmtpReplyError(550, '5.7.1', 'Sender domain is not the onion address you proved'))
        }
      }
      if (!limiter.take(peer)) {
        log.info({ session: session.id, peer }, 'peer is over its message rate, deferring')
        return callback(new SmtpReplyError(451, '4.7.1', 'Too many messages from your node, try again later'))
      }
      callback()
    },

    onRcptTo (address: SMTPServerAddress, session: SMTPServerSession, callback) {
      let recipient
      try {
        recipient = parseAddress(address.address)
      } catch (err) {
        return callback(new SmtpReplyError(550, '5.7.1', `Relaying denied: ${err instanceof AddressError ? err.message : 'unreadable address'}`))
      }
      if (recipient.domain !== domain) return callback(new SmtpReplyError(550, '5.7.1', 'Relaying denied: this node accepts mail only for its own onion domain'))
      if (!users.has(recipient.local)) return callback(new SmtpReplyError(550, '5.1.1', 'No such user here'))
      callback()
    },

    onData (stream: SMTPServerDataStream, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = []
      let length = 0
      stream.on('data', (chunk: Buffer) => {
        // Keep reading to the end of DATA but stop buffering past the limit.
        length += chunk.length
        if (length <= init.maxMessageBytes) chunks.push(chunk)
      })
      stream.on('error', (err: Error) => { log.info({ session: session.id, err: err.message }, 'DATA stream failed') })
      stream.on('end', () => {
        if (stream.sizeExceeded || length > init.maxMessageBytes) {
          return callback(new SmtpReplyError(552, '5.3.4', `Message too big: the limit is ${init.maxMessageBytes} bytes`))
        }
        const peer = session.user as string
        const body = Buffer.concat(chunks, length)
        const raw = prependHeaders(body, [`Received: from ${peer}.onion by ${domain} with ESMTPA id ${session.id}; ${rfc5322Date(new Date())}`])
        const messageId = messageIdOf(body)
        components.store.add({
          folder: 'Inbox',
          raw,
          from: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map(r => r.address.toLowerCase()),
          ...(messageId !== undefined ? { messageId } : {})
        }).then(result => {
          log.info({ session: session.id, peer, id: result.meta.id, duplicate: result.duplicate, size: length }, result.duplicate ? 'dropped a duplicate of a stored message' : 'stored an inbound message')
          callback(null, result.duplicate ? '2.0.0 Already delivered' : `2.0.0 Stored as ${result.meta.id}`)
        }, (err: Error) => {
          log.error({ session: session.id, err: err.message }, 'could not store an inbound message')
          callback(new SmtpReplyError(451, '4.3.0', 'Local error storing the message, try again later', false))
        })
      })
    }
  })
  server.server.on('connection', (socket: Socket) => { sendRepliesTogether(socket) })
  server.on('error', err => { log.warn({ err: err.message }, 'SMTP server error') })

  return {
    async start () {
      await new Promise<void>((resolve, reject) => {
        server.server.once('error', reject)
        server.listen(init.port, '127.0.0.1', () => {
          server.server.off('error', reject)
          boundPort = (server.server.address() as AddressInfo).port
          resolve()
        })
      })
      log.info({ port: boundPort }, 'SMTorP endpoint listening on loopback')
    },
    async stop () {
      await new Promise<void>(resolve => server.close(() => resolve()))
    },
    port () { return boundPort }
  }
}
