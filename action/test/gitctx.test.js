'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { defaultSource, parseGitContext, gitEnv, fetchContext } = require('../lib/gitctx');

test('defaultSource is the repository at GITHUB_SHA', () => {
  const env = { GITHUB_SERVER_URL: 'https://github.com', GITHUB_REPOSITORY: 'o/r', GITHUB_SHA: 'abc', GITHUB_REF: 'refs/pull/7/merge' };
  assert.deepEqual(defaultSource(env), { url: 'https://github.com/o/r.git', ref: 'abc', subdir: '' });
  assert.equal(defaultSource({ ...env, DOCKER_DEFAULT_GIT_CONTEXT_PR_HEAD_REF: 'true' }).ref, 'refs/pull/7/head');
  assert.throws(() => defaultSource({}), /GITHUB_REPOSITORY/);
});

test('parseGitContext', () => {
  assert.deepEqual(parseGitContext('https://github.com/o/r.git#v1:docker'), { url: 'https://github.com/o/r.git', ref: 'v1', subdir: 'docker' });
  assert.deepEqual(parseGitContext('https://github.com/o/r.git'), { url: 'https://github.com/o/r.git', ref: 'HEAD', subdir: '' });
  assert.equal(parseGitContext('.'), null);
  assert.equal(parseGitContext('./sub/dir'), null);
});

test('the token reaches git only through its environment', () => {
  const e = gitEnv({}, 'https://github.com/o/r.git', 'tok');
  assert.equal(e.GIT_CONFIG_KEY_0, 'http.https://github.com/.extraheader');
  assert.equal(e.GIT_CONFIG_VALUE_0, `AUTHORIZATION: basic ${Buffer.from('x-access-token:tok').toString('base64')}`);
  assert.equal(gitEnv({}, 'file:///x', 'tok').GIT_CONFIG_COUNT, undefined);
});

test('fetchContext checks out GITHUB_SHA from a bare repository', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gitctx-'));
  const env = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@e', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@e' };
  const git = (cwd, ...a) => execFileSync('git', a, { cwd, env }).toString().trim();
  const work = path.join(dir, 'work');
  fs.mkdirSync(work);
  git(work, 'init', '-q');
  fs.writeFileSync(path.join(work, 'Dockerfile'), 'FROM scratch\n');
  fs.mkdirSync(path.join(work, 'sub'));
  fs.writeFileSync(path.join(work, 'sub', 'f'), 'one\n');
  git(work, 'add', '.');
  git(work, 'commit', '-qm', 'one');
  const first = git(work, 'rev-parse', 'HEAD');
  fs.writeFileSync(path.join(work, 'sub', 'f'), 'two\n');
  git(work, 'commit', '-qam', 'two');
  fs.mkdirSync(path.join(dir, 'srv', 'owner'), { recursive: true });
  git(dir, 'clone', '-q', '--bare', work, path.join(dir, 'srv', 'owner', 'repo.git'));

  const src = defaultSource({ GITHUB_SERVER_URL: `file://${path.join(dir, 'srv')}`, GITHUB_REPOSITORY: 'owner/repo', GITHUB_SHA: first });
  const tmpDir = path.join(dir, 'tmp');
  fs.mkdirSync(tmpDir);
  const ctxDir = fetchContext(src, { tmpDir, env, token: 'unused' });
  assert.equal(fs.readFileSync(path.join(ctxDir, 'sub', 'f'), 'utf8'), 'one\n');
  assert.equal(fs.readFileSync(path.join(ctxDir, 'Dockerfile'), 'utf8'), 'FROM scratch\n');

  const sub = fetchContext({ ...src, ref: git(work, 'rev-parse', 'HEAD'), subdir: 'sub' }, { tmpDir, env });
  assert.equal(fs.readFileSync(path.join(sub, 'f'), 'utf8'), 'two\n');

  assert.throws(() => fetchContext({ ...src, ref: 'f'.repeat(40) }, { tmpDir, env }), /^Error: context: fetching /);
  fs.rmSync(dir, { recursive: true });
});
