// Starting and stopping tor processes reliably.
//
// Measured on our machines (shared/notes/private-tor-network.md): tor sometimes
// deadlocks on SIGTERM at exit, after deleting its own PidFile, and orphaned tor
// processes kept their ports and broke later runs. So every tor is started in its own
// session (detached: setsid), we track its pid ourselves, and stopping is SIGTERM to
// the whole process group, then SIGKILL after a grace period.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, openSync, closeSync } from 'node:fs'

export interface SpawnTorOptions {
  torBinary?: string
  args: string[]
  env?: NodeJS.ProcessEnv
  /**
   * Append tor's stdout and stderr here. With a `Log ... file` line tor writes little
   * there, but torrc errors before logging is set up only appear on stdout.
   */
  outputFile?: string
}

export function spawnTor (opts: SpawnTorOptions): ChildProcess {
  const out = opts.outputFile !== undefined ? openSync(opts.outputFile, 'a', 0o600) : 'ignore'
  const child = spawn(opts.torBinary ?? 'tor', opts.args, {
    detached: true,
    stdio: ['ignore', out, out],
    // MALLOC_ARENA_MAX=1 took a whole private network from ~300 MB to ~100 MB.
    env: { ...process.env, MALLOC_ARENA_MAX: '1', ...opts.env },
  })
  if (typeof out === 'number') closeSync(out)
  // Never keep the node event loop alive just for tor.
  child.unref()
  return child
}

export function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
  // A zombie (exited, not yet reaped by its parent) still answers kill 0.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

function signal (pid: number, sig: NodeJS.Signals): void {
  // Negative pid: the whole process group (the tor is its group leader, as spawned detached).
  try { process.kill(-pid, sig) } catch {}
  try { process.kill(pid, sig) } catch {}
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess (pid: number, graceMs = 3000): Promise<void> {
  if (!isAlive(pid)) return
  signal(pid, 'SIGTERM')
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  signal(pid, 'SIGKILL')
  const killDeadline = Date.now() + 2000
  while (isAlive(pid) && Date.now() < killDeadline) await new Promise((resolve) => setTimeout(resolve, 20))
}

/** Synchronous last resort, for process 'exit' handlers. */
export function killNow (pid: number): void {
  signal(pid, 'SIGKILL')
}

/** The command line of a running process (for checking a recorded pid is still our tor). */
export function commandLine (pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ')
  } catch {
    return undefined
  }
}
