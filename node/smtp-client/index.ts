// The node's SMTP client, for SMTorP peers over Tor and for the legacy relay.
// One connection object per TCP stream, used for one transaction at a time and reused for
// the next (RFC 5321 3.3: a new MAIL after a finished transaction needs no RSET). With
// PIPELINING (RFC 2920) MAIL, every RCPT and DATA go out in one write, so a message costs two
// round trips on an open connection: one for the envelope, one for the body.
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls'
import { connect as netConnect, type Socket } from 'node:net'
import { ReplyParser, dotStuff, ehloExtensions, replyText, SmtpProtocolError, type SmtpReply } from '../../protocol/smtp.ts'
import { ONION_AUTH_MECHANISM, onionAuthResponse } from '../../protocol/smtorp-auth.ts'
import type { OnionKey } from '../../protocol/onion.ts'

export { connectViaSocks, SocksError } from './socks.ts'

/** A failure talking to a server; `permanent` says whether trying again later cannot help. */
export class SmtpClientError extends Error {
  override name = 'SmtpClientError'
  constructor (message: string, readonly permanent: boolean, readonly reply?: SmtpReply, options?: ErrorOptions) {
    super(message, options)
  }
}

/** A socket error in words a person can read ("connection refused"), from its errno code. */
export function describeSocketError (err: Error): string {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'ECONNREFUSED': return 'connection refused'
    case 'ENOTFOUND': return 'no such host name'
    case 'EAI_AGAIN': return 'the host name could not be looked up (no DNS?)'
    case 'ETIMEDOUT': return 'the connection timed out'
    case 'EHOSTUNREACH': case 'ENETUNREACH': return 'the host cannot be reached from here'
    case 'ECONNRESET': return 'the connection was reset'
    default: return err.message
  }
}

export interface Envelope {
  from: string
  to: string[]
  raw: Buffer
}

export interface RecipientResult {
  address: string
  ok: boolean
  /** The server's words, for the sender's notice and the queue status. */
  reply: string
  permanent: boolean
}

export interface SmtpConnectionInit {
  /** Name we give in EHLO (our onion domain, or a neutral name; never the host name). */
  ehloName: string
  /** How long to wait for each reply. */
  timeoutMs: number
  /** How long to wait for the reply to the end of the message (RFC 5321 4.5.3.2.6: 10 minutes). */
  dataTimeoutMs?: number
}

/** Recipients accepted at RCPT share the server's answer to the end of data. */
function finalResults (results: RecipientResult[], final: SmtpReply): RecipientResult[] {
  const ok = final.code === 250
  return results.map(r => r.ok ? { ...r, ok, reply: replyText(final), permanent: !ok && final.code >= 500 } : r)
}

export class SmtpConnection {
  private readonly parser = new ReplyParser()
  private replies: SmtpReply[] = []
  private waiter: (() => void) | undefined
  private failure: Error | undefined
  extensions = new Map<string, string>()
  private constructor (private socket: Socket | TLSSocket, private readonly init: SmtpConnectionInit) {
    this.attach(socket)
  }

  /** Take over a connected socket: read the greeting and say EHLO. */
  static async open (socket: Socket | TLSSocket, init: SmtpConnectionInit): Promise<SmtpConnection> {
    const connection = new SmtpConnection(socket, init)
    try {
      const greeting = await connection.read()
      if (greeting.code !== 220) throw connection.refusal('greeting', greeting)
      await connection.ehlo()
      return connection
    } catch (err) {
      connection.close()
      throw err
    }
  }

  /** Plain TCP connection (the relay, when not through Tor). */
  static async dial (host: string, port: number, timeoutMs: number): Promise<Socket> {
    return await new Promise((resolve, reject) => {
      const socket = netConnect({ host, port })
      const timer = setTimeout(() => { socket.destroy(); reject(new SmtpClientError(`no connection to ${host}:${port} within ${timeoutMs} ms`, false)) }, timeoutMs)
      socket.once('connect', () => { clearTimeout(timer); socket.setNoDelay(true); resolve(socket) })
      socket.once('error', err => { clearTimeout(timer); reject(new SmtpClientError(`cannot connect to ${host}:${port}: ${describeSocketError(err)}`, false, undefined, { cause: err })) })
    })
  }

  get usable (): boolean {
    return this.failure === undefined && !this.socket.destroyed
  }

  private attach (socket: Socket | TLSSocket): void {
    socket.setEncoding?.('latin1')
    socket.on('data', (chunk: string) => {
      try {
        this.replies.push(...this.parser.push(chunk))
      } catch (err) {
        this.fail(new SmtpClientError(`the server broke the protocol: ${(err as SmtpProtocolError).message}`, false))
        socket.destroy()
      }
      this.waiter?.()
    })
    socket.on('error', err => { this.fail(new SmtpClientError(`connection error: ${err.message}`, false)) })
    socket.on('close', () => { this.fail(new SmtpClientError('the server closed the connection', false)) })
  }

  private fail (err: Error): void {
    this.failure ??= err
    this.waiter?.()
  }

  private async read (timeoutMs = this.init.timeoutMs): Promise<SmtpReply> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const reply = this.replies.shift()
      if (reply !== undefined) return reply
      if (this.failure !== undefined) throw this.failure
      const wait = deadline - Date.now()
      if (wait <= 0) {
        const err = new SmtpClientError(`no reply from the server within ${timeoutMs} ms`, false)
        this.fail(err)
        this.socket.destroy()
        throw err
      }
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, wait)
        this.waiter = () => { clearTimeout(timer); resolve() }
      })
      this.waiter = undefined
    }
  }

  private write (data: string | Buffer): void {
    if (this.failure !== undefined) throw this.failure
    this.socket.write(data)
  }

  private async command (line: string): Promise<SmtpReply> {
    this.write(`${line}\r\n`)
    return await this.read()
  }

  private refusal (what: string, reply: SmtpReply): SmtpClientError {
    return new SmtpClientError(`server refused ${what}: ${replyText(reply)}`, reply.code >= 500, reply)
  }

  private async ehlo (): Promise<void> {
    const reply = await this.command(`EHLO ${this.init.ehloName}`)
    if (reply.code !== 250) throw this.refusal('EHLO', reply)
    this.extensions = ehloExtensions(reply)
  }

  /** RFC 3207 STARTTLS, then EHLO again over TLS. */
  async startTls (options: ConnectionOptions): Promise<void> {
    if (!this.extensions.has('STARTTLS')) throw new SmtpClientError('the server does not offer STARTTLS', false)
    const reply = await this.command('STARTTLS')
    if (reply.code !== 220) throw this.refusal('STARTTLS', reply)
    const plain = this.socket
    plain.removeAllListeners('data')
    plain.removeAllListeners('close')
    plain.removeAllListeners('error')
    const secure = await new Promise<TLSSocket>((resolve, reject) => {
      const tls = tlsConnect({ ...options, socket: plain }, () => { resolve(tls) })
      tls.once('error', err => { reject(new SmtpClientError(`TLS handshake failed: ${err.message}`, false, undefined, { cause: err })) })
    })
    this.socket = secure
    this.attach(secure)
    await this.ehlo()
  }

  get secure (): boolean {
    return 'encrypted' in this.socket && this.socket.encrypted
  }

  /** SMTorP sender-node authentication (spec/smtorp.md). */
  async authOnion (key: OnionKey, serverOnion: string): Promise<void> {
    if (!(this.extensions.get('AUTH') ?? '').toUpperCase().split(' ').includes(ONION_AUTH_MECHANISM)) {
      throw new SmtpClientError(`the peer does not offer AUTH ${ONION_AUTH_MECHANISM}; it may not be an smtorp node`, true)
    }
    const challenge = await this.command(`AUTH ${ONION_AUTH_MECHANISM}`)
    if (challenge.code !== 334) throw this.refusal('onion authentication', challenge)
    const result = await this.command(onionAuthResponse(key, serverOnion, challenge.lines[0] ?? ''))
    if (result.code !== 235) throw this.refusal('onion authentication', result)
  }

  /** RFC 4616 PLAIN inside RFC 4954 AUTH, for the relay. */
  async authPlain (username: string, password: string): Promise<void> {
    const token = Buffer.from(`\0${username}\0${password}`, 'utf8').toString('base64')
    const reply = await this.command(`AUTH PLAIN ${token}`)
    if (reply.code !== 235) throw this.refusal('our relay credentials', reply)
  }

  /**
   * One mail transaction. Resolves with a result per recipient; throws SmtpClientError when
   * the whole transaction failed (then every recipient shares that fate).
   */
  async send (envelope: Envelope): Promise<RecipientResult[]> {
    const [outcome] = await this.sendBatch([envelope])
    if (outcome instanceof SmtpClientError) throw outcome
    return outcome!
  }

  /**
   * Several transactions back to back. With PIPELINING (RFC 2920 3.1 allows the end of data
   * to start a group) each message's body goes out in the same write as the next message's
   * MAIL, RCPT and DATA, so a burst costs about one round trip per message instead of two.
   * Each envelope gets its recipients' results, or the error that failed it as a whole.
   */
  async sendBatch (envelopes: Envelope[]): Promise<Array<RecipientResult[] | SmtpClientError>> {
    const outcomes: Array<RecipientResult[] | SmtpClientError | undefined> = envelopes.map(() => undefined)
    const pipelining = this.extensions.has('PIPELINING')
    const sizeLimit = Number(this.extensions.get('SIZE') ?? '0')
    let carry: Array<string | Buffer> = [] // written before the next envelope's commands
    let awaitingFinal: { index: number, results: RecipientResult[] } | undefined
    let awaitingReset = false
    try {
      for (let i = 0; i <= envelopes.length; i++) {
        const envelope = envelopes[i]
        if (envelope !== undefined && sizeLimit > 0 && envelope.raw.length > sizeLimit) {
          outcomes[i] = new SmtpClientError(`the message (${envelope.raw.length} bytes) is larger than the server accepts (${sizeLimit} bytes)`, true)
          continue
        }
        const commands = envelope !== undefined ? this.envelopeCommands(envelope) : []
        this.write(Buffer.concat([...carry, ...(pipelining ? commands : [])].map(part => typeof part === 'string' ? Buffer.from(part, 'latin1') : part)))
        carry = []
        if (awaitingFinal !== undefined) {
          outcomes[awaitingFinal.index] = finalResults(awaitingFinal.results, await this.read(this.init.dataTimeoutMs ?? 600_000))
          awaitingFinal = undefined
        }
        if (awaitingReset) {
          awaitingReset = false
          const reset = await this.read()
          if (reset.code !== 250) throw new SmtpClientError(`the server refused RSET: ${replyText(reset)}`, false, reset)
        }
        if (envelope === undefined) break
        const replies: SmtpReply[] = []
        for (const command of commands) {
          if (!pipelining) this.write(command)
          const reply = await this.read()
          replies.push(reply)
          if (!pipelining && command.startsWith('MAIL') && reply.code !== 250) break
        }
        const mail = replies[0]!
        const results: RecipientResult[] = envelope.to.map((address, j) => {
          const reply = replies[j + 1]
          if (reply === undefined) return { address, ok: false, reply: 'not attempted', permanent: false }
          return { address, ok: reply.code === 250 || reply.code === 251, reply: replyText(reply), permanent: reply.code >= 500 }
        })
        const data = replies[envelope.to.length + 1]
        if (mail.code === 250 && results.some(r => r.ok) && data?.code === 354) {
          carry = [dotStuff(envelope.raw)]
          awaitingFinal = { index: i, results }
          continue
        }
        if (data?.code === 354) {
          // RFC 2920 3.1: with no accepted recipient DATA must fail. A server that says 354
          // anyway would take an empty message on "."; drop the connection instead.
          outcomes[i] = results
          throw new SmtpClientError('the server accepted DATA without recipients', false)
        }
        outcomes[i] = mail.code !== 250 ? this.refusal('the sender', mail) : results.some(r => r.ok) ? this.refusal('DATA', data ?? mail) : results
        carry = ['RSET\r\n']
        awaitingReset = true
      }
    } catch (err) {
      if (!(err instanceof SmtpClientError)) throw err
      this.close()
      return outcomes.map(outcome => outcome ?? err)
    }
    return outcomes.map(outcome => outcome!)
  }

  private envelopeCommands (envelope: Envelope): string[] {
    const params: string[] = []
    if (this.extensions.has('SIZE')) params.push(`SIZE=${envelope.raw.length}`)
    if (this.extensions.has('8BITMIME') && envelope.raw.some(byte => byte > 127)) params.push('BODY=8BITMIME')
    return [`MAIL FROM:<${envelope.from}>${params.map(p => ` ${p}`).join('')}`, ...envelope.to.map(to => `RCPT TO:<${to}>`), 'DATA'].map(c => `${c}\r\n`)
  }

  /** Say goodbye, waiting at most `timeoutMs` for the answer (RFC 5321 4.1.1.10), then close. */
  async quit (timeoutMs = 2000): Promise<void> {
    if (!this.usable) return
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([this.command('QUIT'), new Promise(resolve => { timer = setTimeout(resolve, timeoutMs) })])
    } catch {
      // The server may close first; nothing is lost either way.
    } finally {
      clearTimeout(timer)
    }
    this.close()
  }

  close (): void {
    this.failure ??= new SmtpClientError('connection closed', false)
    this.socket.destroy()
  }
}
