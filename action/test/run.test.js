'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { PassThrough } = require('node:stream');

const { run, lastLine } = require('../lib/run');

test('lastLine', () => {
  assert.equal(lastLine('a\nb\n\n  \n'), 'b');
  assert.equal(lastLine(''), '');
  assert.equal(lastLine('#4 ERROR: exit code 2\nkiln: Dockerfile:7: RUN make: exit code 2\n  | make: *** [all] Error 2\n  |\n'), 'kiln: Dockerfile:7: RUN make: exit code 2');
  assert.equal(lastLine('  | only output\n'), '| only output');
});

test('run streams output and keeps the last stderr line', async () => {
  const so = new PassThrough();
  const se = new PassThrough();
  let seen = '';
  se.on('data', (b) => { seen += b; });
  const r = await run('sh', ['-c', 'echo out; echo first >&2; echo "Dockerfile:3: unknown instruction: FOO" >&2; exit 2'], { env: process.env, stdout: so, stderr: se });
  assert.equal(r.code, 2);
  assert.equal(r.last, 'Dockerfile:3: unknown instruction: FOO');
  assert.match(seen, /first/);
  assert.equal(so.read().toString(), 'out\n');
});
