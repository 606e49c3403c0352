// Start a private Tor network for a whole test run, benchmark or demo.
//
//   tsx scripts/tor-network.ts start [--file PATH] [--base-port N] [--dir DIR]
//
// Writes the network's JSON description to PATH (default $TMPDIR/smtorp-tor-network.json),
// prints "ready PATH" on stdout, and runs until SIGTERM/SIGINT, then stops every tor it
// started and removes the file. Point SMTORP_TOR_NETWORK at PATH so that
// sharedTorNetwork() in test files joins this network instead of starting its own.
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startPrivateTorNetwork, writeDescription, removeDescription } from '../test/harness/tor-network.ts'

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { file: { type: 'string' }, 'base-port': { type: 'string' }, dir: { type: 'string' } },
})
if (positionals[0] !== 'start') {
  process.stderr.write('usage: tsx scripts/tor-network.ts start [--file PATH] [--base-port N] [--dir DIR]\n')
  process.exit(2)
}
const file = values.file ?? join(tmpdir(), 'smtorp-tor-network.json')

let stopping: Promise<void> | undefined
let network: Awaited<ReturnType<typeof startPrivateTorNetwork>> | undefined
const stop = async (code: number): Promise<never> => {
  stopping ??= (async () => {
    await removeDescription(file)
    await network?.stop()
  })()
  await stopping
  process.exit(code)
}
// Installed before the network starts, so the harness leaves signals to us.
process.on('SIGTERM', () => { void stop(0) })
process.on('SIGINT', () => { void stop(0) })
process.on('SIGHUP', () => { void stop(0) })

const started = Date.now()
try {
  network = await startPrivateTorNetwork({
    ...(values['base-port'] !== undefined ? { basePort: Number(values['base-port']) } : {}),
    ...(values.dir !== undefined ? { dir: values.dir } : {}),
  })
} catch (err) {
  process.stderr.write(`private tor network failed to start: ${(err as Error).message}\n`)
  process.exit(1)
}
await writeDescription(file, network.description)
process.stderr.write(`private tor network ready in ${((Date.now() - started) / 1000).toFixed(1)} s, base port ${network.description.basePort}\n`)
process.stdout.write(`ready ${file}\n`)
// Keep running until a signal arrives.
setInterval(() => {}, 1 << 30)
