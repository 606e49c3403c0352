// What the harnesses for real servers (postfix.ts, dovecot.ts) share: a free loopback port,
// and killing what is left of their processes when the test process ends.
import { createServer } from 'node:net'

/** Something a harness started that can be killed synchronously. */
export interface Killable {
  killNow (): void
}

const running = new Set<Killable>()
let exitHookInstalled = false

/**
 * Kill `instance` when the process ends (normally, or by SIGINT/SIGTERM), synchronously,
 * since only sync work runs in 'exit'. Returns the function that forgets it again.
 */
export function killOnExit (instance: Killable): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.on('exit', () => {
      for (const r of running) r.killNow()
    })
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        for (const r of running) r.killNow()
        // Let the default action (termination) happen now that our handler is gone.
        process.kill(process.pid, signal)
      })
    }
  }
  running.add(instance)
  return () => { running.delete(instance) }
}

/** A free TCP port on 127.0.0.1 (there is a small race between closing it here and the server binding it). */
export async function freeLoopbackPort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port)
        else reject(new Error('could not pick a free loopback port'))
      })
    })
  })
}
