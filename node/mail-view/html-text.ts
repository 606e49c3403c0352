// HTML mail as plain text, for showing without a browser ever seeing the HTML: nothing can
// be fetched (no image, style sheet, frame or prefetch reaches the page) and nothing can run.
// Converted with html-to-text, configured to leave out everything that is not visible text:
//   - <head> (with <title>, <meta http-equiv=refresh>, <link rel=stylesheet>, <base>),
//     <script>, <style>, <template>, frames, objects, embeds, media, <svg>, form controls;
//   - images become "[image: alt]" at most; their URL is never shown;
//   - links become "text (url)", the URL shown only for http, https and mailto, so the reader
//     can see where a link goes; javascript:, data: and every other scheme show the text alone;
//   - elements hidden with the hidden attribute or an inline style display:none or
//     visibility:hidden are dropped.
// CSS is not evaluated beyond that (style sheets, classes, tiny fonts, white on white, zero
// height): that cannot make anything run or load, since the output is text; a hiding trick
// only changes which of the message's own words are shown.
import { compile, type FormatCallback, type FormatOptions, type SelectorDefinition } from 'html-to-text'

/** HTML beyond this many UTF-16 code units is cut before conversion (parse time and memory). */
export const MAX_HTML_CHARS = 2 * 1024 * 1024
/**
 * HTML nested deeper than this is cut where it gets there. The parser (htmlparser2) takes
 * time quadratic in the depth of unclosed elements: 800,000 "<div>" took minutes.
 */
export const MAX_HTML_DEPTH = 256
/** Deeper element nesting is cut short ("…") while walking; the walk is recursive. */
const MAX_DEPTH = 200
const MAX_ALT_CHARS = 200
const MAX_SHOWN_URL_CHARS = 2048

/** Elements whose content is never visible text, or whose text is not the author's words. */
const DROPPED = [
  'head', 'title', 'meta', 'link', 'base', 'script', 'noscript', 'style', 'template',
  'iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'param', 'portal',
  'audio', 'video', 'source', 'track', 'canvas', 'svg', 'math', 'map', 'area',
  // Form controls: values and placeholders are attributes, and a mail form only ever
  // collects credentials for someone else. A <button>'s label is kept as ordinary text.
  'input', 'select', 'option', 'optgroup', 'datalist', 'textarea', 'dialog'
]

/**
 * html-to-text's own selectors (its DEFAULT_OPTIONS, 10.0.1), restated so that each goes
 * through `visible` first. `inner` names the formatter that does the real work.
 */
const BLOCK = { leadingLineBreaks: 1, trailingLineBreaks: 1 }
const KEPT: Array<[string, string, FormatOptions]> = [
  ['*', 'inline', {}],
  ['a', 'safeAnchor', {}],
  ['img', 'safeImage', {}],
  ['article', 'block', BLOCK], ['aside', 'block', BLOCK], ['div', 'block', BLOCK],
  ['footer', 'block', BLOCK], ['form', 'block', BLOCK], ['header', 'block', BLOCK],
  ['main', 'block', BLOCK], ['nav', 'block', BLOCK], ['section', 'block', BLOCK],
  ['blockquote', 'blockquote', { leadingLineBreaks: 2, trailingLineBreaks: 2, trimEmptyLines: true }],
  ['br', 'lineBreak', {}],
  ['h1', 'heading', { leadingLineBreaks: 3, trailingLineBreaks: 2, uppercase: false }],
  ['h2', 'heading', { leadingLineBreaks: 3, trailingLineBreaks: 2, uppercase: false }],
  ['h3', 'heading', { leadingLineBreaks: 3, trailingLineBreaks: 2, uppercase: false }],
  ['h4', 'heading', { leadingLineBreaks: 2, trailingLineBreaks: 2, uppercase: false }],
  ['h5', 'heading', { leadingLineBreaks: 2, trailingLineBreaks: 2, uppercase: false }],
  ['h6', 'heading', { leadingLineBreaks: 2, trailingLineBreaks: 2, uppercase: false }],
  ['hr', 'horizontalLine', { leadingLineBreaks: 2, length: undefined, trailingLineBreaks: 2 }],
  ['ol', 'orderedList', { leadingLineBreaks: 2, trailingLineBreaks: 2 }],
  ['ul', 'unorderedList', { itemPrefix: ' * ', leadingLineBreaks: 2, trailingLineBreaks: 2 }],
  ['p', 'paragraph', { leadingLineBreaks: 2, trailingLineBreaks: 2 }],
  ['pre', 'pre', { leadingLineBreaks: 2, trailingLineBreaks: 2 }],
  ['table', 'table', { colSpacing: 3, leadingLineBreaks: 2, maxColumnWidth: 60, rowSpacing: 0, trailingLineBreaks: 2, uppercaseHeaderCells: false }],
  ['wbr', 'wbr', {}]
]

/** True when an element's own attributes hide it (the HTML hidden attribute, inline CSS). */
export function hiddenByAttributes (attribs: Record<string, string> | undefined): boolean {
  if (attribs === undefined) return false
  if (attribs.hidden !== undefined) return true
  const style = attribs.style
  if (style === undefined) return false
  // Comments, white space, case and backslashes removed, so "Display : NONE", "display:/**/none"
  // and "display:n\one" all read "display:none". Hex escapes (\6f) are not decoded.
  const css = style.replace(/\/\*[\s\S]*?(?:\*\/|$)/g, '').replace(/[\s\\]+/g, '').toLowerCase()
  return /(?:^|[;{])display:none(?:!important)?(?:;|$)/.test(css) ||
    /(?:^|[;{])visibility:(?:hidden|collapse)(?:!important)?(?:;|$)/.test(css)
}

/** The link target as it may be shown: http, https or mailto only, else undefined. */
export function shownUrl (href: unknown): string | undefined {
  if (typeof href !== 'string') return undefined
  // Browsers drop ASCII tab and newline anywhere in a URL and leading/trailing C0 controls and
  // spaces (WHATWG URL), which is how "java\tscript:" runs; read it the same way before judging.
  const url = href.replace(/[\t\n\r]/g, '').replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, '')
  if (!/^(?:https?:\/\/|mailto:)/i.test(url)) return undefined
  if (/[\x00-\x1f\x7f\s]/.test(url)) return undefined
  return url.length > MAX_SHOWN_URL_CHARS ? `${url.slice(0, MAX_SHOWN_URL_CHARS)}…` : url
}

const visible: FormatCallback = (elem, walk, builder, formatOptions) => {
  if (hiddenByAttributes(elem.attribs as Record<string, string> | undefined)) {
    builder.addInline(' ') // the words on either side stay apart, as a hidden block would keep them
    return
  }
  const inner = builder.options.formatters[(formatOptions as { inner: string }).inner]
  inner?.(elem, walk, builder, formatOptions)
}

const safeImage: FormatCallback = (elem, _walk, builder) => {
  const alt = typeof elem.attribs?.alt === 'string' ? (elem.attribs.alt as string).replace(/\s+/g, ' ').trim() : ''
  if (alt.length === 0) return
  builder.addInline(`[image: ${alt.length > MAX_ALT_CHARS ? `${alt.slice(0, MAX_ALT_CHARS)}…` : alt}]`, { noWordTransform: true })
}

const safeAnchor: FormatCallback = (elem, walk, builder) => {
  const url = shownUrl(elem.attribs?.href)
  if (url === undefined) {
    walk(elem.children, builder)
    return
  }
  let text = ''
  builder.pushWordTransform((word) => { text += word; return word })
  walk(elem.children, builder)
  builder.popWordTransform()
  if (text === url || `mailto:${text}`.toLowerCase() === url.toLowerCase()) return
  builder.addInline(text.length === 0 ? url : ` (${url})`, { noWordTransform: true })
}

const selectors: SelectorDefinition[] = [
  ...KEPT.map(([selector, inner, options]) => ({ selector, format: 'visible', options: { ...options, inner } as FormatOptions })),
  ...DROPPED.map(selector => ({ selector, format: 'skip' }))
]

const convert = compile({
  wordwrap: false,
  decodeEntities: true,
  formatters: { visible, safeImage, safeAnchor },
  selectors,
  // Everything the document holds, <body> or not; <head> is dropped by its selector.
  baseElements: { selectors: ['body'], returnDomByDefault: true },
  limits: { maxDepth: MAX_DEPTH, ellipsis: '…', maxInputLength: MAX_HTML_CHARS + 1 }
})

// Elements that have no content (HTML void elements) or whose start tag closes an open one
// of the same kind (p, li, td, …): neither makes the document deeper.
const NOT_NESTING = new Set(['area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'param',
  'source', 'track', 'wbr', 'p', 'li', 'dt', 'dd', 'tr', 'td', 'th', 'thead', 'tbody', 'tfoot', 'option', 'optgroup', 'rt', 'rp'])

/**
 * Where the HTML first nests deeper than MAX_HTML_DEPTH, or undefined. An estimate from the
 * tags alone, in one linear pass ("[^<>]*" never rescans): good enough to bound the parser.
 */
export function deepNestingAt (html: string): number | undefined {
  let depth = 0
  for (const m of html.matchAll(/<(\/?)([a-zA-Z][a-zA-Z0-9-]{0,30})([^<>]*)>/g)) {
    const name = m[2]!.toLowerCase()
    if (NOT_NESTING.has(name)) continue
    if (m[1] === '/') depth = Math.max(0, depth - 1)
    else if (!m[3]!.endsWith('/') && ++depth > MAX_HTML_DEPTH) return m.index
  }
  return undefined
}

/** The visible text of an HTML body; `cut` when the HTML was too long or deep to convert whole. */
export function htmlToSafeText (html: string): { text: string, cut: boolean } {
  let cut = html.length > MAX_HTML_CHARS
  if (cut) html = html.slice(0, MAX_HTML_CHARS)
  const deep = deepNestingAt(html)
  if (deep !== undefined) {
    cut = true
    html = html.slice(0, deep)
  }
  return { text: convert(html).trim(), cut }
}
