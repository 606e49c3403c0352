import { html, type Html } from '../html.ts'
import { notice } from './layout.ts'

export function unlockView (view: { state: 'locked' | 'unlocked' | 'uninitialized', method: 'passphrase' | 'recovery', error?: string }): Html {
  if (view.state === 'uninitialized') {
    return html`<h1>No vault yet</h1><p>This node has no vault. Run <code>smtorp init</code> to create one, then start the node again.</p>`
  }
  const heading = view.state === 'locked' ? 'Unlock your vault' : 'Sign in'
  const explain = view.state === 'locked'
    ? 'Your mail is encrypted on disk. Mail that arrives while the vault is locked waits, sealed, until you unlock it.'
    : 'The vault is unlocked; enter the passphrase to use this page.'
  const form = view.method === 'recovery'
    ? html`<form method="post" action="/unlock" class="stack">
<input type="hidden" name="method" value="recovery">
<label for="recoveryCode">Recovery code</label>
<input type="text" id="recoveryCode" name="recoveryCode" autocomplete="off" spellcheck="false" required autofocus aria-describedby="recovery-help">
<p id="recovery-help" class="muted">The code <code>smtorp init</code> showed you, eight groups of four letters and digits.</p>
<button type="submit">Unlock with the recovery code</button>
</form>
<p><a href="/unlock">Use the passphrase instead</a></p>`
    : html`<form method="post" action="/unlock" class="stack">
<input type="hidden" name="method" value="passphrase">
<label for="passphrase">Passphrase</label>
<input type="password" id="passphrase" name="passphrase" autocomplete="current-password" required autofocus>
<button type="submit">Unlock</button>
</form>
<p><a href="/unlock?method=recovery">Forgot the passphrase? Use the recovery code</a></p>`
  return html`<h1>${heading}</h1>
${notice('error', view.error)}
<p>${explain}</p>
${form}`
}
