'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');

const { readInputs } = require('../lib/inputs');
const { plan, WHY } = require('../lib/argv');

const ctx = { contextDir: '/src', tmpDir: '/tmp/k', arch: 'x64', env: { MY_ENV: 'env-secret' }, cwd: '/work' };
const inputsOf = (vars) => {
  const env = {};
  for (const [k, v] of Object.entries(vars)) env[`INPUT_${k.toUpperCase()}`] = v;
  return readInputs(env);
};

test('the build-push-action inputs that work map to kiln flags', () => {
  const p = plan(inputsOf({
    file: 'docker/Dockerfile',
    tags: 'reg/app:1,reg/app:latest',
    push: 'true',
    target: 'final',
    'build-args': 'A=1\nB=x,y',
    labels: 'org.opencontainers.image.title=app',
    annotations: 'manifest:org.opencontainers.image.title=app\norg.example=1',
    'cache-from': 'type=registry,ref=reg/app:cache',
    'cache-to': 'type=registry,ref=reg/app:cache,mode=max',
    'no-cache': 'true',
    'no-cache-filters': 'build,test',
    'add-hosts': 'db:10.0.0.2,cache=10.0.0.3',
    'shm-size': '2g',
    ulimit: 'nofile=1024:2048\nnproc=100',
    'build-contexts': 'src=./other\nbase=docker-image://reg/base:1\nself={{defaultContext}}:sub',
    network: 'none',
    outputs: 'type=oci,dest=/tmp/o.tar',
    pull: 'true',
    builder: 'builder-1234',
  }), ctx);
  assert.deepEqual(p.args, [
    'build', '--progress', 'plain',
    '--file', 'docker/Dockerfile',
    '--tag', 'reg/app:1', '--tag', 'reg/app:latest',
    '--push',
    '--target', 'final',
    '--build-arg', 'A=1', '--build-arg', 'B=x,y',
    '--label', 'org.opencontainers.image.title=app',
    '--cache-from', 'type=registry,ref=reg/app:cache',
    '--cache-to', 'type=registry,ref=reg/app:cache,mode=max',
    '--no-cache',
    '--no-cache-filter', 'build', '--no-cache-filter', 'test',
    '--add-host', 'db:10.0.0.2', '--add-host', 'cache=10.0.0.3',
    '--shm-size', '2g',
    '--ulimit', 'nofile=1024:2048', '--ulimit', 'nproc=100',
    '--annotation', 'manifest:org.opencontainers.image.title=app', '--annotation', 'org.example=1',
    '--build-context', 'src=./other', '--build-context', 'base=docker-image://reg/base:1', '--build-context', 'self=/src/sub',
    '--network', 'none',
    '--output', 'type=oci,dest=/tmp/o.tar',
    '--metadata-file', '/tmp/k/metadata.json',
    '/src',
  ]);
  assert.deepEqual(p.warnings, []);
  assert.equal(p.notes.length, 1);
  assert.match(p.notes[0], /builder-1234/);
  assert.equal(p.load, null);
});

test('each input kiln cannot honour gets exactly one warning naming it', async (t) => {
  const values = {
    allow: 'network.host,security.insecure',
    attests: 'type=sbom',
    'cgroup-parent': '/ci',
    provenance: 'mode=max',
    sbom: 'true',
  };
  assert.deepEqual(Object.keys(values).sort(), Object.keys(WHY).sort());
  for (const [name, v] of Object.entries(values)) {
    await t.test(name, () => {
      const p = plan(inputsOf({ [name]: v }), ctx);
      assert.equal(p.warnings.length, 1, p.warnings.join('\n'));
      assert.ok(p.warnings[0].startsWith(`${name}: `), p.warnings[0]);
      assert.deepEqual(p.args, ['build', '--progress', 'plain', '--metadata-file', '/tmp/k/metadata.json', '/src']);
    });
  }
  await t.test('provenance and sbom false ask for nothing', () => {
    assert.deepEqual(plan(inputsOf({ provenance: 'false', sbom: 'false' }), ctx).warnings, []);
  });
  await t.test('index annotations: one warning, manifest ones kept', () => {
    const p = plan(inputsOf({ annotations: 'index:a=1\nmanifest:b=2\nindex-descriptor:c=3' }), ctx);
    assert.equal(p.warnings.length, 1);
    assert.match(p.warnings[0], /^annotations: .*index:a, index-descriptor:c/);
    assert.deepEqual(p.args.filter((a, i) => p.args[i - 1] === '--annotation'), ['manifest:b=2']);
  });
  await t.test('with two platforms index and manifest-descriptor annotations are kept', () => {
    const p = plan(inputsOf({ platforms: 'linux/amd64,linux/arm64', annotations: 'index:a=1\nmanifest-descriptor:b=2\nindex-descriptor:c=3' }), ctx);
    assert.equal(p.warnings.length, 1);
    assert.match(p.warnings[0], /^annotations: kiln writes no index descriptor annotations: index-descriptor:c/);
    assert.deepEqual(p.args.filter((a, i) => p.args[i - 1] === '--annotation'), ['index:a=1', 'manifest-descriptor:b=2']);
  });
  await t.test('network default is kiln\'s default', () => {
    const p = plan(inputsOf({ network: 'default' }), ctx);
    assert.deepEqual(p.warnings, []);
    assert.deepEqual(p.args.slice(p.args.indexOf('--network'), p.args.indexOf('--network') + 2), ['--network', 'default']);
  });
  await t.test('an unknown network', () => {
    const p = plan(inputsOf({ network: 'bridge' }), ctx);
    assert.equal(p.warnings.length, 1);
    assert.match(p.warnings[0], /^network: /);
    assert.ok(!p.args.includes('--network'));
  });
});

test('ulimit splits on newlines only; add-hosts and no-cache-filters on commas too', () => {
  const p = plan(inputsOf({ ulimit: 'nofile=1024:2048,nproc=10\ncore=-1', 'add-hosts': 'a:10.0.0.1\nb:10.0.0.2,c:10.0.0.3', 'no-cache-filters': 'x\ny,z' }), ctx);
  const of = (flag) => p.args.filter((a, i) => p.args[i - 1] === flag);
  assert.deepEqual(of('--ulimit'), ['nofile=1024:2048,nproc=10', 'core=-1']);
  assert.deepEqual(of('--add-host'), ['a:10.0.0.1', 'b:10.0.0.2', 'c:10.0.0.3']);
  assert.deepEqual(of('--no-cache-filter'), ['x', 'y', 'z']);
  assert.deepEqual(p.warnings, []);
});

test('ssh and call are errors', () => {
  assert.throws(() => plan(inputsOf({ ssh: 'default' }), ctx), /^Error: ssh: /);
  assert.throws(() => plan(inputsOf({ call: 'check' }), ctx), /^Error: call: /);
  assert.deepEqual(plan(inputsOf({ call: 'build' }), ctx).warnings, []);
});

test('platforms become one --platform list, commas and lines alike', () => {
  const platformArg = (p) => p.args.filter((a, i) => p.args[i - 1] === '--platform');
  for (const [pl, want] of [
    ['linux/amd64', ['linux/amd64']],
    ['linux/amd64,linux/arm64', ['linux/amd64,linux/arm64']],
    ['linux/amd64\nlinux/arm64/v8', ['linux/amd64,linux/arm64/v8']],
    [' linux/amd64 , linux/arm/v7 \n', ['linux/amd64,linux/arm/v7']],
    ['', []],
  ]) {
    const p = plan(inputsOf({ platforms: pl }), ctx);
    assert.deepEqual(platformArg(p), want, `platforms ${JSON.stringify(pl)}`);
    assert.deepEqual(p.warnings, []);
  }
});

test('secrets become private files; secret-files are resolved', () => {
  const p = plan(inputsOf({
    secrets: 'TOKEN=abc,def\n"MULTI=line1\nline2"',
    'secret-envs': 'FROM_ENV=MY_ENV',
    'secret-files': 'KEY=./key.pem',
  }), ctx);
  assert.deepEqual(p.files, [
    { path: '/tmp/k/secret-0', data: 'abc,def' },
    { path: '/tmp/k/secret-1', data: 'line1\nline2' },
    { path: '/tmp/k/secret-2', data: 'env-secret' },
  ]);
  const secrets = p.args.filter((a, i) => p.args[i - 1] === '--secret');
  assert.deepEqual(secrets, ['id=TOKEN,src=/tmp/k/secret-0', 'id=MULTI,src=/tmp/k/secret-1', 'id=FROM_ENV,src=/tmp/k/secret-2', 'id=KEY,src=/work/key.pem']);
  // No secret value is on the command line.
  for (const a of p.args) {
    assert.ok(!/abc|line1|env-secret/.test(a), a);
  }
  assert.throws(() => plan(inputsOf({ 'secret-envs': 'X=UNSET_VAR' }), ctx), /UNSET_VAR/);
  assert.throws(() => plan(inputsOf({ secrets: 'novalue' }), ctx), /secrets/);
});

test('load and type=docker become a docker archive to load', () => {
  for (const vars of [{ load: 'true' }, { outputs: 'type=docker' }, { load: 'true', outputs: 'type=docker,name=x' }]) {
    const p = plan(inputsOf(vars), ctx);
    assert.equal(p.load, '/tmp/k/image.tar');
    assert.deepEqual(p.args.filter((a, i) => p.args[i - 1] === '--output'), ['type=docker,dest=/tmp/k/image.tar']);
  }
  const p = plan(inputsOf({ outputs: 'type=docker,dest=/out/img.tar\ntype=cacheonly' }), ctx);
  assert.equal(p.load, null);
  assert.deepEqual(p.args.filter((a, i) => p.args[i - 1] === '--output'), ['type=docker,dest=/out/img.tar']);
});

test('in a Git context the Dockerfile is a path in the repository', () => {
  const git = { ...ctx, contextDir: '/tmp/k/git-context-1', gitContext: true };
  assert.deepEqual(plan(inputsOf({ file: 'docker/Dockerfile' }), git).args.slice(3, 5), ['--file', '/tmp/k/git-context-1/docker/Dockerfile']);
  assert.deepEqual(plan(inputsOf({ file: '/abs/Dockerfile' }), git).args.slice(3, 5), ['--file', '/abs/Dockerfile']);
  assert.deepEqual(plan(inputsOf({ file: 'docker/Dockerfile' }), ctx).args.slice(3, 5), ['--file', 'docker/Dockerfile']);
});

test('the default Git context hands its token on as GIT_AUTH_TOKEN.<host>', () => {
  const p = plan(inputsOf({}), { ...ctx, gitContext: true, gitAuth: { host: 'github.com', token: 'ghs_x' } });
  assert.deepEqual(p.files, [{ path: '/tmp/k/secret-0', data: 'ghs_x' }]);
  assert.ok(p.args.includes('id=GIT_AUTH_TOKEN.github.com,src=/tmp/k/secret-0'));
  assert.ok(!p.args.join(' ').includes('ghs_x'));
  // A secret of that id given by the user wins.
  const q = plan(inputsOf({ secrets: 'GIT_AUTH_TOKEN.github.com=mine' }), { ...ctx, gitContext: true, gitAuth: { host: 'github.com', token: 'ghs_x' } });
  assert.deepEqual(q.files.map((f) => f.data), ['mine']);
  // No host (a file:// server in tests), no token: nothing.
  assert.deepEqual(plan(inputsOf({}), { ...ctx, gitContext: true, gitAuth: { host: '', token: 't' } }).files, []);
});
