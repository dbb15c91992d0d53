'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const kiln = require('../lib/kiln');

test('kilnEnv passes only what kiln needs', () => {
  const env = {
    HOME: '/home/runner',
    PATH: '/usr/bin',
    ACTIONS_RUNTIME_TOKEN: 't', ACTIONS_CACHE_URL: 'http://c/', ACTIONS_RESULTS_URL: 'http://r/',
    ACTIONS_CACHE_SERVICE_V2: 'true', ACTIONS_CACHE_MODE: 'read-only',
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'oidc',
    GITHUB_STEP_SUMMARY: '/s', GITHUB_SHA: 'abc', DOCKER_BUILD_SUMMARY: 'false',
    KILN_STATE: '/k', SOURCE_DATE_EPOCH: '0', HTTPS_PROXY: 'http://p',
    INPUT_SECRETS: 'X=1', AWS_SECRET_ACCESS_KEY: 'no', NPM_TOKEN: 'no', MY_ENV: 'no',
  };
  assert.deepEqual(kiln.kilnEnv(env), {
    ACTIONS_RUNTIME_TOKEN: 't', ACTIONS_CACHE_URL: 'http://c/', ACTIONS_RESULTS_URL: 'http://r/',
    ACTIONS_CACHE_SERVICE_V2: 'true', ACTIONS_CACHE_MODE: 'read-only',
    GITHUB_STEP_SUMMARY: '/s', GITHUB_SHA: 'abc', DOCKER_BUILD_SUMMARY: 'false',
    KILN_STATE: '/k', SOURCE_DATE_EPOCH: '0', HTTPS_PROXY: 'http://p',
    DOCKER_CONFIG: '/home/runner/.docker',
  });
  assert.equal(kiln.kilnEnv({ HOME: '/h', DOCKER_CONFIG: '/cfg' }).DOCKER_CONFIG, '/cfg');
});

test('as root kiln runs directly; otherwise through sudo keeping only the names', () => {
  const env = { PATH: '/usr/bin', HOME: '/home/runner', ACTIONS_RUNTIME_TOKEN: 'secret-token', OTHER: 'x' };
  assert.deepEqual(kiln.command('/k/kiln', ['build', '.'], { env, uid: 0 }), { file: '/k/kiln', args: ['build', '.'], env });
  const c = kiln.command('/k/kiln', ['build', '.'], { env, uid: 1001 });
  assert.equal(c.file, 'sudo');
  assert.deepEqual(c.args, ['-n', '--preserve-env=ACTIONS_RUNTIME_TOKEN,DOCKER_CONFIG', '--', '/k/kiln', 'build', '.']);
  assert.deepEqual(c.env, { ACTIONS_RUNTIME_TOKEN: 'secret-token', DOCKER_CONFIG: '/home/runner/.docker', PATH: '/usr/bin' });
  assert.ok(!c.args.join(' ').includes('secret-token'));
});

test('versionMatches', () => {
  const want = { version: 'v0.4.0', commit: '0123456789abcdef0123456789abcdef01234567' };
  assert.ok(kiln.versionMatches('kiln dev (commit 0123456789ab)\n', want));
  assert.ok(kiln.versionMatches('kiln v0.4.0 (commit unknown)\n', want));
  assert.ok(!kiln.versionMatches('kiln v0.3.0 (commit fedcba9876)\n', want));
  assert.ok(!kiln.versionMatches('kiln dev (commit 01234)\n', want));
  assert.ok(!kiln.versionMatches('something else', want));
  assert.ok(!kiln.versionMatches('kiln main (commit unknown)', { version: 'main', commit: 'src-ab' }));
});

test('locate: the kiln on PATH when it matches, else the tool cache', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'locate-'));
  const actionDir = path.join(dir, 'action');
  fs.mkdirSync(path.join(actionDir, 'cmd'), { recursive: true });
  fs.writeFileSync(path.join(actionDir, 'go.mod'), 'module github.com/kiln-build/kiln\n');
  const commit = 'ab'.repeat(20);
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  const fake = (where, out) => {
    fs.mkdirSync(where, { recursive: true });
    fs.writeFileSync(path.join(where, 'kiln'), `#!/bin/sh\necho '${out}'\n`, { mode: 0o755 });
  };
  const env = { PATH: `${bin}:/usr/bin:/bin`, GITHUB_ACTION_REF: commit, RUNNER_TOOL_CACHE: path.join(dir, 'tc') };

  fake(bin, `kiln dev (commit ${commit.slice(0, 12)})`);
  let got = kiln.locate({ actionDir, env, arch: 'x64' });
  assert.equal(got.from, 'path');
  assert.equal(got.bin, path.join(bin, 'kiln'));

  fake(bin, 'kiln v0.1.0 (commit 1111111111)');
  const td = kiln.toolDir(env, commit, 'x64');
  assert.equal(td, path.join(dir, 'tc', 'kiln', commit, 'x64'));
  fake(td, 'cached');
  fs.writeFileSync(`${td}.complete`, '');
  got = kiln.locate({ actionDir, env, arch: 'x64' });
  assert.equal(got.from, 'tool-cache');
  assert.equal(got.bin, path.join(td, 'kiln'));

  // No kiln anywhere and no Go: a message that says what to do.
  fs.rmSync(`${td}.complete`);
  assert.throws(() => kiln.locate({ actionDir, env: { ...env, PATH: bin }, arch: 'x64' }), /Go is not installed/);
  fs.rmSync(dir, { recursive: true });
});

test('actionVersion without Git: the source digest, stable and sensitive', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ver-'));
  fs.mkdirSync(path.join(dir, 'internal', 'x'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'go.mod'), 'module m\n');
  fs.writeFileSync(path.join(dir, 'internal', 'x', 'a.go'), 'package x\n');
  const a = kiln.actionVersion(dir, {});
  assert.match(a.commit, /^src-[0-9a-f]{40}$/);
  assert.deepEqual(kiln.actionVersion(dir, {}), a);
  fs.writeFileSync(path.join(dir, 'internal', 'x', 'a.go'), 'package x // changed\n');
  assert.notEqual(kiln.actionVersion(dir, {}).commit, a.commit);
  assert.equal(kiln.actionVersion(dir, { GITHUB_ACTION_REF: 'v1.2.0' }).version, 'v1.2.0');
  fs.rmSync(dir, { recursive: true });
});
