// What the harnesses for real servers (postfix.ts, dovecot.ts) share: a free loopback port,
// killing what is left of their processes when the test process ends, reading a server's
// greeting, and the end of its log for an error message.
import { connect, createServer } from 'node:net'
import { readFile } from 'node:fs/promises'

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

/** Resolves with the first line the server on 127.0.0.1:`port` sends, then says `farewell`; or rejects. */
export async function readGreeting (port: number, farewell: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port })
    let data = ''
    socket.setTimeout(2000, () => { socket.destroy(); reject(new Error('no greeting')) })
    socket.on('error', reject)
    socket.on('data', (d: Buffer) => {
      data += d.toString('latin1')
      if (data.includes('\n')) {
        socket.end(farewell)
        socket.destroy()
        resolve(data.split('\r\n')[0] ?? '')
      }
    })
  })
}

/** The last lines of a log file, or "(no log)". */
export async function tail (file: string, lines = 30): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}
