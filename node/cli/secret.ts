// Reading a passphrase or recovery code: from a file (--passphrase-file), from a terminal
// without echo, or as one line of piped standard input. Secrets never go to argv (visible to
// every local user in ps) or to the log.
import { readFile } from 'node:fs/promises'

export async function secretFromFile (path: string): Promise<string> {
  const text = await readFile(path, 'utf8')
  return text.split(/\r?\n/, 1)[0] ?? ''
}

/** Ask on the terminal without echo; or read one line of piped input. */
export async function askSecret (prompt: string): Promise<string> {
  const stdin = process.stdin
  if (!stdin.isTTY) return await readLine()
  process.stderr.write(prompt)
  stdin.setRawMode(true)
  stdin.resume()
  stdin.setEncoding('utf8')
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed = ''
      const onData = (chunk: string): void => {
        for (const char of chunk) {
          if (char === '\r' || char === '\n') { stdin.off('data', onData); process.stderr.write('\n'); resolve(typed); return }
          if (char === '\u0003') { stdin.off('data', onData); process.stderr.write('\n'); reject(new Error('cancelled')); return }
          if (char === '\u007f' || char === '\b') typed = typed.slice(0, -1)
          else if (char >= ' ') typed += char
        }
      }
      stdin.on('data', onData)
    })
  } finally {
    stdin.setRawMode(false)
    stdin.pause()
  }
}

let piped: string[] | undefined
async function readLine (): Promise<string> {
  if (piped === undefined) {
    const chunks: Buffer[] = []
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
    piped = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)
  }
  return piped.shift() ?? ''
}
