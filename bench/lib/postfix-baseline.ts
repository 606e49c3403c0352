/**
 * The reference figure for the node's submission benchmark: Postfix 3.7,
 * default settings, receiving smtp-source's load on loopback and delivering
 * to a Maildir, measured on this machine.
 *
 * `perSecond` is the ingest rate: messages accepted (250 after DATA, so
 * queued durably by Postfix's cleanup) per second of smtp-source's run.
 * The count is then checked on the receiver side: all messages must reach the
 * Maildir, and `deliveredPerSecond` says how fast that happened end to end.
 * Postfix measured against itself varies by about 25% from run to run.
 */
import { startPostfix } from '../../test/harness/postfix.ts'
import { runSmtpSource } from './smtp-source.ts'

export interface PostfixBaselineInit {
  /** Total messages. */
  messages: number
  /** Parallel SMTP sessions. Default 20. */
  sessions?: number
  /** Payload bytes per message. Default 5120. */
  size?: number
  /** Upper bound for sending plus delivery. Default 180 s. */
  timeoutMs?: number
}

export interface PostfixBaselineResult {
  /** Accepted messages per second (smtp-source's wall time). */
  perSecond: number
  messages: number
  /** smtp-source's wall time. */
  seconds: number
  /** Seconds from the start of sending until the last message was in the Maildir. */
  deliveredSeconds: number
  deliveredPerSecond: number
}

export async function measurePostfixIngest (init: PostfixBaselineInit): Promise<PostfixBaselineResult> {
  const timeoutMs = init.timeoutMs ?? 180_000
  const sink = await startPostfix({ role: 'sink' })
  try {
    const started = process.hrtime.bigint()
    const sent = await runSmtpSource({
      host: sink.host,
      port: sink.port,
      messages: init.messages,
      sessions: init.sessions ?? 20,
      messageSize: init.size ?? 5120,
      timeoutMs,
    })
    await sink.waitForCount(init.messages, timeoutMs)
    const deliveredSeconds = Number(process.hrtime.bigint() - started) / 1e9
    const delivered = await sink.count()
    if (delivered !== init.messages) {
      throw new Error(`Postfix sink delivered ${delivered} messages, expected ${init.messages}`)
    }
    return {
      perSecond: sent.perSecond,
      messages: sent.messages,
      seconds: sent.seconds,
      deliveredSeconds,
      deliveredPerSecond: delivered / deliveredSeconds,
    }
  } finally {
    await sink.stop()
  }
}

// `tsx bench/lib/postfix-baseline.ts [messages] [sessions] [size]` prints the figure.
if (import.meta.url === `file://${process.argv[1]}`) {
  const [messages = '2000', sessions = '20', size = '5120'] = process.argv.slice(2)
  const result = await measurePostfixIngest({ messages: Number(messages), sessions: Number(sessions), size: Number(size) })
  console.log(JSON.stringify(result, (_k, v: unknown) => typeof v === 'number' && !Number.isInteger(v) ? Number(v.toFixed(2)) : v))
}
