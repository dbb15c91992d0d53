'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { escapeData, command, outputBlock, setOutputs } = require('../lib/commands');

test('workflow command messages are escaped', () => {
  assert.equal(escapeData('50% done\r\nnext'), '50%25 done%0D%0Anext');
  assert.equal(command('warning', 'a\nb'), '::warning::a%0Ab\n');
});

test('an output block survives a value holding the first delimiter', () => {
  const ids = ['x', 'y'];
  const b = outputBlock('metadata', 'line1\nghadelimiter_x\n', () => ids.shift());
  assert.equal(b, 'metadata<<ghadelimiter_y\nline1\nghadelimiter_x\n\nghadelimiter_y\n');
});

// parseOutputs reads a GITHUB_OUTPUT file the way the runner does.
function parseOutputs(text) {
  const out = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<]+)<<(.+)$/.exec(lines[i]);
    if (!m) continue;
    const val = [];
    for (i++; lines[i] !== m[2]; i++) val.push(lines[i]);
    out[m[1]] = val.join('\n');
  }
  return out;
}

test('setOutputs appends multi-line values to GITHUB_OUTPUT', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'out-'));
  const file = path.join(dir, 'output');
  fs.writeFileSync(file, 'earlier<<EOF\nkept\nEOF\n');
  const md = JSON.stringify({ 'containerimage.digest': 'sha256:ab' }, null, 2);
  setOutputs({ GITHUB_OUTPUT: file }, { digest: 'sha256:ab', metadata: md });
  assert.deepEqual(parseOutputs(fs.readFileSync(file, 'utf8')), { earlier: 'kept', digest: 'sha256:ab', metadata: md });
  fs.rmSync(dir, { recursive: true });
});

test('without GITHUB_OUTPUT, the set-output command', () => {
  let got = '';
  setOutputs({}, { digest: 'a\nb' }, (s) => { got += s; });
  assert.equal(got, '::set-output name=digest::a%0Ab\n');
});
