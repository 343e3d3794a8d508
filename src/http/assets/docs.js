// The operations of /openapi.json, listed for people: a separate file so the page's
// Content-Security-Policy needs no inline script.
fetch('/openapi.json').then(r => r.json()).then(doc => {
  const main = document.getElementById('ops');
  main.textContent = '';
  for (const [path, ops] of Object.entries(doc.paths)) {
    const h = document.createElement('h2'); h.textContent = path; main.append(h);
    for (const [method, op] of Object.entries(ops)) {
      const div = document.createElement('div'); div.className = 'op';
      const m = document.createElement('span'); m.className = 'method'; m.textContent = method.toUpperCase();
      const s = document.createElement('span'); s.textContent = op.summary;
      const c = document.createElement('div'); c.className = 'codes';
      c.textContent = Object.entries(op.responses).map(([code, r]) => code + ' ' + r.description).join(' · ');
      div.append(m, s, c); main.append(div);
    }
  }
});
