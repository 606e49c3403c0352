// Typed HTML templates: a tagged template that escapes every interpolated value unless it is
// already Html. Views are plain functions from data to Html; nothing is ever concatenated as
// a raw string, so text from mail (subjects, addresses, bodies) cannot become markup.

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' }

export class Html {
  constructor (readonly value: string) {}
  toString (): string { return this.value }
}

export type Content = Html | string | number | boolean | null | undefined | readonly Content[]

export function escapeHtml (text: string): string {
  return text.replace(/[&<>"'`]/g, c => ESCAPES[c]!)
}

function render (value: Content): string {
  if (value === null || value === undefined || value === false || value === true) return ''
  if (value instanceof Html) return value.value
  if (Array.isArray(value)) return (value as readonly Content[]).map(render).join('')
  return escapeHtml(String(value))
}

export function html (strings: TemplateStringsArray, ...values: Content[]): Html {
  let out = strings[0]!
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!
  return new Html(out)
}

/** Markup that is known safe because this program made it (an SVG from the QR encoder). */
export function trusted (markup: string): Html {
  return new Html(markup)
}
