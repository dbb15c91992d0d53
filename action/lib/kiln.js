'use strict';
// Where kiln comes from, and how it is run: the kiln on PATH when its
// version is the action's own, else one built from the action's source
// (Go, CGO off) and kept in the runner's tool cache by commit; as root
// directly, otherwise through sudo with only the variables kiln needs.

const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const MODULE = 'github.com/kiln-build/kiln';

// which finds an executable on the PATH in env.
function which(name, env) {
  for (const dir of (env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
}

// sourceHash is a digest of the Go source under dir (go.mod, go.sum and
// every file below cmd/ and internal/), the action's identity when it was
// downloaded without Git metadata.
function sourceHash(dir) {
  const h = crypto.createHash('sha256');
  const walk = (rel) => {
    const abs = path.join(dir, rel);
    const st = fs.statSync(abs);
    if (st.isDirectory()) {
      for (const e of fs.readdirSync(abs).sort()) {
        if (e === 'testdata') continue;
        walk(path.join(rel, e));
      }
    } else if (st.isFile()) {
      h.update(rel + '\0');
      h.update(fs.readFileSync(abs));
      h.update('\0');
    }
  };
  for (const top of ['go.mod', 'go.sum', 'cmd', 'internal']) {
    if (fs.existsSync(path.join(dir, top))) walk(top);
  }
  return h.digest('hex').slice(0, 40);
}

// actionVersion is the version and commit of the action's own source:
// the Git commit of its checkout, else the ref it was used at when that is
// a commit id, else a digest of its source.
function actionVersion(actionDir, env) {
  const ref = env.GITHUB_ACTION_REF || '';
  try {
    const commit = execFileSync('git', ['-C', actionDir, 'rev-parse', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    // git answers for the repository the directory is in: only trust it
    // when that repository is the action's own (a Go module named kiln).
    const top = execFileSync('git', ['-C', actionDir, 'rev-parse', '--show-toplevel'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execFileSync('git', ['-C', actionDir, 'status', '--porcelain', '--', 'go.mod', 'go.sum', 'cmd', 'internal'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    if (/^[0-9a-f]{40}$/.test(commit) && fs.realpathSync(top) === fs.realpathSync(actionDir) && dirty === '') {
      return { version: ref || commit.slice(0, 12), commit };
    }
  } catch {
    // not a Git checkout
  }
  if (/^[0-9a-f]{40}$/.test(ref)) return { version: ref.slice(0, 12), commit: ref };
  const h = sourceHash(actionDir);
  return { version: ref || `src-${h.slice(0, 12)}`, commit: `src-${h}` };
}

// versionMatches reads `kiln version` output ("kiln V (commit C)") and
// says whether it is the wanted build: the same commit (either may be
// abbreviated, at least 7 characters), or the same release version when
// the action was used at a tag.
function versionMatches(out, want) {
  const m = /^kiln (\S+) \(commit (\S+)\)/m.exec(out);
  if (!m) return false;
  const [, version, commit] = m;
  if (commit !== 'unknown' && commit.length >= 7 && want.commit.length >= 7 &&
      (want.commit.startsWith(commit) || commit.startsWith(want.commit))) {
    return true;
  }
  return /^v\d/.test(want.version) && version === want.version;
}

// toolDir is where the built kiln is kept: RUNNER_TOOL_CACHE/kiln/COMMIT/ARCH,
// the tool cache's own layout (a sibling ARCH.complete marks it whole).
function toolDir(env, commit, arch) {
  const root = env.RUNNER_TOOL_CACHE || path.join(os.tmpdir(), 'kiln-tool-cache');
  return path.join(root, 'kiln', commit, arch);
}

// locate returns the kiln binary to run, building it when needed.
function locate({ actionDir, env, arch = process.arch, log = () => {} }) {
  const want = actionVersion(actionDir, env);
  const onPath = which('kiln', env);
  if (onPath) {
    let out = '';
    try {
      out = execFileSync(onPath, ['version'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    } catch {
      // an old or broken kiln: build our own
    }
    if (versionMatches(out, want)) {
      log(`using ${onPath} (${out.trim()})`);
      return { bin: onPath, from: 'path', want };
    }
    log(`${onPath} is "${out.trim()}", not the action's ${want.version} (commit ${want.commit}): using the action's own build`);
  }
  const dir = toolDir(env, want.commit, arch);
  const bin = path.join(dir, 'kiln');
  if (fs.existsSync(`${dir}.complete`) && fs.existsSync(bin)) {
    log(`using ${bin} from the tool cache`);
    return { bin, from: 'tool-cache', want };
  }
  const go = which('go', env);
  if (!go) {
    throw new Error(`kiln ${want.version} is not on PATH and Go is not installed to build it (add actions/setup-go before this step, or install kiln ${want.version})`);
  }
  log(`building kiln ${want.version} (commit ${want.commit}) from the action's source into ${dir}`);
  fs.mkdirSync(dir, { recursive: true });
  const ldflags = `-s -w -X ${MODULE}/internal/cli.Version=${want.version} -X ${MODULE}/internal/cli.Commit=${want.commit}`;
  try {
    execFileSync(go, ['build', '-trimpath', '-ldflags', ldflags, '-o', bin, './cmd/kiln'], {
      cwd: actionDir, env: { ...env, CGO_ENABLED: '0' }, stdio: ['ignore', 'inherit', 'pipe'],
    });
  } catch (e) {
    const msg = (e.stderr ? e.stderr.toString() : e.message).trim().split('\n').pop();
    throw new Error(`building kiln from ${actionDir}: ${msg}`);
  }
  fs.writeFileSync(`${dir}.complete`, '');
  return { bin, from: 'built', want };
}

// PASS are the variables kiln reads, by exact name: the GitHub Actions
// cache service (type=gha), registry credentials, the state dir, the job
// summary, reproducible timestamps and proxies.
const PASS = [
  'ACTIONS_CACHE_URL', 'ACTIONS_RESULTS_URL', 'ACTIONS_RUNTIME_TOKEN', 'ACTIONS_CACHE_SERVICE_V2', 'ACTIONS_CACHE_MODE',
  'DOCKER_CONFIG', 'DOCKER_BUILD_SUMMARY', 'SOURCE_DATE_EPOCH',
  'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy',
];

// PREFIXES are passed on as families: GITHUB_* (the job summary file,
// the run's identity) and KILN_* (kiln's own settings).
const PREFIXES = ['GITHUB_', 'KILN_'];

// kilnEnv is the environment kiln runs with through sudo: the variables in
// PASS and PREFIXES that are set, and DOCKER_CONFIG pointing at the runner
// user's docker config (where docker/login-action wrote the credentials)
// when it is not set. Nothing else of the step's environment goes along.
function kilnEnv(env) {
  const out = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) continue;
    if (PASS.includes(k) || PREFIXES.some((p) => k.startsWith(p))) out[k] = v;
  }
  if (!out.DOCKER_CONFIG && env.HOME) out.DOCKER_CONFIG = path.join(env.HOME, '.docker');
  return out;
}

// command is how kiln is started: directly as root, else through sudo
// keeping exactly the variables of kilnEnv (--preserve-env=LIST; values
// never appear on the command line).
function command(bin, args, { env, uid }) {
  if (uid === 0) return { file: bin, args, env };
  const keep = kilnEnv(env);
  const names = Object.keys(keep).sort();
  const sudoArgs = ['-n'];
  if (names.length > 0) sudoArgs.push(`--preserve-env=${names.join(',')}`);
  sudoArgs.push('--', bin, ...args);
  // sudo itself needs PATH to be found; it resets the rest.
  return { file: 'sudo', args: sudoArgs, env: { ...keep, PATH: env.PATH || '/usr/bin:/bin' } };
}

module.exports = { which, sourceHash, actionVersion, versionMatches, toolDir, locate, kilnEnv, command, PASS, PREFIXES };
