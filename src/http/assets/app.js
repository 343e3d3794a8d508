// The contributor page: choose a pipeline and a photo, fill the label form generated from the
// pipeline's JSON Schema, send with an idempotent PUT (retried under the same id), and show
// the barcodes found. Plain JavaScript, no build step.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { pipelines: [], pipeline: null, file: null, next: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// ---- the access token, for collections that need one; kept for this tab's session only ----

const access = () => (state.pipeline && state.pipeline.access) || { submit: 'none', read: 'public' };
const needsToken = (mode) => mode === 'tokens' || mode === 'jwt';
const token = () => sessionStorage.getItem('librarian-token') || '';
const authHeaders = () => (token() ? { Authorization: `Bearer ${token()}` } : {});

function showAccess() {
  const a = access();
  $('token-field').hidden = !(needsToken(a.submit) || needsToken(a.read));
  $('token').value = token();
}

const fieldId = (pointer) => 'label' + pointer.replace(/[^A-Za-z0-9]/g, '_');
const pointerOf = (path) => '/' + path.map((p) => String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('/');

// ---- the label form, generated from the schema ----

function renderLabels() {
  const box = $('label-fields');
  box.textContent = '';
  const schema = state.pipeline && state.pipeline.label_schema;
  if (schema && schema.properties) {
    box.append(...objectFields(schema, []));
  } else {
    box.append(el('p', { class: 'hint', text: 'This collection takes any labels: add a name and a value for each.' }), el('div', { id: 'kv-rows' }),
      el('button', { type: 'button', class: 'button secondary', id: 'kv-add', text: 'Add a label' }));
    $('kv-add').addEventListener('click', () => addPair());
    addPair();
  }
}

function objectFields(schema, path) {
  const required = new Set(schema.required || []);
  return Object.entries(schema.properties || {}).map(([name, spec]) => field(name, spec || {}, [...path, name], required.has(name)));
}

function field(name, spec, path, required) {
  const pointer = pointerOf(path);
  const id = fieldId(pointer);
  const title = spec.title || name;
  const mark = required ? el('span', { class: 'required', 'aria-hidden': 'true', text: ' *' }) : null;
  const hint = spec.description ? el('p', { class: 'hint', id: id + '-hint', text: spec.description }) : null;
  const error = el('p', { class: 'field-error', id: id + '-error', role: 'alert' });
  const describedBy = [hint ? id + '-hint' : null, id + '-error'].filter(Boolean).join(' ');
  const type = Array.isArray(spec.type) ? spec.type.find((t) => t !== 'null') : spec.type;
  if (type === 'object' && spec.properties) {
    const set = el('fieldset', { 'data-pointer': pointer }, el('legend', {}, title, mark), hint, ...objectFields(spec, path), error);
    return set;
  }
  let input;
  if (Array.isArray(spec.enum)) {
    input = el('select', { id, 'data-kind': type || 'string' });
    if (!required) input.append(el('option', { value: '', text: '—' }));
    for (const option of spec.enum) input.append(el('option', { value: JSON.stringify(option), text: String(option) }));
    if (spec.default !== undefined) input.value = JSON.stringify(spec.default);
  } else if (type === 'boolean') {
    input = el('input', { id, type: 'checkbox', 'data-kind': 'boolean' });
    input.checked = spec.default === true;
  } else if (type === 'integer' || type === 'number') {
    input = el('input', { id, type: 'number', inputmode: type === 'integer' ? 'numeric' : 'decimal', step: type === 'integer' ? '1' : 'any',
      min: spec.minimum, max: spec.maximum, 'data-kind': type });
    if (spec.default !== undefined) input.value = spec.default;
  } else {
    input = el('input', { id, type: 'text', pattern: spec.pattern, minlength: spec.minLength, maxlength: spec.maxLength, 'data-kind': 'string' });
    if (spec.default !== undefined) input.value = spec.default;
  }
  input.setAttribute('data-pointer', pointer);
  input.setAttribute('aria-describedby', describedBy);
  if (required) { input.required = true; input.setAttribute('aria-required', 'true'); }
  const limits = [spec.minimum !== undefined ? `at least ${spec.minimum}` : null, spec.maximum !== undefined ? `at most ${spec.maximum}` : null].filter(Boolean);
  const limitHint = limits.length ? el('p', { class: 'hint', text: limits.join(', ') }) : null;
  if (type === 'boolean') {
    return el('div', { class: 'field' }, el('label', { for: id }, input, ' ', title, mark), hint, error);
  }
  return el('div', { class: 'field' }, el('label', { for: id }, title, mark), hint, limitHint, input, error);
}

function addPair() {
  const rows = $('kv-rows');
  const n = rows.children.length + 1;
  const name = el('input', { type: 'text', id: `kv-name-${n}`, 'data-role': 'name' });
  const value = el('input', { type: 'text', id: `kv-value-${n}`, 'data-role': 'value' });
  const remove = el('button', { type: 'button', class: 'button secondary', 'aria-label': `Remove label ${n}`, text: '×' });
  const row = el('div', { class: 'kv' }, el('div', {}, el('label', { for: name.id, text: `Name ${n}` }), name),
    el('div', {}, el('label', { for: value.id, text: `Value ${n}` }), value), remove);
  remove.addEventListener('click', () => row.remove());
  rows.append(row);
}

// A number only when its canonical text is exactly what was typed, as the server types query
// labels: `007`, `1e5` and long codes stay strings, so no digit is lost.
function typed(text) {
  const n = Number(text);
  if (text !== '' && Number.isFinite(n) && String(n) === text) return n;
  if (text === 'true' || text === 'false') return text === 'true';
  return text;
}

function setPointer(target, pointer, value) {
  const parts = pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let node = target;
  parts.slice(0, -1).forEach((p) => { node = node[p] = node[p] || {}; });
  node[parts[parts.length - 1]] = value;
}

function collectLabels() {
  const labels = {};
  if ($('kv-rows')) {
    for (const row of $('kv-rows').children) {
      const name = row.querySelector('[data-role=name]').value.trim();
      if (name) labels[name] = typed(row.querySelector('[data-role=value]').value.trim());
    }
    return labels;
  }
  for (const input of $('label-fields').querySelectorAll('input[data-pointer], select[data-pointer]')) {
    const kind = input.getAttribute('data-kind');
    let value;
    if (kind === 'boolean') value = input.checked;
    else if (input.tagName === 'SELECT') { if (input.value === '') continue; value = JSON.parse(input.value); }
    else if (input.value.trim() === '') continue;
    else if (kind === 'integer' || kind === 'number') value = Number(input.value);
    else value = input.value;
    setPointer(labels, input.getAttribute('data-pointer'), value);
  }
  return labels;
}

// ---- the photo ----

function choose(file) {
  if (!file) return;
  state.file = file;
  const preview = $('preview');
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  showFieldError('photo', '');
}

function setUpPhoto() {
  $('photo').addEventListener('change', (e) => choose(e.target.files[0]));
  const drop = $('drop');
  ['dragenter', 'dragover'].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add('over'); }));
  ['dragleave', 'drop'].forEach((t) => drop.addEventListener(t, () => drop.classList.remove('over')));
  drop.addEventListener('drop', (e) => { e.preventDefault(); choose(e.dataTransfer.files[0]); });
  document.addEventListener('paste', (e) => {
    const item = [...(e.clipboardData ? e.clipboardData.items : [])].find((i) => i.type.startsWith('image/'));
    if (item) choose(item.getAsFile());
  });
}

// ---- errors in plain words, next to the field they concern ----

function showFieldError(id, message) {
  const input = $(id);
  const box = $(id + '-error');
  if (box) box.textContent = message;
  if (input) input.setAttribute('aria-invalid', message ? 'true' : 'false');
}

function clearErrors() {
  for (const box of document.querySelectorAll('.field-error')) box.textContent = '';
  for (const input of document.querySelectorAll('[aria-invalid]')) input.setAttribute('aria-invalid', 'false');
  status('');
}

function status(message, isError = false) {
  $('status').textContent = message;
  $('status').className = isError ? 'error' : '';
}

function megabytes(bytes) {
  return (bytes / 1048576).toFixed(0) + ' MB';
}

function explain(code, problem) {
  const limits = (state.pipeline && state.pipeline.limits) || {};
  switch (problem.status) {
    case 400: return `The server could not read what was sent (${problem.detail}). Please choose the photo again and resend.`;
    case 401: return 'The access token was not accepted: check it (or ask the organisers for a new one) and send again.';
    case 403: return 'This access token is not for this collection. Enter the token for this collection and send again.';
    case 404: return 'This collection no longer exists. Reload the page and choose another one.';
    case 409: return 'This submission was already sent with different content. Reload the page and send again.';
    case 413: return `The photo is too large: the limit is ${megabytes(limits.max_body_bytes || 0)}. Take a smaller photo or lower the camera resolution.`;
    case 415: return `This file is not a photo we can read (${(limits.formats || ['jpeg', 'png']).join(', ')}). Choose a photo file.`;
    case 429: return 'Too many photos in a short time. Wait a minute and send again.';
    case 503: return 'The server is busy or storage is unavailable; nothing was stored. Send again in a moment.';
    default: return `Something went wrong (${problem.status} ${code}). Send again in a moment.`;
  }
}

function showProblem(problem) {
  if (problem.status === 422 && Array.isArray(problem.errors)) {
    const general = [];
    let first = null;
    for (const error of problem.errors) {
      const pointer = error.path || '';
      const target = document.querySelector(`[data-pointer="${CSS.escape(pointer)}"]`);
      if (target) {
        const id = target.id || fieldId(pointer);
        const box = $(fieldId(pointer) + '-error');
        if (box) box.textContent = box.textContent ? box.textContent + ' ' + error.message : error.message;
        if (target.id) target.setAttribute('aria-invalid', 'true');
        first = first || target;
        void id;
      } else if (pointer.startsWith('/image') || pointer.startsWith('/barcodes')) {
        showFieldError('photo', error.message);
        first = first || $('photo');
      } else {
        general.push(error.message);
      }
    }
    status('Please correct what is marked below. ' + general.join(' '), true);
    if (first && first.focus) first.focus();
    return;
  }
  status(explain(problem.code, problem), true);
}

// ---- sending ----

function upload(url, form, onProgress, asynchronous) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    if (asynchronous) xhr.setRequestHeader('Prefer', 'respond-async');
    xhr.responseType = 'json';
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => resolve({ status: xhr.status, body: xhr.response, retryAfter: Number(xhr.getResponseHeader('Retry-After')) || 0 });
    xhr.onerror = () => reject(new Error('network'));
    xhr.ontimeout = () => reject(new Error('timeout'));
    xhr.send(form);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function send(event) {
  event.preventDefault();
  clearErrors();
  if (!state.file) {
    showFieldError('photo', 'Choose a photo first.');
    $('photo').focus();
    return;
  }
  if (needsToken(access().submit) && !token()) {
    showFieldError('token', 'Enter the token you were given for this collection.');
    $('token').focus();
    return;
  }
  const labels = collectLabels();
  const form = new FormData();
  form.append(state.pipeline.image_field || 'image', state.file, state.file.name || 'photo');
  form.append(state.pipeline.labels_field || 'labels', JSON.stringify(labels));
  // One id for this submission: every retry reuses it, so the server stores it once.
  const id = crypto.randomUUID();
  const url = `/api/v1/pipelines/${encodeURIComponent(state.pipeline.name)}/submissions/${id}`;
  const asynchronous = sendsAsync(state.file);
  $('send').disabled = true;
  $('progress-box').hidden = false;
  $('progress').value = 0;
  try {
    for (let attempt = 1; attempt <= 4; attempt++) {
      try {
        const res = await upload(url, form, (share) => { $('progress').value = Math.round(share * 100); }, asynchronous);
        if (res.status === 503 && attempt < 4) {
          status(`The server is busy; trying again (${attempt}).`);
          await sleep(1000 * Math.max(1, res.retryAfter));
          continue;
        }
        if (res.status === 200 || res.status === 201) { showResult(res.body); return; }
        if (res.status === 202) { $('progress-box').hidden = true; await followJob(res.body); return; }
        showProblem(res.body || { status: res.status, code: 'unknown' });
        return;
      } catch (networkError) {
        if (attempt === 4) throw networkError;
        status(`The connection dropped; trying again (${attempt}).`);
        await sleep(1000 * attempt);
      }
    }
  } catch (e) {
    status('The photo could not be sent: check the connection and press Send again. Nothing is stored twice.', true);
  } finally {
    $('send').disabled = false;
    $('progress-box').hidden = true;
  }
}

// ---- asynchronous submissions: large photos are queued and followed live ----

// Large photos go through the queue, where the sender can follow them: not when the
// collection's records (and so its jobs) are closed to readers, unless it is asynchronous.
function sendsAsync(file) {
  const p = state.pipeline;
  if (p.mode === 'async') return true;
  return p.async_above_bytes != null && file.size > p.async_above_bytes && access().read !== 'closed';
}

const STAGES = {
  queued: 'Your photo is queued; you may close this page and come back to this address.',
  decode: 'Reading the barcodes…',
  validate: 'Checking the photo and its labels…',
  store: 'Storing…',
};

function showJob(job) {
  status(STAGES[job.stage || job.state] || STAGES.queued);
}

// The job's events as they happen (fetched, not EventSource, so that a token can be sent),
// then its final state.
async function followJob(job) {
  history.replaceState(null, '', `${location.pathname}${location.search}#job=${job.id}`);
  showJob(job);
  if (access().read === 'closed') {
    status('Your photo is queued and will be checked and stored; this collection does not show results here.');
    return;
  }
  const res = await fetch(`/api/v1/jobs/${job.id}/events`, { headers: authHeaders() });
  if (res.ok && res.body) {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const data = buffer.slice(0, cut).split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5)).join('\n');
        buffer = buffer.slice(cut + 2);
        if (data) showJob(JSON.parse(data));
      }
    }
  }
  await settle(job.id);
}

// The job's outcome: a stored job answers 303, which fetch follows to the record.
async function settle(id) {
  for (;;) {
    const res = await fetch(`/api/v1/jobs/${id}`, { headers: authHeaders() });
    const body = await res.json();
    if (!res.ok) { showProblem(body); return; }
    if (res.redirected) { history.replaceState(null, '', `${location.pathname}${location.search}`); showResult(body); return; }
    if (body.state === 'rejected' || body.state === 'failed') { showProblem(body.problem); return; }
    showJob(body);
    await sleep(2000);
  }
}

function showResult(record) {
  status('');
  $('result').hidden = false;
  const image = $('result-image');
  if (state.file) image.src = URL.createObjectURL(state.file);
  else showThumbnail(image, `/api/v1/submissions/${record.id}/image`);
  const svg = $('overlay');
  svg.setAttribute('viewBox', `0 0 ${record.image.width} ${record.image.height}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.textContent = '';
  const ns = 'http://www.w3.org/2000/svg';
  const stroke = Math.max(3, record.image.width / 150);
  const list = $('codes');
  list.textContent = '';
  for (const code of record.barcodes) {
    const points = code.points.map((p) => p.join(',')).join(' ');
    const shape = document.createElementNS(ns, code.points.length > 2 ? 'polygon' : 'polyline');
    shape.setAttribute('points', points);
    shape.setAttribute('fill', 'none');
    shape.setAttribute('stroke', '#00c853');
    shape.setAttribute('stroke-width', stroke);
    svg.append(shape);
    const [x, y] = code.points[0] || [0, 0];
    const text = document.createElementNS(ns, 'text');
    text.setAttribute('x', x);
    text.setAttribute('y', Math.max(stroke * 6, y - stroke * 2));
    text.setAttribute('font-size', stroke * 6);
    text.setAttribute('fill', '#006b2c');
    text.setAttribute('stroke', '#fff');
    text.setAttribute('stroke-width', stroke);
    text.setAttribute('paint-order', 'stroke');
    text.setAttribute('font-weight', 'bold');
    text.textContent = code.text;
    svg.append(text);
    list.append(el('li', {}, el('code', { class: 'barcode-text', text: code.text }), ` ${code.format.replace(/_/g, '-')} (${code.kind})`));
  }
  if (!record.barcodes.length) list.append(el('li', { text: 'No barcode was found in this photo.' }));
  // Lines of text an ocr extractor read: a dashed box each, and the line in the list.
  for (const line of (record.text && record.text.lines) || []) {
    const box = document.createElementNS(ns, 'rect');
    const { x, y, w, h } = line.box;
    box.setAttribute('x', x);
    box.setAttribute('y', y);
    box.setAttribute('width', w);
    box.setAttribute('height', h);
    box.setAttribute('fill', 'none');
    box.setAttribute('stroke', '#2962ff');
    box.setAttribute('stroke-width', stroke / 2);
    box.setAttribute('stroke-dasharray', `${stroke * 2} ${stroke}`);
    box.setAttribute('class', 'text-line');
    svg.append(box);
    list.append(el('li', {}, el('q', { class: 'text-line', text: line.text }), ` text (${Math.round(line.confidence)}% sure)`));
  }
  $('record-id').textContent = record.id;
  $('stored').textContent = record.stored.map((s) => `${s.actor}: ${s.location}`).join('; ');
  $('result').scrollIntoView({ behavior: 'smooth' });
  $('result-title').focus && $('result-title').setAttribute('tabindex', '-1');
  $('result-title').focus();
  loadRecent(true);
}

// ---- recent submissions ----

async function loadRecent(fromStart) {
  const name = state.pipeline ? state.pipeline.name : 'default';
  const list = $('recent-list');
  const note = $('recent-note');
  const read = access().read;
  note.hidden = true;
  if (read === 'closed' || (needsToken(read) && !token())) {
    list.textContent = '';
    $('older').hidden = true;
    note.textContent = read === 'closed'
      ? 'Submissions to this collection are not shown here.'
      : 'Enter the access token to see the submissions of this collection.';
    note.hidden = false;
    return;
  }
  const url = fromStart || !state.next ? `/api/v1/submissions?pipeline=${encodeURIComponent(name)}&limit=10` : state.next;
  const res = await fetch(url, { headers: authHeaders() });
  if (!res.ok) {
    note.textContent = res.status === 401 || res.status === 403
      ? 'This access token may not read this collection.'
      : 'The submissions could not be loaded; reload the page to try again.';
    note.hidden = false;
    return;
  }
  const page = await res.json();
  if (fromStart || !state.next) list.textContent = '';
  for (const record of page.records) {
    const codes = record.barcodes.map((b) => b.text).join(', ') || 'no barcode';
    const image = el('img', { alt: `Photo ${record.id}`, loading: 'lazy', width: 160 });
    showThumbnail(image, `/api/v1/submissions/${record.id}/image?max_side=320`);
    list.append(el('li', {},
      image,
      el('div', {}, el('div', {}, el('code', { text: codes })),
        el('div', { class: 'meta', text: `${new Date(record.received_at).toLocaleString()} · ${JSON.stringify(record.labels)}` }),
        el('div', { class: 'meta', text: record.id }))));
  }
  if (!page.records.length && (fromStart || !state.next)) list.append(el('li', { text: 'Nothing yet.' }));
  state.next = page.next;
  $('older').hidden = !page.next;
}

// An <img> cannot send a token: a protected thumbnail is fetched and shown from memory.
async function showThumbnail(image, url) {
  if (!needsToken(access().read)) { image.src = url; return; }
  const res = await fetch(url, { headers: authHeaders() });
  if (res.ok) image.src = URL.createObjectURL(await res.blob());
}

// ---- start ----

async function start() {
  setUpPhoto();
  $('form').addEventListener('submit', send);
  $('again').addEventListener('click', () => { $('result').hidden = true; state.file = null; $('preview').hidden = true; $('photo').value = ''; $('photo').focus(); });
  $('older').addEventListener('click', () => loadRecent(false));
  const res = await fetch('/api/v1/pipelines');
  state.pipelines = (await res.json()).pipelines;
  const select = $('pipeline');
  for (const p of state.pipelines) select.append(el('option', { value: p.name, text: p.name }));
  const wanted = new URLSearchParams(location.search).get('pipeline');
  state.pipeline = state.pipelines.find((p) => p.name === wanted) || state.pipelines.find((p) => p.name === 'default') || state.pipelines[0];
  select.value = state.pipeline.name;
  $('pipeline-field').hidden = state.pipelines.length < 2;
  select.addEventListener('change', () => {
    state.pipeline = state.pipelines.find((p) => p.name === select.value);
    showAccess();
    renderLabels();
    loadRecent(true);
  });
  $('token').addEventListener('change', () => {
    sessionStorage.setItem('librarian-token', $('token').value.trim());
    showFieldError('token', '');
    loadRecent(true);
  });
  showAccess();
  renderLabels();
  loadRecent(true);
  document.body.setAttribute('data-ready', 'true');
  // Back to a job this address names (the page was closed while it ran).
  const job = new URLSearchParams(location.hash.slice(1)).get('job');
  if (job) followJob({ id: job, state: 'queued' });
}

start();
