// One logger for the whole node (pino, as fastify uses), with a child per component.
// Log lines are sentences; they never carry secrets, passphrases or message text.
import { pino, type Logger } from 'pino'

export type { Logger }

export interface LoggerInit {
  level?: string
  /** Write to this file descriptor instead of stdout (2 = stderr). */
  destination?: number | string
}

export function createLogger (init: LoggerInit = {}): Logger {
  const level = init.level ?? process.env.SMTORP_LOG_LEVEL ?? 'info'
  return pino({ level, base: undefined }, pino.destination({ dest: init.destination ?? 1, sync: true }))
}

/** A logger that drops everything, for tests that do not look at logs. */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}
