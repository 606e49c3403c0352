// Which TCP connections a process has open, read from /proc (Linux only), for tests of
// "no connection leaves the node except through Tor": list a process's connections now
// (`tcpConnectionsOf`), or sample them over a period and collect every remote endpoint
// seen (`watchConnections`).
//
// How: /proc/<pid>/fd names the process's sockets as `socket:[<inode>]`; /proc/<pid>/net/tcp
// and tcp6 list every TCP socket of the process's network namespace with its inode, so the
// process's own connections are the rows whose inode is among its fds. Only established
// and half-open outgoing (SYN-SENT) connections are returned; listening sockets and sockets
// in the closing states are not.
//
// Limits: sampling sees a connection only if it is open at a sample; a connection opened
// and closed between two samples is missed. Pick intervalMs below the lifetime of what you
// are looking for, and have the test hold its connections open when it can.
import { readdir, readlink, readFile } from 'node:fs/promises'

export interface Endpoint {
  host: string
  port: number
}

export interface TcpConnection {
  local: Endpoint
  remote: Endpoint
  state: 'established' | 'syn-sent'
  inode: number
}

// include/net/tcp_states.h
const STATES: Record<string, TcpConnection['state']> = { '01': 'established', '02': 'syn-sent' }

/** The process's established and SYN-SENT TCP connections (IPv4 and IPv6). */
export async function tcpConnectionsOf (pid: number): Promise<TcpConnection[]> {
  const inodes = await socketInodesOf(pid)
  const out: TcpConnection[] = []
  for (const table of ['tcp', 'tcp6']) {
    let text: string
    try {
      text = await readFile(`/proc/${pid}/net/${table}`, 'utf8')
    } catch (err) {
      // A kernel without IPv6 has no tcp6 table.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && table === 'tcp6') continue
      throw err
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 10) continue
      const state = STATES[fields[3]!]
      const inode = Number(fields[9])
      if (state === undefined || !inodes.has(inode)) continue
      out.push({ local: parseEndpoint(fields[1]!), remote: parseEndpoint(fields[2]!), state, inode })
    }
  }
  return out
}

/** Inodes of the sockets among the process's file descriptors. */
async function socketInodesOf (pid: number): Promise<Set<number>> {
  const dir = `/proc/${pid}/fd`
  const inodes = new Set<number>()
  for (const fd of await readdir(dir)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(await readlink(`${dir}/${fd}`))
      if (m !== null) inodes.add(Number(m[1]))
    } catch {
      // The descriptor was closed between readdir and readlink: it is not open any more.
    }
  }
  return inodes
}

/**
 * `0100007F:1F90` (IPv4: 4 bytes little-endian) or 32 hex digits (IPv6: four 32-bit words,
 * each little-endian), then the port in hex. IPv4-mapped IPv6 addresses come out as IPv4.
 */
export function parseEndpoint (field: string): Endpoint {
  const [hex, portHex] = field.split(':')
  if (hex === undefined || portHex === undefined) throw new Error(`malformed /proc/net/tcp address ${field}`)
  const port = parseInt(portHex, 16)
  const bytes: number[] = []
  for (let word = 0; word < hex.length / 8; word++) {
    const w = hex.slice(word * 8, word * 8 + 8)
    for (let i = 3; i >= 0; i--) bytes.push(parseInt(w.slice(i * 2, i * 2 + 2), 16))
  }
  if (bytes.length === 4) return { host: bytes.join('.'), port }
  if (bytes.length !== 16) throw new Error(`malformed /proc/net/tcp address ${field}`)
  // ::ffff:a.b.c.d
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return { host: bytes.slice(12).join('.'), port }
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16))
  return { host: compressIPv6(groups), port }
}

/** RFC 5952 4.2: the longest run of two or more zero groups becomes "::". */
function compressIPv6 (groups: string[]): string {
  let bestStart = -1
  let bestLength = 0
  for (let i = 0; i < groups.length;) {
    if (groups[i] !== '0') { i++; continue }
    let j = i
    while (j < groups.length && groups[j] === '0') j++
    if (j - i > bestLength && j - i >= 2) { bestStart = i; bestLength = j - i }
    i = j
  }
  if (bestStart < 0) return groups.join(':')
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`
}

export function endpointKey (e: Endpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`
}

export interface ConnectionWatch {
  /** Every distinct connection seen so far (by local and remote endpoint), first sighting kept. */
  readonly connections: TcpConnection[]
  /** Every distinct remote endpoint seen so far, as "host:port". */
  readonly remotes: Set<string>
  /** Samples taken so far. */
  readonly samples: number
  /** Take a last sample and stop; resolves with everything seen. Safe to call twice. */
  stop (): Promise<{ connections: TcpConnection[], remotes: Set<string>, samples: number, exited: boolean }>
}

/**
 * Sample the process's connections every `intervalMs` (default 20) until stop() is called,
 * or until `maxSamples` (default 5000) or `maxMs` (default 5 minutes) is reached, whichever
 * comes first. The process exiting ends the watch with what was seen; any other failure of
 * a sample ends it too, and stop() reports that.
 */
export function watchConnections (pid: number, options: { intervalMs?: number, maxSamples?: number, maxMs?: number } = {}): ConnectionWatch {
  const intervalMs = options.intervalMs ?? 20
  const maxSamples = options.maxSamples ?? 5000
  const deadline = Date.now() + (options.maxMs ?? 5 * 60_000)
  const byKey = new Map<string, TcpConnection>()
  const remotes = new Set<string>()
  let samples = 0
  let stopped = false
  let failure: Error | undefined
  /** The process is gone: the watch ended with its last sample, which is not a failure. */
  let exited = false
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> = Promise.resolve()

  const sample = async (): Promise<void> => {
    for (const c of await tcpConnectionsOf(pid)) {
      const key = `${endpointKey(c.local)} ${endpointKey(c.remote)}`
      if (!byKey.has(key)) byKey.set(key, c)
      remotes.add(endpointKey(c.remote))
    }
    samples++
  }
  const tick = (): void => {
    running = sample().then(() => {
      if (!stopped && samples < maxSamples && Date.now() < deadline) timer = setTimeout(tick, intervalMs)
    }, (err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT' || err.code === 'ESRCH') exited = true; else failure = err })
  }
  tick()

  return {
    get connections () { return [...byKey.values()] },
    remotes,
    get samples () { return samples },
    async stop () {
      if (!stopped) {
        stopped = true
        clearTimeout(timer)
        await running
        if (failure === undefined && !exited) await sample().catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT' || err.code === 'ESRCH') exited = true; else failure = err })
      }
      if (failure !== undefined) throw new Error(`watching the connections of process ${pid} failed: ${failure.message}`, { cause: failure })
      return { connections: [...byKey.values()], remotes, samples, exited }
    },
  }
}
