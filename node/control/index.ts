// The node's local control socket: <dataDir>/control.sock, a Unix socket with mode 0600, so
// only the owner's account can ask. One JSON request per line, one JSON answer per line.
// `smtorp status` and `smtorp queue` use it; the web UI will talk to the node in-process.
import { createServer, createConnection, type Server } from 'node:net'
import { chmod, rm } from 'node:fs/promises'

export type ControlRequest =
  | { command: 'status' } | { command: 'queue' } | { command: 'retry' } | { command: 'lock' } | { command: 'scrub' } | { command: 'backup' }
  // Secrets travel only over this socket (mode 0600 in the data directory) and are never logged.
  | { command: 'unlock', secret: { passphrase: string } | { recoveryCode: string } }
  | { command: 'passphrase', passphrase: string }
  // Friends and recovery shares (node/friends/, node/recovery/custody.ts).
  | { command: 'friends' } | { command: 'backup-friends' } | { command: 'audit' } | { command: 'recovery-requests' }
  | { command: 'invite', quotaMiB?: number } | { command: 'accept', code: string, quotaMiB?: number } | { command: 'unfriend', onion: string }
  | { command: 'custodians', appoint?: string[], threshold?: number, check?: boolean }
  | { command: 'approve', id: string } | { command: 'refuse', id: string }

export interface ControlInit {
  path: string
}

export interface ControlHandlers {
  handle (request: ControlRequest): Promise<unknown>
}

export class ControlError extends Error {
  override name = 'ControlError'
}

const MAX_REQUEST = 64 * 1024

export function controlServer (init: ControlInit, handlers: ControlHandlers): { start (): Promise<void>, stop (): Promise<void> } {
  let server: Server | undefined
  return {
    async start () {
      await rm(init.path, { force: true })
      server = createServer(socket => {
        let buffer = ''
        socket.setEncoding('utf8')
        socket.on('error', () => { socket.destroy() })
        socket.on('data', (chunk: string) => {
          buffer += chunk
          if (buffer.length > MAX_REQUEST) { socket.destroy(); return }
          const newline = buffer.indexOf('\n')
          if (newline < 0) return
          const line = buffer.slice(0, newline)
          buffer = buffer.slice(newline + 1)
          let request: ControlRequest
          try {
            request = JSON.parse(line) as ControlRequest
          } catch {
            socket.end(`${JSON.stringify({ error: 'the request is not JSON' })}\n`)
            return
          }
          handlers.handle(request).then(
            result => { socket.end(`${JSON.stringify({ result })}\n`) },
            (err: Error) => { socket.end(`${JSON.stringify({ error: err.message })}\n`) })
        })
      })
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject)
        server!.listen(init.path, () => { server!.off('error', reject); resolve() })
      })
      await chmod(init.path, 0o600)
    },
    async stop () {
      await new Promise<void>(resolve => { if (server === undefined) resolve(); else server.close(() => resolve()) })
      await rm(init.path, { force: true })
    }
  }
}

/** Ask a running node. Throws ControlError("the node is not running") when nobody answers. */
export async function askNode (path: string, request: ControlRequest, timeoutMs = 10_000): Promise<unknown> {
  return await new Promise((resolve, reject) => {
    const socket = createConnection(path)
    let answer = ''
    const timer = setTimeout(() => { socket.destroy(); reject(new ControlError('the node did not answer in time')) }, timeoutMs)
    socket.setEncoding('utf8')
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`))
    socket.on('data', (chunk: string) => { answer += chunk })
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      reject(new ControlError(err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'the node is not running' : err.message))
    })
    socket.on('end', () => {
      clearTimeout(timer)
      try {
        const parsed = JSON.parse(answer) as { result?: unknown, error?: string }
        if (parsed.error !== undefined) reject(new ControlError(parsed.error))
        else resolve(parsed.result)
      } catch {
        reject(new ControlError('the node gave an answer that is not JSON'))
      }
    })
  })
}
