import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { attachmentContent, attachmentRisk, readableMessage, safeFilename, MAX_TEXT_CHARS } from './index.ts'
import { deepNestingAt, hiddenByAttributes, shownUrl } from './html-text.ts'

function eml (headers: string[], body: string): Buffer {
  return Buffer.from(`${headers.join('\r\n')}\r\n\r\n${body}`, 'utf8')
}

const HOSTILE_HTML = `<!doctype html>
<html><head>
<meta http-equiv="refresh" content="0;url=http://remote.example/refresh">
<link rel="stylesheet" href="http://remote.example/style.css">
<style>body { display: none } .x { background: url(http://remote.example/css-bg.png) }</style>
<title>Title text</title>
<base href="http://remote.example/">
</head>
<body style="background: url(http://remote.example/body-bg.png)">
<script>document.location = 'http://remote.example/script'</script>
<p>Dear customer, your account is ready.</p>
<img src="http://remote.example/track.png" width="1" height="1">
<img src="http://remote.example/logo.png" alt="Bank logo">
<form action="http://remote.example/steal" method="post"><input type="password" name="p" value="prefilled-secret"><input type="image" src="http://remote.example/button.png"><button>Log in</button></form>
<iframe src="http://remote.example/frame.html">frame fallback</iframe>
<object data="http://remote.example/movie.swf"><embed src="http://remote.example/embed.swf"></object>
<a href="javascript:alert(1)">Click here</a>
<a href=" java&#x09;script:alert(2)">Second trap</a>
<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">Data trap</a>
<a href="https://bank.example.org/login">Visit the bank</a>
<div style="display:none">hidden preheader</div>
<span style="VISIBILITY : hidden">invisible words</span>
<table><tr><td style="background:url(http://remote.example/td-bg.png)">Cell text</td></tr></table>
<video src="http://remote.example/v.mp4" poster="http://remote.example/poster.png"></video>
<svg><image href="http://remote.example/svg.png"/></svg>
<p>Regards, the team</p>
</body></html>`

describe('readableMessage: HTML is turned into text that cannot fetch or run anything', () => {
  it('keeps the visible words and drops every remote resource, script and tag', async () => {
    const raw = eml(['From: Bank <info@bank.example.org>', 'To: me@example.org', 'Subject: Account',
      'Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: 8bit'], HOSTILE_HTML)
    const m = await readableMessage(raw)
    assert.equal(m.fromHtml, true)
    for (const visible of ['Dear customer, your account is ready.', '[image: Bank logo]', 'Log in', 'Click here',
      'Second trap', 'Data trap', 'Visit the bank (https://bank.example.org/login)', 'Cell text', 'Regards, the team']) {
      assert.ok(m.text.includes(visible), `missing ${JSON.stringify(visible)} in ${JSON.stringify(m.text)}`)
    }
    assert.ok(!m.text.includes('remote.example'), m.text)
    assert.ok(!/javascript:/i.test(m.text), m.text)
    assert.ok(!/data:/i.test(m.text), m.text)
    assert.ok(!m.text.includes('<'), m.text)
    for (const hidden of ['prefilled-secret', 'hidden preheader', 'invisible words', 'Title text', 'frame fallback', 'display']) {
      assert.ok(!m.text.includes(hidden), `${JSON.stringify(hidden)} should not show in ${JSON.stringify(m.text)}`)
    }
  })

  it('shows only http, https and mailto link targets', () => {
    assert.equal(shownUrl('https://a.example.org/x'), 'https://a.example.org/x')
    assert.equal(shownUrl('MAILTO:a@example.org'), 'MAILTO:a@example.org')
    for (const href of ['javascript:alert(1)', ' javascript:alert(1)', 'java\tscript:alert(1)', 'JaVaScRiPt:x',
      'data:text/html,x', 'vbscript:x', 'file:///etc/passwd', '//remote.example/x', '/relative', '#top', 'cid:x@y', undefined]) {
      assert.equal(shownUrl(href), undefined, String(href))
    }
  })

  it('treats inline display:none and visibility:hidden in any spelling as hidden', () => {
    for (const style of ['display:none', 'DISPLAY : NONE', 'color:red; display: none !important', 'display:/**/none', 'visibility:hidden', 'visibility: collapse']) {
      assert.equal(hiddenByAttributes({ style }), true, style)
    }
    assert.equal(hiddenByAttributes({ hidden: '' }), true)
    for (const style of ['display:block', 'color:red', 'display:none-ish']) assert.equal(hiddenByAttributes({ style }), false, style)
  })
})

describe('readableMessage: text and headers', () => {
  it('prefers the text/plain part of multipart/alternative', async () => {
    const raw = eml(['From: a@example.org', 'To: b@example.org', 'Subject: Both', 'MIME-Version: 1.0',
      'Content-Type: multipart/alternative; boundary="b1"'], [
      '--b1', 'Content-Type: text/plain; charset=utf-8', '', 'The plain words.',
      '--b1', 'Content-Type: text/html; charset=utf-8', '', '<p>The <b>HTML</b> words.</p>',
      '--b1--', ''].join('\r\n'))
    const m = await readableMessage(raw)
    assert.equal(m.fromHtml, false)
    assert.equal(m.text.trim(), 'The plain words.')
    assert.deepEqual(m.problems, [])
  })

  it('uses the HTML alternative when the text/plain one is empty', async () => {
    const raw = eml(['Content-Type: multipart/alternative; boundary="b1"'], [
      '--b1', 'Content-Type: text/plain', '', ' ',
      '--b1', 'Content-Type: text/html', '', '<p>The HTML words.</p>',
      '--b1--', ''].join('\r\n'))
    const m = await readableMessage(raw)
    assert.equal(m.fromHtml, true)
    assert.equal(m.text.trim(), 'The HTML words.')
  })

  it('converts an HTML-only part beside a plain part safely', async () => {
    const raw = eml(['From: a@example.org', 'Content-Type: multipart/mixed; boundary="m"'], [
      '--m', 'Content-Type: text/plain', '', 'First part.',
      '--m', 'Content-Type: text/html', '', '<a href="javascript:alert(1)">Second part.</a><img src="http://remote.example/t.png">',
      '--m--', ''].join('\r\n'))
    const m = await readableMessage(raw)
    assert.ok(m.text.includes('First part.') && m.text.includes('Second part.'), m.text)
    assert.ok(!m.text.includes('javascript:') && !m.text.includes('remote.example'), m.text)
  })

  it('decodes quoted-printable and base64 bodies and RFC 2047 subjects', async () => {
    const qp = await readableMessage(eml(['From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>', 'Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=',
      'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable'],
    'Gr=C3=BC=C3=9Fe, a soft=\r\n break and =3D sign.\r\n'))
    assert.equal(qp.subject, 'Grüße aus Köln')
    assert.deepEqual(qp.from, [{ name: 'Jürgen', address: 'j@example.org' }])
    assert.equal(qp.text.trim(), 'Grüße, a soft break and = sign.')
    const b64 = await readableMessage(eml(['From: a@example.org', 'Subject: =?iso-8859-1?q?caf=E9?=',
      'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: base64'],
    `${Buffer.from('Base64 body with ünïcödé.\n').toString('base64')}\r\n`))
    assert.equal(b64.subject, 'café')
    assert.equal(b64.text.trim(), 'Base64 body with ünïcödé.')
  })

  it('reads addresses, groups, date and threading headers', async () => {
    const m = await readableMessage(eml(['From: "Doe, Jane" <jane@example.org>', 'To: Team: x@example.org, "Y" <y@example.org>;',
      'Cc: c@example.org', 'Reply-To: replies@example.org', 'Date: Tue, 1 Jul 2025 10:00:00 +0200',
      'Message-ID: <m3@example.org>', 'In-Reply-To: <m2@example.org>', 'References: <m1@example.org>\r\n <m2@example.org>',
      'Subject: Threaded'], 'Body\r\n'))
    assert.deepEqual(m.from, [{ name: 'Doe, Jane', address: 'jane@example.org' }])
    assert.deepEqual(m.to.map(t => t.address), ['x@example.org', 'y@example.org'])
    assert.deepEqual(m.cc, [{ name: '', address: 'c@example.org' }])
    assert.deepEqual(m.replyTo, [{ name: '', address: 'replies@example.org' }])
    assert.equal(m.date, Date.UTC(2025, 6, 1, 8, 0, 0))
    assert.equal(m.messageId, 'm3@example.org')
    assert.equal(m.inReplyTo, 'm2@example.org')
    assert.deepEqual(m.references, ['m1@example.org', 'm2@example.org'])
  })

  it('leaves date and ids out when they are missing or unreadable', async () => {
    const m = await readableMessage(eml(['Subject: x', 'Date: yesterday-ish'], 'b\r\n'))
    assert.equal(m.date, undefined)
    assert.equal(m.messageId, undefined)
    assert.deepEqual(m.from, [])
  })
})

describe('readableMessage: attachments', () => {
  const pdfBytes = Buffer.from('%PDF-1.4 not really')
  const jpgBytes = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 1, 2, 3, 0xff, 0xd9])
  const raw = eml(['From: a@example.org', 'Subject: files', 'Content-Type: multipart/mixed; boundary="x"'], [
    '--x', 'Content-Type: text/plain', '', 'See attached.',
    '--x', 'Content-Type: application/octet-stream; name="invoice.pdf.exe"', 'Content-Disposition: attachment; filename="invoice.pdf.exe"', 'Content-Transfer-Encoding: base64', '', pdfBytes.toString('base64'),
    '--x', 'Content-Type: IMAGE/JPEG', 'Content-Disposition: inline; filename="photo.jpg"', 'Content-Transfer-Encoding: base64', '', jpgBytes.toString('base64'),
    '--x', 'Content-Type: application/pdf', 'Content-Disposition: attachment; filename="../../etc/\x01passwd"', 'Content-Transfer-Encoding: base64', '', 'eA==',
    '--x', 'Content-Type: application/octet-stream', 'Content-Disposition: attachment', 'Content-Transfer-Encoding: base64', '', Buffer.from('nameless').toString('base64'),
    '--x--', ''].join('\r\n'))

  it('lists them in order with sizes, lowercase types, safe names and risks', async () => {
    const m = await readableMessage(raw)
    assert.equal(m.text.trim(), 'See attached.')
    assert.deepEqual(m.attachments.map(a => [a.index, a.filename, a.contentType, a.size]), [
      [0, 'invoice.pdf.exe', 'application/octet-stream', pdfBytes.length],
      [1, 'photo.jpg', 'image/jpeg', jpgBytes.length],
      [2, '_.._etc_passwd', 'application/pdf', 1],
      [3, 'attachment-4', 'application/octet-stream', 8]
    ])
    assert.match(m.attachments[0]!.risk ?? '', /Windows program: opening it runs it/)
    assert.match(m.attachments[0]!.risk ?? '', /hides its real type/)
    assert.equal(m.attachments[1]!.risk, undefined)
    assert.equal(m.attachments[2]!.risk, undefined)
  })

  it('gives back the bytes of one attachment by index', async () => {
    const exe = await attachmentContent(raw, 0)
    assert.deepEqual(exe, { filename: 'invoice.pdf.exe', contentType: 'application/octet-stream', content: pdfBytes })
    assert.deepEqual((await attachmentContent(raw, 1))?.content, jpgBytes)
    assert.equal(await attachmentContent(raw, 9), undefined)
    assert.equal(await attachmentContent(raw, -1), undefined)
    assert.equal(await attachmentContent(raw, 1.5), undefined)
  })

  it('judges risk by extension and type', () => {
    const table: Array<[string, string, RegExp | undefined]> = [
      ['setup.EXE', 'application/octet-stream', /Windows program/],
      ['run.ps1', 'text/plain', /script/], ['a.vbs', 'text/plain', /script/], ['app.jar', 'application/zip', /program/],
      ['budget.xlsm', 'application/octet-stream', /macros/], ['page.html', 'text/html', /web page/],
      ['drawing.svg', 'image/svg+xml', /web page/], ['disk.iso', 'application/octet-stream', /disk image/],
      ['link.lnk', 'application/octet-stream', /shortcut/],
      ['noext', 'application/x-msdownload', /Windows program/],
      ['photo.jpg', 'image/jpeg', undefined], ['report.pdf', 'application/pdf', undefined], ['notes.txt', 'text/plain', undefined],
      ['archive.zip', 'application/zip', undefined], ['letter.docx', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', undefined]
    ]
    for (const [name, type, expected] of table) {
      const risk = attachmentRisk(name, type)
      if (expected === undefined) assert.equal(risk, undefined, name)
      else assert.match(risk ?? '', expected, name)
    }
  })

  it('sanitises file names', () => {
    assert.equal(safeFilename('a/b\\c.txt', 0), 'a_b_c.txt')
    assert.equal(safeFilename('bad\u202Eexe.pdf', 0), 'badexe.pdf')
    // A long name of emoji is cut between code points: no lone surrogate, so it can be encoded.
    const emoji = safeFilename('a' + '\u{1F600}'.repeat(200) + '.pdf', 0)
    assert.ok(emoji.isWellFormed() && emoji.endsWith('.pdf'))
    assert.doesNotThrow(() => encodeURIComponent(emoji))
    assert.equal(safeFilename('', 2), 'attachment-3')
    assert.equal(safeFilename(null, 0), 'attachment-1')
    assert.equal(safeFilename('..', 0), 'attachment-1')
    const long = safeFilename(`${'x'.repeat(500)}.exe`, 0)
    assert.equal(long.length, 200)
    assert.ok(long.endsWith('.exe'))
  })
})

describe('readableMessage: bad input never throws and is bounded', () => {
  it('reports a multipart boundary that is never closed', async () => {
    const m = await readableMessage(eml(['From: a@example.org', 'Content-Type: multipart/mixed; boundary="open"'],
      '--open\r\nContent-Type: text/plain\r\n\r\nCut short here'))
    assert.ok(m.text.includes('Cut short here'), m.text)
    assert.ok(m.problems.some(p => /cut short/.test(p)), String(m.problems))
  })

  it('reports a multipart type without a boundary', async () => {
    const m = await readableMessage(eml(['From: a@example.org', 'Content-Type: multipart/mixed'], 'Some text\r\n'))
    assert.ok(m.problems.some(p => /no MIME boundary/.test(p)), String(m.problems))
  })

  it('reports a boundary that never appears', async () => {
    const m = await readableMessage(eml(['Content-Type: multipart/mixed; boundary=nowhere'], 'Orphan text\r\n'))
    assert.ok(m.problems.length > 0)
  })

  it('shows garbage bytes and header-less text', async () => {
    const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256))
    const g = await readableMessage(garbage)
    assert.equal(typeof g.text, 'string')
    const bare = await readableMessage(Buffer.from('just some words without any header'))
    assert.ok(bare.text.includes('just some words'), JSON.stringify(bare))
    const empty = await readableMessage(Buffer.alloc(0))
    assert.equal(empty.text, '')
    const latin1 = await readableMessage(Buffer.concat([Buffer.from('Subject: \xe9t\xe9\r\n\r\n', 'latin1'), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a])]))
    assert.equal(typeof latin1.subject, 'string')
    assert.ok(latin1.text.startsWith('caf'))
  })

  it('survives deeply nested multiparts', async () => {
    let body = 'innermost\r\n'
    for (let i = 0; i < 300; i++) body = `--b${i}\r\nContent-Type: multipart/mixed; boundary="b${i - 1}"\r\n\r\n${body}\r\n--b${i}--\r\n`
    const m = await readableMessage(eml(['From: a@example.org', 'Content-Type: multipart/mixed; boundary="b299"'], body))
    assert.ok(m.problems.length > 0, 'nesting past the limit is reported')
    assert.equal(typeof m.text, 'string')
  })

  it('survives deeply nested HTML', async () => {
    const html = `<p>shallow</p>${'<div>'.repeat(20000)}deep${'</div>'.repeat(20000)}`
    const m = await readableMessage(eml(['Content-Type: text/html'], html))
    assert.equal(m.fromHtml, true)
    assert.ok(m.text.includes('shallow'))
    assert.ok(m.problems.some(p => /deeply nested/.test(p)), String(m.problems))
  })

  it('bounds the work for a million unclosed tags (the HTML parser is quadratic in depth)', async () => {
    const started = Date.now()
    const m = await readableMessage(eml(['Content-Type: text/html'], `start ${'<div><b>'.repeat(500_000)}`))
    assert.ok(m.text.startsWith('start'))
    assert.ok(Date.now() - started < 5000, `${Date.now() - started} ms`)
  })

  it('estimates nesting depth from tags in one pass', () => {
    assert.equal(deepNestingAt('<div><p>a<p>b<br><img src=x><li>c</div>'), undefined)
    assert.equal(deepNestingAt('<div></div>'.repeat(10000)), undefined)
    assert.equal(deepNestingAt('<span/>'.repeat(10000)), undefined)
    assert.equal(deepNestingAt('<i>'.repeat(300)), 256 * 3)
    assert.equal(deepNestingAt('<a<a'.repeat(100_000)), undefined)
  })

  it('caps the text of a huge message with a 10 MB single line', async () => {
    const line = 'A'.repeat(10 * 1024 * 1024)
    const started = Date.now()
    const m = await readableMessage(eml(['From: a@example.org', 'Subject: big', 'Content-Type: text/plain'], line))
    assert.ok(m.text.length <= MAX_TEXT_CHARS + 20, String(m.text.length))
    assert.ok(m.text.endsWith('… (truncated)'))
    assert.ok(m.problems.some(p => /longer than 1 MiB/.test(p)))
    assert.ok(Date.now() - started < 20_000)
  })

  it('parses only the first maxParseBytes', async () => {
    const m = await readableMessage(eml(['Subject: x'], 'y'.repeat(5000)), { maxParseBytes: 1000 })
    assert.ok(m.problems.some(p => /only its first/.test(p)), String(m.problems))
    assert.ok(m.text.length < 1000)
  })
})
