// Control-protocol client against a fake ControlPort: reply parsing (control-spec 2.3,
// 2.4), events between replies, SAFECOOKIE authentication (3.24) and connection loss.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Socket } from 'node:net'
import { createHmac, randomBytes } from 'node:crypto'
import { mkdtemp, writeFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ReplyParser, TorControl, TorControlClosedError, TorControlError, parseKeywords, parseBootstrap, quoteString } from './control.ts'

describe('ReplyParser', () => {
  const table: { name: string, input: string, expect: { code: number, lines: { text: string, data?: string }[] }[] }[] = [
    { name: 'single line', input: '250 OK\r\n', expect: [{ code: 250, lines: [{ text: 'OK' }] }] },
    {
      name: 'mid lines (GETINFO, control-spec 3.9)',
      input: '250-version=0.4.9.11\r\n250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"\r\n250 OK\r\n',
      expect: [{ code: 250, lines: [{ text: 'version=0.4.9.11' }, { text: 'status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"' }, { text: 'OK' }] }],
    },
    {
      name: 'data reply with dot-stuffing',
      input: '250+config-text=\r\nSocksPort 9050\r\n..hidden\r\n.\r\n250 OK\r\n',
      expect: [{ code: 250, lines: [{ text: 'config-text=', data: 'SocksPort 9050\n.hidden' }, { text: 'OK' }] }],
    },
    {
      name: 'ADD_ONION reply',
      input: '250-ServiceID=abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx\r\n250 OK\r\n',
      expect: [{ code: 250, lines: [{ text: 'ServiceID=abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx' }, { text: 'OK' }] }],
    },
    {
      name: 'event then reply, LF only',
      input: '650 HS_DESC UPLOADED abc UNKNOWN $AAAA\n552 Unrecognized key "foo"\n',
      expect: [{ code: 650, lines: [{ text: 'HS_DESC UPLOADED abc UNKNOWN $AAAA' }] }, { code: 552, lines: [{ text: 'Unrecognized key "foo"' }] }],
    },
  ]
  for (const row of table) {
    it(row.name, () => {
      const parser = new ReplyParser()
      const got = parser.push(row.input).map((r) => ({ code: r.code, lines: r.lines.map((l) => (l.data !== undefined ? { text: l.text, data: l.data } : { text: l.text })) }))
      assert.deepEqual(got, row.expect)
    })
    it(`${row.name}, fed one byte at a time`, () => {
      const parser = new ReplyParser()
      const got = [...row.input].flatMap((c) => parser.push(c))
      assert.equal(got.length, row.expect.length)
    })
  }
  it('rejects a malformed line', () => {
    assert.throws(() => new ReplyParser().push('hello\r\n'), TorControlError)
  })
})

describe('keyword and bootstrap parsing', () => {
  it('parses quoted values with escapes', () => {
    const kw = parseKeywords('METHODS=COOKIE,SAFECOOKIE COOKIEFILE="/var/lib/tor/control_auth_cookie" X="a \\"b\\""')
    assert.equal(kw.get('METHODS'), 'COOKIE,SAFECOOKIE')
    assert.equal(kw.get('COOKIEFILE'), '/var/lib/tor/control_auth_cookie')
    assert.equal(kw.get('X'), 'a "b"')
  })
  it('reads bootstrap events and GETINFO values', () => {
    assert.deepEqual(parseBootstrap('STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=75 TAG=enough_dirinfo SUMMARY="Loaded enough directory info to build circuits"'),
      { percent: 75, tag: 'enough_dirinfo', summary: 'Loaded enough directory info to build circuits' })
    assert.equal(parseBootstrap('STATUS_CLIENT NOTICE CIRCUIT_ESTABLISHED'), undefined)
  })
  it('quotes strings', () => {
    assert.equal(quoteString('pa"ss\\'), '"pa\\"ss\\\\"')
  })
})

/** A fake ControlPort that speaks SAFECOOKIE with `cookie` and answers a few commands. */
async function fakeTor (cookie: Buffer, cookieFile: string, onCommand?: (line: string, socket: Socket) => boolean): Promise<{ port: number, close: () => void, sockets: Socket[] }> {
  const sockets: Socket[] = []
  const server = createServer((socket) => {
    sockets.push(socket)
    let buf = ''
    let clientNonce = Buffer.alloc(0)
    const serverNonce = randomBytes(32)
    socket.setEncoding('utf8')
    socket.on('error', () => {})
    socket.on('data', (chunk: string) => {
      buf += chunk
      let nl
      while ((nl = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 2)
        if (onCommand?.(line, socket) === true) continue
        if (line === 'PROTOCOLINFO 1') {
          socket.write(`250-PROTOCOLINFO 1\r\n250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE="${cookieFile}"\r\n250-VERSION Tor="0.4.9.11"\r\n250 OK\r\n`)
        } else if (line.startsWith('AUTHCHALLENGE SAFECOOKIE ')) {
          clientNonce = Buffer.from(line.split(' ')[2]!, 'hex')
          const hash = createHmac('sha256', 'Tor safe cookie authentication server-to-controller hash').update(Buffer.concat([cookie, clientNonce, serverNonce])).digest('hex')
          socket.write(`250 AUTHCHALLENGE SERVERHASH=${hash.toUpperCase()} SERVERNONCE=${serverNonce.toString('hex').toUpperCase()}\r\n`)
        } else if (line.startsWith('AUTHENTICATE ')) {
          const want = createHmac('sha256', 'Tor safe cookie authentication controller-to-server hash').update(Buffer.concat([cookie, clientNonce, serverNonce])).digest('hex')
          socket.write(line.split(' ')[1]!.toLowerCase() === want ? '250 OK\r\n' : '515 Authentication failed: Safe cookie response did not match expected value.\r\n')
        } else if (line.startsWith('GETINFO ')) {
          // An event arrives between the command and its reply.
          socket.write('650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=50 TAG=loading_descriptors SUMMARY="Loading relay descriptors"\r\n')
          socket.write('250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=50 TAG=loading_descriptors SUMMARY="Loading relay descriptors"\r\n250 OK\r\n')
        } else {
          socket.write('510 Unrecognized command\r\n')
        }
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { port: address.port, sockets, close: () => { for (const s of sockets) s.destroy(); server.close() } }
}

describe('TorControl against a fake ControlPort', () => {
  it('authenticates with SAFECOOKIE, reads GETINFO, delivers events', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'smtorp-control-test-'))
    const cookie = randomBytes(32)
    const cookieFile = join(dir, 'cookie')
    await writeFile(cookieFile, cookie)
    const fake = await fakeTor(cookie, cookieFile)
    try {
      const control = await TorControl.connect('127.0.0.1', fake.port)
      const events: string[] = []
      control.on('event', (r) => events.push(r.lines[0]!.text))
      await control.authenticate() // cookie file from PROTOCOLINFO
      const info = await control.getInfo('status/bootstrap-phase')
      assert.equal(parseBootstrap(info.get('status/bootstrap-phase')!)?.percent, 50)
      assert.equal(events.length, 1)
      assert.match(events[0]!, /^STATUS_CLIENT /)
      await assert.rejects(control.command('FROBNICATE'), (err: TorControlError) => err.code === 510 && !err.message.includes('secret'))
      control.close()
    } finally {
      fake.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('refuses a server that does not know the cookie', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'smtorp-control-test-'))
    const cookieFile = join(dir, 'cookie')
    await writeFile(cookieFile, randomBytes(32))
    const fake = await fakeTor(randomBytes(32), cookieFile)
    try {
      const control = await TorControl.connect('127.0.0.1', fake.port)
      await assert.rejects(control.authenticate(), /SAFECOOKIE challenge/)
      control.close()
    } finally {
      fake.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('rejects pending commands when the connection closes', async () => {
    const fake = await fakeTor(randomBytes(32), '/nonexistent', (line, socket) => {
      if (line === 'SLOW') { socket.destroy(); return true }
      return false
    })
    try {
      const control = await TorControl.connect('127.0.0.1', fake.port)
      const closed = new Promise((resolve) => control.once('close', resolve))
      await assert.rejects(control.request('SLOW'), TorControlClosedError)
      await closed
      assert.equal(control.closed, true)
      await assert.rejects(control.request('GETINFO version'), TorControlClosedError)
    } finally {
      fake.close()
    }
  })

  it('reports a refused connection clearly', async () => {
    const fake = await fakeTor(randomBytes(32), '/nonexistent')
    const port = fake.port
    fake.close()
    await assert.rejects(TorControl.connect('127.0.0.1', port), /cannot connect to tor control port/)
  })
})
