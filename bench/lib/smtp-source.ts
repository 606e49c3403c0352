/**
 * Runs Postfix's SMTP load generator, smtp-source(1), against host:port.
 *
 * Options used (smtp-source(1) of Postfix 3.7):
 *   -4 IPv4, -d keep each session open and send the next message over it,
 *   -s parallel sessions, -l payload length in bytes (headers not counted),
 *   -m total messages, -f sender, -t recipient, -M HELO name,
 *   -c print a running count of completed DATA commands (how we count what
 *      the server accepted: the counter only moves on a 2xx reply to DATA's end).
 * smtp-source aborts with a fatal error and a non-zero status on any reply it
 * does not expect (no -A), so a clean exit with count == messages means every
 * message was accepted. Callers that care about delivery should still check
 * the receiver side (see bench/lib/postfix-baseline.ts).
 * smtp-source does not pipeline and does not speak STARTTLS.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'

export const SMTP_SOURCE = '/usr/sbin/smtp-source'

export interface SmtpSourceInit {
  host: string
  port: number
  /** Parallel SMTP sessions (-s). Default 20. */
  sessions?: number
  /** Payload bytes per message, headers excluded (-l). Default 5120. */
  messageSize?: number
  /** Total messages (-m). */
  messages: number
  /** Envelope sender (-f). Default bench@source.test. */
  from?: string
  /** Envelope recipient (-t). Default bench@sink.test. */
  to?: string
  /** Reuse each connection for the next message (-d). Default true. */
  reuseConnections?: boolean
  /** Kill smtp-source after this long. Default 120 s. */
  timeoutMs?: number
}

export interface SmtpSourceResult {
  /** Messages whose DATA the server accepted, from smtp-source's own counter. */
  messages: number
  /** Wall-clock seconds from spawn to exit. */
  seconds: number
  perSecond: number
}

export class SmtpSourceError extends Error {
  override name = 'SmtpSourceError'
}

export async function runSmtpSource (init: SmtpSourceInit): Promise<SmtpSourceResult> {
  if (!existsSync(SMTP_SOURCE)) throw new SmtpSourceError(`${SMTP_SOURCE} not found: install the Debian postfix package`)
  if (!Number.isInteger(init.messages) || init.messages < 1) throw new SmtpSourceError(`messages must be a positive integer, got ${init.messages}`)
  const sessions = init.sessions ?? 20
  const args = [
    '-4', '-c',
    ...((init.reuseConnections ?? true) ? ['-d'] : []),
    '-s', String(sessions),
    '-l', String(init.messageSize ?? 5120),
    '-m', String(init.messages),
    '-f', init.from ?? 'bench@source.test',
    '-t', init.to ?? 'bench@sink.test',
    '-M', 'smtp-source.test',
    `${init.host}:${init.port}`,
  ]
  const timeoutMs = init.timeoutMs ?? 120_000

  const started = process.hrtime.bigint()
  const child = spawn(SMTP_SOURCE, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => {
    // The counter is rewritten with \r; keep only the tail so long runs stay small.
    stdout = (stdout + d.toString('latin1')).slice(-256)
  })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })

  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const { code, signal } = await new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', (code, signal) => resolve({ code, signal }))
  }).finally(() => clearTimeout(timer))
  const seconds = Number(process.hrtime.bigint() - started) / 1e9

  const counts = stdout.split(/[\r\n]+/).map((s) => s.trim()).filter((s) => /^\d+$/.test(s))
  const accepted = counts.length > 0 ? Number(counts[counts.length - 1]) : 0
  if (signal !== null) throw new SmtpSourceError(`smtp-source was killed (${signal}) after ${seconds.toFixed(1)} s with ${accepted} of ${init.messages} messages accepted${signal === 'SIGKILL' ? ` (timeout ${timeoutMs} ms)` : ''}`)
  if (code !== 0) throw new SmtpSourceError(`smtp-source exited with status ${code} after ${accepted} of ${init.messages} messages: ${stderr.trim()}`)
  if (accepted !== init.messages) throw new SmtpSourceError(`smtp-source reported ${accepted} accepted messages, expected ${init.messages}: ${stderr.trim()}`)
  return { messages: accepted, seconds, perSecond: accepted / seconds }
}
