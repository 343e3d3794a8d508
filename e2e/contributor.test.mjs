// The contributor page in headless Chromium: a person picks a photo of a product, fills the
// form generated from the pipeline's schema and sends it; a wrong label is shown beside its
// field; a page on another origin can submit when (and only when) CORS allows it.
//
// Needs TEST_LIBRARIAN_BIN (the librarian binary) and Chromium at CHROMIUM (default
// /usr/bin/chromium); scripts/test provides both. Screenshots go to e2e/screenshots/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const screenshots = join(here, 'screenshots');
const binary = process.env.TEST_LIBRARIAN_BIN;
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const EAN = '5449000000996';

const schema = {
  type: 'object',
  required: ['class', 'gtin'],
  properties: {
    class: { type: 'integer', title: 'Class', description: 'Shelf class of the product', minimum: 0, maximum: 9 },
    gtin: { type: 'string', title: 'GTIN', description: 'The number under the barcode', pattern: '^[0-9]{8,14}$' },
    condition: { type: 'string', title: 'Condition', enum: ['new', 'used', 'damaged'], default: 'new' },
    fragile: { type: 'boolean', title: 'Fragile' },
  },
};

function freePort() {
  return new Promise((resolve) => {
    const server = createTcpServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// A librarian with a `products` pipeline (the schema above) and any `extra` config lines;
// `products` lines go under the products pipeline, `top` lines before every table.
async function startLibrarian(corsOrigin, { products = ['read = "public"'], top = [], extra = [] } = {}) {
  assert.ok(binary && existsSync(binary), `TEST_LIBRARIAN_BIN must name the librarian binary (got ${binary}): run scripts/test`);
  const dir = mkdtempSync(join(tmpdir(), 'librarian-e2e-'));
  const port = await freePort();
  const config = [
    ...top,
    '[server]', `bind = "127.0.0.1:${port}"`, `cors_origins = ["${corsOrigin}"]`,
    '[pipelines.products]', 'validators = ["labels", "photo"]', 'extractors = ["barcode"]', 'actors = ["disk"]', ...products,
    '[validators.labels]', 'kind = "json-schema"', 'schema_file = "schema.json"',
    ...extra,
  ].join('\n');
  writeFileSync(join(dir, 'librarian.toml'), config);
  writeFileSync(join(dir, 'schema.json'), JSON.stringify(schema));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LIBRARIAN_')));
  const token = (pipelines) => execFileSync(binary, ['token', 'create', '--name', 'e2e', '--pipelines', pipelines], { cwd: dir, env, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  const child = spawn(binary, ['serve', '-q'], { cwd: dir, env, stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${url}/healthz`)).ok) break; } catch { /* not yet */ }
    assert.ok(i < 200 && child.exitCode === null, 'librarian starts');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, dir, data: join(dir, 'data'), token, stop: () => child.kill() };
}

// An EAN-13 symbol drawn on a canvas in the page, returned as PNG bytes.
async function eanPng(page, digits) {
  const dataUrl = await page.evaluate((code) => {
    const L = ['0001101', '0011001', '0010011', '0111101', '0100011', '0110001', '0101111', '0111011', '0110111', '0001011'];
    const G = ['0100111', '0110011', '0011011', '0100001', '0011101', '0111001', '0000101', '0010001', '0001001', '0010111'];
    const R = L.map((p) => [...p].map((b) => (b === '0' ? '1' : '0')).join(''));
    const parity = ['LLLLLL', 'LLGLGG', 'LLGGLG', 'LLGGGL', 'LGLLGG', 'LGGLLG', 'LGGGLL', 'LGLGLG', 'LGLGGL', 'LGGLGL'][+code[0]];
    let bits = '101';
    for (let i = 1; i <= 6; i++) bits += (parity[i - 1] === 'L' ? L : G)[+code[i]];
    bits += '01010';
    for (let i = 7; i <= 12; i++) bits += R[+code[i]];
    bits += '101';
    const module = 4, quiet = 14, height = 220;
    const canvas = document.createElement('canvas');
    canvas.width = (bits.length + 2 * quiet) * module;
    canvas.height = height + 80;
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = '#000';
    [...bits].forEach((b, i) => { if (b === '1') ctx.fillRect((quiet + i) * module, 40, module, height); });
    return canvas.toDataURL('image/png');
  }, digits);
  return Buffer.from(dataUrl.split(',')[1], 'base64');
}

const records = (dir) => (existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')) : []);

let browser;
let librarian;

before(async () => {
  mkdirSync(screenshots, { recursive: true });
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  librarian = await startLibrarian('*');
});

after(async () => {
  librarian?.stop();
  await browser?.close();
});

test('the lines of text an ocr extractor read are outlined on the photo and listed', async () => {
  // The server side of OCR is tested in Rust (tests/ocr.rs); here the real answer gets the
  // `text` an ocr pipeline adds, so that the page's drawing of it is what is tested.
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const text = {
    text: 'BEST BEFORE\n12.05.2027 <b>LOT</b>',
    lines: [
      { text: 'BEST BEFORE', confidence: 96.2, box: { x: 10, y: 20, w: 200, h: 30 } },
      { text: '12.05.2027 <b>LOT</b>', confidence: 88.6, box: { x: 10, y: 60, w: 260, h: 30 } },
    ],
  };
  await page.route('**/api/v1/pipelines/products/submissions/*', async (route) => {
    const response = await route.fetch();
    const record = await response.json();
    await route.fulfill({ response, json: { ...record, text } });
  });
  await page.goto(`${librarian.url}/?pipeline=products`);
  await page.waitForSelector('body[data-ready=true]');
  await page.setInputFiles('#photo', { name: 'product.png', mimeType: 'image/png', buffer: await eanPng(page, EAN) });
  await page.waitForSelector('#preview:not([hidden])');
  await page.getByLabel('Class').fill('3');
  await page.getByLabel('GTIN').fill(EAN);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.waitForSelector('#result:not([hidden])');
  const boxes = page.locator('#overlay rect.text-line');
  assert.equal(await boxes.count(), 2, 'a box per line');
  assert.deepEqual(
    await boxes.evaluateAll((rects) => rects.map((r) => ['x', 'y', 'width', 'height'].map((a) => r.getAttribute(a)).join(' '))),
    ['10 20 200 30', '10 60 260 30'],
    'each at its place in the photo',
  );
  assert.deepEqual(await page.locator('q.text-line').allTextContents(), ['BEST BEFORE', '12.05.2027 <b>LOT</b>'], 'read text is shown as text, never as markup');
  assert.equal(await page.locator('#codes b').count(), 0);
  await page.screenshot({ path: join(screenshots, 'text-lines.png'), fullPage: true });
  await page.close();
});

test('a person sends a product photo and sees its barcode, its id and where it was stored', async () => {
  for (const [name, viewport] of [['desktop', { width: 1200, height: 900 }], ['phone', { width: 360, height: 740 }]]) {
    const page = await browser.newPage({ viewport });
    await page.goto(`${librarian.url}/?pipeline=products`);
    await page.waitForSelector('body[data-ready=true]');
    await page.screenshot({ path: join(screenshots, `${name}-before.png`), fullPage: true });
    const png = await eanPng(page, EAN);
    await page.setInputFiles('#photo', { name: 'product.png', mimeType: 'image/png', buffer: png });
    await page.waitForSelector('#preview:not([hidden])');
    await page.getByLabel('Class').fill('3');
    await page.getByLabel('GTIN').fill(EAN);
    await page.getByLabel('Condition').selectOption({ label: 'used' });
    await page.getByLabel('Fragile').check();
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await page.waitForSelector('#result:not([hidden])');
    const decoded = await page.locator('.barcode-text').first().textContent();
    assert.equal(decoded, EAN, 'the page shows the decoded value');
    const id = (await page.locator('#record-id').textContent()).trim();
    assert.match(id, /^[0-9a-f-]{36}$/, 'the page shows the record id');
    assert.equal(await page.locator('#overlay polyline, #overlay polygon').count(), 1, 'the barcode is outlined on the photo');
    await page.screenshot({ path: join(screenshots, `${name}-after.png`), fullPage: true });
    const stored = JSON.parse(readFileSync(join(librarian.data, `${id}.json`), 'utf8'));
    assert.deepEqual(stored.labels, { class: 3, gtin: EAN, condition: 'used', fragile: true }, 'the record holds the labels typed in');
    assert.ok(existsSync(join(librarian.data, `${id}.png`)), 'the photo is stored');
    const recent = page.locator('#recent-list li', { hasText: id });
    assert.ok(await recent.count() >= 1, 'the recent list shows the new record');
    await page.waitForFunction((rid) => [...document.querySelectorAll('#recent-list li')]
      .some((li) => li.textContent.includes(rid) && li.querySelector('img').naturalWidth > 0), id);
    const src = await recent.first().locator('img').getAttribute('src');
    assert.match(src, /max_side=320$/, 'the list shows a thumbnail, not the original');
    await page.close();
  }
});

test('a label that breaks the schema is explained beside its field and nothing is stored', async () => {
  const page = await browser.newPage({ viewport: { width: 360, height: 740 } });
  await page.goto(`${librarian.url}/?pipeline=products`);
  await page.waitForSelector('body[data-ready=true]');
  const before = records(librarian.data).length;
  await page.setInputFiles('#photo', { name: 'product.png', mimeType: 'image/png', buffer: await eanPng(page, EAN) });
  await page.getByLabel('Class').fill('12');
  await page.getByLabel('GTIN').fill('12ab');
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.waitForSelector('#status.error');
  const classError = await page.locator('#label_class-error').textContent();
  assert.match(classError, /12/, `the class field explains its error: "${classError}"`);
  assert.equal(await page.getByLabel('Class').getAttribute('aria-invalid'), 'true');
  const gtinError = await page.locator('#label_gtin-error').textContent();
  assert.ok(gtinError.length > 0, 'the GTIN field explains its error');
  assert.equal(await page.locator('#label_condition-error').textContent(), '', 'a valid field shows no error');
  await page.screenshot({ path: join(screenshots, 'phone-invalid.png'), fullPage: true });
  assert.equal(records(librarian.data).length, before, 'nothing was stored');
  await page.close();
});

test('the free label editor keeps what was typed: leading zeros, long codes and exponents stay text', async () => {
  const free = await startLibrarian('*', { extra: ['[pipelines.free]', 'auth = "none"', 'read = "public"', 'actors = ["disk"]'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(`${free.url}/?pipeline=free`);
    await page.waitForSelector('body[data-ready=true]');
    await page.setInputFiles('#photo', { name: 'product.png', mimeType: 'image/png', buffer: await eanPng(page, EAN) });
    const typed = [['gtin', '0012345678905'], ['serial', '99999999999999999999'], ['batch', '1e5'], ['count', '3'], ['price', '2.5'], ['checked', 'true']];
    for (const [i, [name, value]] of typed.entries()) {
      if (i > 0) await page.getByRole('button', { name: 'Add a label' }).click();
      await page.getByLabel(`Name ${i + 1}`, { exact: true }).fill(name);
      await page.getByLabel(`Value ${i + 1}`, { exact: true }).fill(value);
    }
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await page.waitForSelector('#result:not([hidden])');
    const id = (await page.locator('#record-id').textContent()).trim();
    const stored = JSON.parse(readFileSync(join(free.data, `${id}.json`), 'utf8'));
    assert.deepEqual(stored.labels, {
      gtin: '0012345678905', serial: '99999999999999999999', batch: '1e5', count: 3, price: 2.5, checked: true,
    }, 'a value is a number only when its text is the number\'s own text');
    await page.close();
  } finally {
    free.stop();
  }
});

test('a large photo is queued, followed live to its record, and found again from its address', async () => {
  const queued = await startLibrarian('*', { products: ['read = "public"', 'async_above_bytes = 1'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(`${queued.url}/?pipeline=products`);
    await page.waitForSelector('body[data-ready=true]');
    const statuses = [];
    await page.exposeFunction('seeStatus', (text) => statuses.push(text));
    await page.evaluate(() => new MutationObserver(() => window.seeStatus(document.getElementById('status').textContent))
      .observe(document.getElementById('status'), { childList: true, characterData: true, subtree: true }));
    await fillProduct(page);
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await page.waitForSelector('#result:not([hidden])');
    const id = (await page.locator('#record-id').textContent()).trim();
    assert.equal(await page.locator('.barcode-text').first().textContent(), EAN, 'the record of the job is shown');
    assert.ok(statuses.some((t) => /queued|Reading|Checking|Storing/.test(t)), `the stages were shown: ${JSON.stringify(statuses)}`);
    assert.ok(existsSync(join(queued.data, `${id}.json`)), 'the job stored the record');
    await page.close();

    const later = await browser.newPage({ viewport: { width: 360, height: 740 } });
    await later.goto(`${queued.url}/?pipeline=products#job=${id}`);
    await later.waitForSelector('#result:not([hidden])');
    assert.equal((await later.locator('#record-id').textContent()).trim(), id, 'the address leads back to the job\'s record');
    await later.waitForFunction(() => document.getElementById('result-image').naturalWidth > 0);
    await later.close();
  } finally {
    queued.stop();
  }
});

async function fillProduct(page) {
  await page.setInputFiles('#photo', { name: 'product.png', mimeType: 'image/png', buffer: await eanPng(page, EAN) });
  await page.getByLabel('Class').fill('3');
  await page.getByLabel('GTIN').fill(EAN);
}

test('a protected collection asks for a token kept for the tab; a closed one shows no history', async () => {
  const guarded = await startLibrarian('*', {
    products: [],
    top: ['[auth]', 'mode = "tokens"'],
    extra: ['[pipelines.open]', 'auth = "none"', 'actors = ["disk"]'],
  });
  try {
    const secret = guarded.token('products');
    const page = await browser.newPage({ viewport: { width: 360, height: 740 } });
    await page.goto(`${guarded.url}/?pipeline=products`);
    await page.waitForSelector('body[data-ready=true]');
    assert.ok(await page.locator('#token-field').isVisible(), 'the page asks for a token');
    assert.match(await page.locator('#recent-note').textContent(), /token/, 'history waits for the token');
    await fillProduct(page);
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    assert.match(await page.locator('#token-error').textContent(), /token/, 'sending without a token explains what is missing');
    assert.equal(records(guarded.data).length, 0, 'nothing was sent without the token');
    await page.getByLabel('Access token').fill(secret);
    await page.getByLabel('Access token').dispatchEvent('change');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await page.waitForSelector('#result:not([hidden])');
    const id = (await page.locator('#record-id').textContent()).trim();
    await page.waitForFunction((rid) => [...document.querySelectorAll('#recent-list li')]
      .some((li) => li.textContent.includes(rid) && li.querySelector('img').naturalWidth > 0), id);
    assert.match(await page.locator('#recent-list img').first().getAttribute('src'), /^blob:/, 'the protected thumbnail is fetched with the token');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('librarian-token')), secret, 'the token is kept for the session');
    assert.equal(await page.evaluate(() => localStorage.length), 0, 'and nowhere longer');
    await page.locator('#pipeline').selectOption('open');
    await page.waitForFunction(() => !document.getElementById('recent-note').hidden && document.getElementById('recent-note').textContent.includes('not shown'));
    assert.ok(await page.locator('#token-field').isHidden(), 'an open collection needs no token');
    await page.screenshot({ path: join(screenshots, 'phone-token.png'), fullPage: true });
    await page.close();
  } finally {
    guarded.stop();
  }
});

async function serveExamples() {
  const port = await freePort();
  const html = readFileSync(join(here, '..', 'examples', 'cross-origin.html'));
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  }).listen(port, '127.0.0.1');
  return { origin: `http://127.0.0.1:${port}`, close: () => server.close() };
}

async function crossOriginSend(examples, target) {
  const page = await browser.newPage();
  await page.goto(`${examples.origin}/cross-origin.html?librarian=${encodeURIComponent(target.url)}`);
  await page.setInputFiles('#photo', { name: 'product.png', mimeType: 'image/png', buffer: await eanPng(page, EAN) });
  await page.getByRole('button', { name: 'Send to Librarian' }).click();
  await page.waitForFunction(() => document.getElementById('out').textContent.length > 0);
  const out = await page.locator('#out').textContent();
  await page.close();
  return out;
}

test('a page on another origin submits when CORS allows its origin, and only then', async () => {
  const examples = await serveExamples();
  const allowed = await startLibrarian(examples.origin);
  const refused = await startLibrarian('http://127.0.0.1:9');
  try {
    const ok = await crossOriginSend(examples, allowed);
    assert.match(ok, /^201\n/, `the cross-origin PUT succeeds: ${ok.slice(0, 200)}`);
    assert.equal(records(allowed.data).length, 1);
    const blocked = await crossOriginSend(examples, refused);
    assert.match(blocked, /request failed/, `the browser blocks it: ${blocked.slice(0, 200)}`);
    assert.equal(records(refused.data).length, 0, 'the refused origin stored nothing');
  } finally {
    allowed.stop();
    refused.stop();
    examples.close();
  }
});
