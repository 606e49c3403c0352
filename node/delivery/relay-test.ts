// Try relay settings before using them: connect (directly or through Tor), read the greeting,
// EHLO, STARTTLS (RFC 3207) when offered or required, AUTH PLAIN (RFC 4954, RFC 4616) when a
// user name is set, then QUIT (RFC 5321 4.1.1.10). Never MAIL: nothing is sent. The answer is
// one sentence for the owner, saying what worked or what failed, never the password.
import { isIP, type Socket } from 'node:net'
import type { ConnectionOptions } from 'node:tls'
import type { RelayConfig } from '../config/index.ts'
import { SmtpConnection, SmtpClientError, connectViaSocks, describeSocketError } from '../smtp-client/index.ts'
import { replyText } from '../../protocol/smtp.ts'

export interface RelayTestOptions {
  /** Tor's SOCKS port, needed when the settings say `viaTor`. */
  socksEndpoint?: () => { host: string, port: number }
  /** For the whole test (default 15 s). */
  timeoutMs?: number
}

export interface RelayTestResult {
  ok: boolean
  /** A sentence for the owner: what worked, or what failed and why. */
  message: string
}

/** TLS options for the relay, shared with delivery so the test checks what sending does. */
export function relayTlsOptions (relay: RelayConfig): ConnectionOptions {
  // RFC 6066 3: no server name indication for an IP address.
  return { ...(isIP(relay.host) === 0 ? { servername: relay.host } : {}), host: relay.host, rejectUnauthorized: relay.verifyCertificate, minVersion: 'TLSv1.2' }
}

function seconds (ms: number): string {
  const n = Math.max(1, Math.round(ms / 1000))
  return `${n} second${n === 1 ? '' : 's'}`
}

/** A failed step, already in the owner's words. */
class RelayTestFailure extends Error {
  override name = 'RelayTestFailure'
}

/** Why a TLS handshake failed, in words, from node's certificate error codes. */
function describeTlsFailure (relay: RelayConfig, err: Error): string {
  const cause = (err.cause ?? err) as NodeJS.ErrnoException
  const advice = 'Turn off certificate checking only for a relay you run yourself.'
  switch (cause.code) {
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
      return `The relay's certificate is self-signed, so it cannot be checked. ${advice}`
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
      return `The relay's certificate is not signed by an authority this computer trusts. ${advice}`
    case 'CERT_HAS_EXPIRED':
      return 'The relay\'s certificate has expired.'
    case 'CERT_NOT_YET_VALID':
      return 'The relay\'s certificate is not valid yet (is this computer\'s clock right?).'
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `The relay's certificate is not for ${relay.host}.`
    default:
      return `The TLS handshake with the relay failed: ${cause.message}.`
  }
}

/** The reply in a refusal, or the error's own words when the server said nothing. */
function said (err: unknown): string {
  if (err instanceof SmtpClientError && err.reply !== undefined) return replyText(err.reply)
  return (err as Error).message
}

export async function testRelay (relay: RelayConfig, options: RelayTestOptions = {}): Promise<RelayTestResult> {
  const timeoutMs = options.timeoutMs ?? 15_000
  const where = `${relay.host}:${relay.port}`
  let socket: Socket | undefined
  let connection: SmtpConnection | undefined
  let done = false

  async function run (): Promise<RelayTestResult> {
    try {
      if (relay.viaTor) {
        if (options.socksEndpoint === undefined) throw new RelayTestFailure('The settings say to reach the relay through Tor, but Tor is not available yet.')
        let socks
        try {
          socks = options.socksEndpoint()
        } catch (err) {
          throw new RelayTestFailure(`The settings say to reach the relay through Tor, but Tor is not ready: ${(err as Error).message}.`)
        }
        try {
          socket = await connectViaSocks({ proxyHost: socks.host, proxyPort: socks.port, host: relay.host, port: relay.port, isolation: 'relay', timeoutMs })
        } catch (err) {
          throw new RelayTestFailure(`Could not connect to ${where} through Tor: ${(err as Error).message}.`)
        }
      } else {
        try {
          socket = await SmtpConnection.dial(relay.host, relay.port, timeoutMs)
        } catch (err) {
          const cause = (err as Error).cause
          throw new RelayTestFailure(`Could not connect to ${where}: ${cause instanceof Error ? describeSocketError(cause) : `no answer within ${seconds(timeoutMs)}`}.`)
        }
      }
      if (done) throw new RelayTestFailure('timed out') // connected too late; the finally below closes it
      try {
        connection = await SmtpConnection.open(socket, { ehloName: 'smtorp.invalid', timeoutMs })
      } catch (err) {
        throw new RelayTestFailure(`Connected to ${where}, but it did not speak SMTP as expected: ${said(err)}.`)
      }
      let tls = false
      if (connection.extensions.has('STARTTLS')) {
        try {
          await connection.startTls(relayTlsOptions(relay))
        } catch (err) {
          if (err instanceof SmtpClientError && err.reply !== undefined) throw new RelayTestFailure(`The relay refused STARTTLS: ${replyText(err.reply)}.`)
          throw new RelayTestFailure(describeTlsFailure(relay, err as Error))
        }
        tls = true
      } else if (relay.requireTls) {
        throw new RelayTestFailure('The relay does not offer STARTTLS, and the settings require it.')
      }
      let login = 'no login (no user name is set)'
      if (relay.username !== undefined) {
        try {
          await connection.authPlain(relay.username, relay.password ?? '')
        } catch (err) {
          const offered = connection.extensions.has('AUTH') ? '' : ' (it does not offer AUTH on this connection)'
          throw new RelayTestFailure(`The relay refused the login${offered}: ${said(err)}.`)
        }
        login = `logged in as ${relay.username}`
      }
      await connection.quit()
      const tlsWords = tls ? (relay.verifyCertificate ? 'TLS on' : 'TLS on (certificate not checked)') : 'TLS off'
      return { ok: true, message: `Connected to ${where}${relay.viaTor ? ' through Tor' : ''}, ${tlsWords}, ${login}.` }
    } catch (err) {
      if (err instanceof RelayTestFailure) return { ok: false, message: err.message }
      return { ok: false, message: `The test failed unexpectedly: ${(err as Error).message}.` }
    } finally {
      // Timed out while a step was under way: the answer is given, close what came late.
      if (done) {
        connection?.close()
        socket?.destroy()
      }
    }
  }

  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<RelayTestResult>(resolve => {
    timer = setTimeout(() => { resolve({ ok: false, message: `The relay ${where} did not answer within ${seconds(timeoutMs)}.` }) }, timeoutMs)
  })
  try {
    return await Promise.race([run(), timedOut])
  } finally {
    done = true
    clearTimeout(timer)
    connection?.close()
    socket?.destroy()
  }
}
