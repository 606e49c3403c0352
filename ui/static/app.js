// The UI's only script besides htmx (the CSP allows no inline script): copy buttons.
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
