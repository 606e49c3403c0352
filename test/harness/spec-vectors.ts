// The ```vectors block of a spec document: "[section]" lines, each followed by "name: value"
// lines. Tests read test vectors from the spec itself, so the spec cannot drift from the code.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'

export interface SpecVectors {
  sections: Map<string, Map<string, string>>
  /** The value of `name` in `[section]`; fails the test if missing. */
  get (section: string, name: string): string
  /** The same, as bytes: the value must be lowercase hex. */
  bytes (section: string, name: string): Buffer
}

/** `blockName` picks another fenced block of the same layout (```friends-backup-vectors). */
export function readSpecVectors (path: string | URL, blockName = 'vectors'): SpecVectors {
  const block = new RegExp('^```' + blockName + '\\n([\\s\\S]*?)^```$', 'm').exec(readFileSync(path, 'utf8'))
  assert.ok(block !== null, `${String(path)} has a \`\`\`${blockName} block`)
  const sections = new Map<string, Map<string, string>>()
  let current: Map<string, string> | undefined
  for (const line of block[1]!.split('\n')) {
    if (line.trim() === '') continue
    const header = /^\[(.+)\]$/.exec(line)
    if (header !== null) {
      current = new Map()
      sections.set(header[1]!, current)
      continue
    }
    // The name ends at the first ": " (names like "term-name *:hello" hold a colon, not ": ").
    const field = /^(.+?): (.+)$/.exec(line)
    assert.ok(field !== null && current !== undefined, `a vector line: ${JSON.stringify(line)}`)
    current.set(field[1]!, field[2]!)
  }
  const get = (section: string, name: string): string => {
    const value = sections.get(section)?.get(name)
    assert.ok(value !== undefined, `[${section}] ${name} is in the spec`)
    return value
  }
  return {
    sections,
    get,
    bytes (section, name) {
      const value = get(section, name)
      assert.match(value, /^([0-9a-f]{2})+$/, `[${section}] ${name} is lowercase hex`)
      return Buffer.from(value, 'hex')
    }
  }
}
