'use strict';
// The kiln GitHub Action: build-push-action's inputs and outputs, with
// kiln doing the build. Everything runs on node's standard library.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { readInputs } = require('./lib/inputs');
const { plan } = require('./lib/argv');
const { command: wfCommand, setOutputs } = require('./lib/commands');
const { defaultSource, parseGitContext, fetchContext } = require('./lib/gitctx');
const kiln = require('./lib/kiln');
const { run } = require('./lib/run');

const actionDir = path.resolve(__dirname, '..');
const out = (s) => process.stdout.write(s);
const info = (s) => out(`${s}\n`);

// resolveContext is the directory to build: the context input, a Git URL
// fetched, or (no context) the repository at GITHUB_SHA fetched with
// github-token. {{defaultContext}} stands for the latter.
function resolveContext(inputs, env, tmpDir) {
  const ctx = inputs.context;
  const token = inputs['github-token'];
  const fetchOpts = { tmpDir, env, token, log: info };
  if (ctx === '' || ctx.startsWith('{{defaultContext}}')) {
    const src = defaultSource(env);
    src.subdir = ctx.replace(/^\{\{defaultContext\}\}:?/, '');
    let host = '';
    try {
      host = new URL(src.url).host;
    } catch {
      // not a URL with a host: no token to hand on
    }
    return { contextDir: fetchContext(src, fetchOpts), gitContext: true, gitAuth: { host, token } };
  }
  const git = parseGitContext(ctx);
  if (git) return { contextDir: fetchContext(git, fetchOpts), gitContext: true };
  return { contextDir: path.resolve(ctx), gitContext: false };
}

async function main() {
  const env = process.env;
  const inputs = readInputs(env);
  const tmpDir = fs.mkdtempSync(path.join(env.RUNNER_TEMP || os.tmpdir(), 'kiln-action-'));
  fs.chmodSync(tmpDir, 0o700);
  try {
    const c0 = resolveContext(inputs, env, tmpDir);
    const p = plan(inputs, { ...c0, tmpDir, arch: process.arch, env, cwd: process.cwd() });
    for (const n of p.notes) info(n);
    for (const w of p.warnings) out(wfCommand('warning', w));
    for (const f of p.files) fs.writeFileSync(f.path, f.data, { mode: 0o600 });

    const k = kiln.locate({ actionDir, env, log: info });
    const uid = process.getuid();
    if (uid !== 0 && !kiln.which('sudo', env)) {
      throw new Error('kiln needs root (overlayfs, runc): run the job as root or on a runner with passwordless sudo');
    }
    const c = kiln.command(k.bin, p.args, { env, uid });
    info(`kiln ${p.args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
    const res = await run(c.file, c.args, { env: c.env });
    if (res.code !== 0) {
      throw new Error(`kiln failed with: ${res.last || `exit code ${res.code}`}`);
    }

    const mdFile = p.args[p.args.indexOf('--metadata-file') + 1];
    const md = JSON.parse(fs.readFileSync(mdFile, 'utf8'));
    if (p.load) {
      info(`docker load -i ${p.load}`);
      const lr = await run('docker', ['load', '-i', p.load], { env });
      if (lr.code !== 0) throw new Error(`docker load failed with: ${lr.last || `exit code ${lr.code}`}`);
    }
    setOutputs(env, {
      imageid: md['containerimage.config.digest'] || '',
      digest: md['containerimage.digest'] || '',
      metadata: JSON.stringify(md, null, 2),
    });
  } finally {
    try {
      fs.rmSync(tmpDir, { recursive: true, force: true });
    } catch {
      // files kiln wrote as root in a private dir: left for the runner's cleanup
    }
  }
}

main().catch((e) => {
  out(wfCommand('error', e.message));
  process.exitCode = 1;
});
