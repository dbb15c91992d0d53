'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { NAMES, LISTS, parseList, parseBool, readInputs } = require('../lib/inputs');

test('every input of action.yml is read, and only those', () => {
  const yml = fs.readFileSync(path.join(__dirname, '..', '..', 'action.yml'), 'utf8');
  const section = yml.split(/^inputs:$/m)[1].split(/^outputs:$/m)[0];
  const declared = [...section.matchAll(/^ {2}([a-z-]+):$/gm)].map((m) => m[1]).sort();
  assert.equal(declared.length, 33);
  assert.deepEqual(declared, NAMES);
});

test('list rules', async (t) => {
  const cases = [
    { name: 'newlines', text: 'a\nb\n', comma: false, want: ['a', 'b'] },
    { name: 'commas split csv lists', text: 'reg/app:1,reg/app:2\nreg/app:3', comma: true, want: ['reg/app:1', 'reg/app:2', 'reg/app:3'] },
    { name: 'commas never split line lists', text: 'type=registry,ref=reg/app:cache,mode=max\ntype=inline', comma: false, want: ['type=registry,ref=reg/app:cache,mode=max', 'type=inline'] },
    { name: 'comments and blank lines dropped', text: '# a comment\n\n  \nA=1\n  # indented comment\nB=2', comma: false, want: ['A=1', 'B=2'] },
    { name: 'a # after text is kept', text: 'COLOR=#fff', comma: false, want: ['COLOR=#fff'] },
    { name: 'items trimmed, empties dropped', text: ' a , ,b \n', comma: true, want: ['a', 'b'] },
    { name: 'quoted field keeps its comma', text: '"a,b",c', comma: true, want: ['a,b', 'c'] },
    { name: 'quoted field spans lines', text: '"KEY=line1\nline2"\nOTHER=x', comma: false, want: ['KEY=line1\nline2', 'OTHER=x'] },
    { name: 'doubled quote', text: '"say ""hi"""', comma: false, want: ['say "hi"'] },
    { name: 'quote inside a field is plain', text: 'K="a b"', comma: false, want: ['K="a b"'] },
    { name: 'CRLF', text: 'a\r\nb\r\n', comma: true, want: ['a', 'b'] },
    { name: 'empty', text: '', comma: true, want: [] },
  ];
  for (const c of cases) {
    await t.test(c.name, () => assert.deepEqual(parseList(c.text, { comma: c.comma }), c.want));
  }
});

test('the lists split on commas are the ones build-push-action splits', () => {
  const csv = Object.entries(LISTS).filter(([, r]) => r === 'csv').map(([n]) => n).sort();
  assert.deepEqual(csv, ['add-hosts', 'allow', 'no-cache-filters', 'platforms', 'secret-envs', 'ssh', 'tags']);
  for (const n of ['cache-from', 'cache-to', 'build-args', 'labels', 'annotations', 'outputs', 'secrets']) {
    assert.equal(LISTS[n], 'lines', n);
  }
});

test('booleans', () => {
  assert.equal(parseBool('push', '', false), false);
  assert.equal(parseBool('push', 'True', false), true);
  assert.equal(parseBool('push', 'FALSE', true), false);
  assert.throws(() => parseBool('push', 'yes', false), /push: "yes" is not a boolean/);
});

test('readInputs reads INPUT_ variables', () => {
  const inputs = readInputs({
    INPUT_TAGS: 'reg/a:1,reg/a:2',
    'INPUT_CACHE-TO': 'type=local,dest=/tmp/c,mode=max',
    INPUT_PUSH: 'true',
    INPUT_CONTEXT: ' . ',
  });
  assert.deepEqual(inputs.tags, ['reg/a:1', 'reg/a:2']);
  assert.deepEqual(inputs['cache-to'], ['type=local,dest=/tmp/c,mode=max']);
  assert.equal(inputs.push, true);
  assert.equal(inputs.load, false);
  assert.equal(inputs.context, '.');
  assert.deepEqual(inputs.secrets, []);
  assert.equal(Object.keys(inputs).length, 33);
});
