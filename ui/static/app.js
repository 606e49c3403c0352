// The UI's only script besides htmx (the CSP allows no inline script): copy buttons, and the
// compose page's Encrypt choice.
document.addEventListener('click', (event) => {
  const button = event.target instanceof Element ? event.target.closest('[data-copy]') : null
  if (button === null) return
  const text = document.getElementById(button.getAttribute('data-copy'))?.textContent ?? ''
  navigator.clipboard?.writeText(text.trim()).then(() => {
    button.textContent = 'Copied'
  }, () => {
    button.textContent = 'Select and copy the address by hand'
  })
})

// Compose: once the owner ticks or unticks Encrypt, typing recipients no longer changes it.
// (Capture phase: this runs before htmx asks for the route box again on the same change.)
document.addEventListener('change', (event) => {
  if (!(event.target instanceof Element) || event.target.id !== 'encrypt') return
  const touched = document.getElementById('encrypt-touched')
  if (touched !== null) touched.value = '1'
}, true)
