// A raw SMTP client for tests that must see exact reply codes, including to input no real
// client would send (garbage bytes, malformed commands, protocol abuse).
import { connect, type Socket } from 'node:net'

export interface RawReply { code: number, text: string }

export class RawSmtp {
  private buffer = ''
  private replies: RawReply[] = []
  private lines: string[] = []
  private waiter: (() => void) | undefined
  closed = false

  private constructor (private readonly socket: Socket) {
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      this.buffer += chunk
      let newline: number
      while ((newline = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, newline).replace(/\r$/, '')
        this.buffer = this.buffer.slice(newline + 1)
        this.lines.push(line.slice(4))
        if (line[3] !== '-') {
          this.replies.push({ code: Number(line.slice(0, 3)), text: this.lines.join('\n') })
          this.lines = []
        }
      }
      this.waiter?.()
    })
    socket.on('close', () => { this.closed = true; this.waiter?.() })
    socket.on('error', () => { this.closed = true; this.waiter?.() })
  }

  static async connect (port: number, host = '127.0.0.1'): Promise<RawSmtp> {
    const socket = connect({ host, port })
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
    return new RawSmtp(socket)
  }

  async reply (timeoutMs = 5000): Promise<RawReply> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const reply = this.replies.shift()
      if (reply !== undefined) return reply
      if (this.closed) throw new Error('connection closed while waiting for a reply')
      if (Date.now() > deadline) throw new Error('no reply in time')
      await new Promise<void>(resolve => { const t = setTimeout(resolve, 50); this.waiter = () => { clearTimeout(t); resolve() } })
    }
  }

  write (data: string | Buffer): void { this.socket.write(data) }

  async command (line: string | Buffer): Promise<RawReply> {
    this.write(typeof line === 'string' ? `${line}\r\n` : Buffer.concat([line, Buffer.from('\r\n')]))
    return await this.reply()
  }

  close (): void { this.socket.destroy() }
}
