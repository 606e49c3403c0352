// What an attachment could do to the reader's computer when opened, judged from its name and
// declared type only: the bytes are never run or sniffed here. The name counts most, since
// that is what the desktop uses to decide how to open a saved file.

/** RFC 2183 2.3 leaves file names to the receiving system; this keeps them to one safe component. */
const MAX_FILENAME_CHARS = 200

/** A file name safe to offer for saving: no directories, no control characters, not empty. */
export function safeFilename (name: string | null | undefined, index: number): string {
  let s = (name ?? '')
    // Path separators and what Windows refuses in names; control and bidi-override characters
    // (U+202E makes "exe.pdf" display as "fdp.exe").
    .replace(/[/\\:*?"<>|]/g, '_')
    .replace(/[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g, '')
    .trim()
    // No hidden files and no "." or ".." names; Windows also drops trailing dots and spaces.
    .replace(/^[.\s]+/, '')
    .replace(/[.\s]+$/, '')
  if (s.length > MAX_FILENAME_CHARS) {
    // Keep the extension: it is what the risk is judged by, and what the desktop opens it by.
    const ext = /\.[^.]{1,16}$/.exec(s)?.[0] ?? ''
    // Cut between code points, never inside a surrogate pair (a lone half breaks encoding).
    s = [...s].slice(0, MAX_FILENAME_CHARS - ext.length).join('') + ext
  }
  s = s.toWellFormed()
  return s.length > 0 ? s : `attachment-${index + 1}`
}

const PROGRAM = 'This is a program: opening it runs it, with all the power you have on this computer.'
const WINDOWS_PROGRAM = 'This is a Windows program: opening it runs it.'
const SCRIPT = 'This is a script: opening it runs it, with all the power you have on this computer.'
const SHORTCUT = 'This is a shortcut or settings file: opening it can run a program or change the system.'
const DISK_IMAGE = 'This is a disk image: opening it mounts files that can include programs.'
const MACRO = 'This document can contain macros: programs that run when it is opened and macros are enabled.'
const HTML = 'This is a web page: opened from disk it can run scripts and load content from the internet.'

const BY_EXTENSION: Record<string, string> = {
  exe: WINDOWS_PROGRAM, com: WINDOWS_PROGRAM, scr: WINDOWS_PROGRAM, pif: WINDOWS_PROGRAM,
  msi: WINDOWS_PROGRAM, dll: WINDOWS_PROGRAM, cpl: WINDOWS_PROGRAM, msc: WINDOWS_PROGRAM,
  bat: SCRIPT, cmd: SCRIPT, js: SCRIPT, jse: SCRIPT, vbs: SCRIPT, vbe: SCRIPT, wsf: SCRIPT,
  wsh: SCRIPT, ps1: SCRIPT, psm1: SCRIPT, hta: SCRIPT, sh: SCRIPT, jar: PROGRAM,
  app: PROGRAM, apk: PROGRAM, lnk: SHORTCUT, reg: SHORTCUT, url: SHORTCUT,
  iso: DISK_IMAGE, img: DISK_IMAGE, vhd: DISK_IMAGE, vhdx: DISK_IMAGE, dmg: DISK_IMAGE,
  docm: MACRO, xlsm: MACRO, pptm: MACRO, dotm: MACRO, xltm: MACRO, potm: MACRO,
  html: HTML, htm: HTML, xhtml: HTML, shtml: HTML, svg: HTML, mht: HTML, mhtml: HTML
}

const BY_TYPE: Record<string, string> = {
  'application/x-msdownload': WINDOWS_PROGRAM,
  'application/x-msdos-program': WINDOWS_PROGRAM,
  'application/x-ms-installer': WINDOWS_PROGRAM,
  'application/x-msi': WINDOWS_PROGRAM,
  'application/vnd.microsoft.portable-executable': WINDOWS_PROGRAM,
  'application/x-dosexec': WINDOWS_PROGRAM,
  'application/x-executable': PROGRAM,
  'application/java-archive': PROGRAM,
  'application/vnd.android.package-archive': PROGRAM,
  'application/javascript': SCRIPT,
  'text/javascript': SCRIPT,
  'application/x-javascript': SCRIPT,
  'application/x-sh': SCRIPT,
  'application/x-shellscript': SCRIPT,
  'text/x-shellscript': SCRIPT,
  'application/x-bat': SCRIPT,
  'application/hta': SCRIPT,
  'text/vbscript': SCRIPT,
  'application/x-iso9660-image': DISK_IMAGE,
  'application/vnd.ms-word.document.macroenabled.12': MACRO,
  'application/vnd.ms-excel.sheet.macroenabled.12': MACRO,
  'application/vnd.ms-powerpoint.presentation.macroenabled.12': MACRO,
  'application/vnd.ms-word.template.macroenabled.12': MACRO,
  'text/html': HTML,
  'application/xhtml+xml': HTML,
  'image/svg+xml': HTML
}

/** Extensions that make a harmless-looking first extension in "invoice.pdf.exe" believable. */
const DECOY = /\.(?:pdf|docx?|xlsx?|pptx?|odt|ods|rtf|txt|csv|jpe?g|png|gif|bmp|tiff?|heic|mp3|mp4|mov|avi|zip|rar|7z)$/i

/** Why opening the attachment could harm the computer, or undefined when nothing is known. */
export function attachmentRisk (filename: string, contentType: string): string | undefined {
  const ext = /\.([^.]+)$/.exec(filename)?.[1]?.toLowerCase()
  const risk = (ext !== undefined ? BY_EXTENSION[ext] : undefined) ?? BY_TYPE[contentType.toLowerCase()]
  if (risk === undefined) return undefined
  const stem = filename.slice(0, filename.length - (ext?.length ?? 0) - 1).trimEnd()
  if (ext !== undefined && BY_EXTENSION[ext] !== undefined && DECOY.test(stem)) {
    return `The name hides its real type: it ends in ".${ext}", not "${/\.[^.]+$/.exec(stem)?.[0] ?? ''}". ${risk}`
  }
  return risk
}
