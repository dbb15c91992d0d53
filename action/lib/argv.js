'use strict';
// The mapping from build-push-action's inputs to one `kiln build` command
// line. Pure: it reads nothing and writes nothing; what must be written
// (secret files) or done after (docker load) is returned.

const path = require('node:path');

// WHY holds, for every input kiln cannot honour yet, the one warning it
// gets when set. The text says what happens instead.
const WHY = {
  allow: 'kiln grants no entitlements: RUN --network=host needs no network.host, and security.insecure is not supported; ignored',
  attests: 'kiln writes no attestations yet; ignored',
  'cgroup-parent': 'kiln does not place RUN steps in a chosen cgroup yet; ignored',
  provenance: 'kiln writes no provenance attestation yet; ignored',
  sbom: 'kiln writes no SBOM attestation yet; ignored',
};

// plan maps inputs to the kiln command line.
//
// ctx: { contextDir, gitContext (the context was fetched with git), gitAuth
// ({host, token} for the default Git context), tmpDir, arch, env (for
// secret-envs), cwd }
// returns { args, warnings, notes, files: [{path, data}], load: path|null }
// and throws on an input that must stop the step (ssh, a call other than
// build, a missing secret env).
function plan(inputs, ctx) {
  const args = ['build', '--progress', 'plain'];
  const warnings = [];
  const notes = [];
  const files = [];
  let load = null;
  const warn = (name, why) => warnings.push(`${name}: ${why}`);
  const add = (flag, values) => { for (const v of values) args.push(flag, v); };

  if (inputs.ssh.length > 0) {
    throw new Error('ssh: kiln does not forward SSH agents or keys to RUN steps (RUN --mount=type=ssh is not supported); remove the ssh input');
  }
  if (inputs.call !== '' && inputs.call !== 'build') {
    throw new Error(`call: kiln only builds (call=build); "${inputs.call}" would otherwise run a full build instead of a check`);
  }
  if (inputs.builder !== '') {
    notes.push(`builder "${inputs.builder}" is not needed: kiln builds without a BuildKit builder`);
  }
  for (const name of Object.keys(WHY)) {
    const v = inputs[name];
    const set = Array.isArray(v) ? v.length > 0 : v !== '';
    // provenance/sbom "false" asks for what kiln does anyway.
    if (set && !((name === 'provenance' || name === 'sbom') && v === 'false')) {
      warn(name, WHY[name]);
    }
  }

  if (inputs.file !== '') {
    // In a Git context the Dockerfile is a path in the repository, as
    // buildx reads it from the Git source.
    const f = ctx.gitContext && !path.isAbsolute(inputs.file) ? path.join(ctx.contextDir, inputs.file) : inputs.file;
    args.push('--file', f);
  }
  // platforms: one --platform list, as buildx's --platform takes it;
  // kiln normalizes and dedupes, and foreign RUN steps need QEMU
  // (docker/setup-qemu-action, or kiln binfmt --install).
  if (inputs.platforms.length > 0) args.push('--platform', inputs.platforms.join(','));
  add('--tag', inputs.tags);
  if (inputs.push) args.push('--push');
  if (inputs.target !== '') args.push('--target', inputs.target);
  add('--build-arg', inputs['build-args']);
  add('--label', inputs.labels);
  add('--cache-from', inputs['cache-from']);
  add('--cache-to', inputs['cache-to']);
  if (inputs['no-cache']) args.push('--no-cache');
  add('--no-cache-filter', inputs['no-cache-filters']);
  // RUN steps' /etc/hosts entries, /dev/shm and limits, as buildx passes
  // them; kiln checks each and refuses host-gateway (RUN has a network
  // namespace of its own).
  add('--add-host', inputs['add-hosts']);
  if (inputs['shm-size'] !== '') args.push('--shm-size', inputs['shm-size']);
  add('--ulimit', inputs.ulimit);
  // pull: kiln has no local image store; every FROM is resolved in its
  // registry on every build, which is what pull asks for.

  // index: and manifest-descriptor: annotations need an index, which kiln
  // writes for two platforms or more; index-descriptor: it never writes.
  const multi = new Set(inputs.platforms.map((p) => p.toLowerCase())).size > 1;
  const kept = [];
  const dropped = [];
  for (const a of inputs.annotations) {
    const key = a.split('=')[0];
    const m = /^([a-z-]+)(\[[^\]]*\])?:/.exec(key);
    if (m && (m[1] === 'index-descriptor' || (!multi && ['index', 'manifest-descriptor'].includes(m[1])))) {
      dropped.push(key);
    } else {
      kept.push(a);
    }
  }
  if (dropped.length > 0) {
    const why = multi ? 'kiln writes no index descriptor annotations' : 'kiln writes one image manifest, no index, for a single platform';
    warn('annotations', `${why}: ${dropped.join(', ')} left out (manifest-level annotations are written)`);
  }
  add('--annotation', kept);
  add('--build-context', inputs['build-contexts'].map((bc) => resolveDefaultContext(bc, ctx.contextDir)));

  switch (inputs.network) {
    case '':
      break;
    case 'default':
    case 'host':
    case 'none':
      // default is BuildKit's sandbox network: kiln's default, a network
      // namespace of the build's own with outbound access.
      args.push('--network', inputs.network);
      break;
    default:
      warn('network', `kiln's RUN steps use default, host or none, not "${inputs.network}"; kiln's default (the build's own network namespace) is used`);
  }

  for (const s of inputs.secrets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new Error('secrets: an entry is not ID=VALUE');
    const id = s.slice(0, eq);
    const p = path.join(ctx.tmpDir, `secret-${files.length}`);
    files.push({ path: p, data: s.slice(eq + 1) });
    args.push('--secret', `id=${id},src=${p}`);
  }
  for (const s of inputs['secret-envs']) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new Error(`secret-envs: "${s}" is not ID=ENVVAR`);
    const id = s.slice(0, eq);
    const name = s.slice(eq + 1);
    const value = ctx.env[name];
    if (value === undefined || value === '') throw new Error(`secret-envs: environment variable ${name} (secret ${id}) is not set`);
    // A file, not the variable: kiln may run through sudo, which passes
    // on only the variables kiln itself needs.
    const p = path.join(ctx.tmpDir, `secret-${files.length}`);
    files.push({ path: p, data: value });
    args.push('--secret', `id=${id},src=${p}`);
  }
  if (ctx.gitAuth && ctx.gitAuth.host && ctx.gitAuth.token) {
    // As build-push-action does for its default Git context: the token is
    // the secret GIT_AUTH_TOKEN.<host> for RUN steps that fetch more.
    const id = `GIT_AUTH_TOKEN.${ctx.gitAuth.host}`;
    if (!args.some((a) => a.startsWith(`id=${id},`))) {
      const p = path.join(ctx.tmpDir, `secret-${files.length}`);
      files.push({ path: p, data: ctx.gitAuth.token });
      args.push('--secret', `id=${id},src=${p}`);
    }
  }
  for (const s of inputs['secret-files']) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new Error(`secret-files: "${s}" is not ID=PATH`);
    args.push('--secret', `id=${s.slice(0, eq)},src=${path.resolve(ctx.cwd, s.slice(eq + 1))}`);
  }

  for (const o of inputs.outputs) {
    const type = /(?:^|,)type=([^,]*)/.exec(o);
    if (type && type[1] === 'docker' && !/(?:^|,)dest=/.test(o)) {
      load = load || path.join(ctx.tmpDir, 'image.tar');
      continue;
    }
    if (type && type[1] === 'cacheonly') continue; // kiln with no output builds and exports the cache only
    args.push('--output', o);
  }
  if (inputs.load) load = load || path.join(ctx.tmpDir, 'image.tar');
  if (load) args.push('--output', `type=docker,dest=${load}`);

  args.push('--metadata-file', path.join(ctx.tmpDir, 'metadata.json'));
  args.push(ctx.contextDir);
  return { args, warnings, notes, files, load };
}

// resolveDefaultContext replaces {{defaultContext}} in a build-contexts
// entry with the main context directory.
function resolveDefaultContext(bc, contextDir) {
  const eq = bc.indexOf('=');
  if (eq < 0) return bc;
  const v = bc.slice(eq + 1);
  if (!v.startsWith('{{defaultContext}}')) return bc;
  const sub = v.slice('{{defaultContext}}'.length).replace(/^:/, '');
  return `${bc.slice(0, eq)}=${sub ? path.join(contextDir, sub) : contextDir}`;
}

module.exports = { plan, WHY };
