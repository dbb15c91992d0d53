'use strict';
// The default build context of build-push-action: the repository at the
// commit that triggered the workflow, fetched with git (not the checked-out
// workspace).

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

// defaultSource is what build-push-action builds when no context is given:
// ${GITHUB_SERVER_URL}/${GITHUB_REPOSITORY}.git at GITHUB_SHA; for a pull
// request with DOCKER_DEFAULT_GIT_CONTEXT_PR_HEAD_REF=true, the PR's head
// ref instead of the merge commit.
function defaultSource(env) {
  const server = (env.GITHUB_SERVER_URL || 'https://github.com').replace(/\/+$/, '');
  if (!env.GITHUB_REPOSITORY) throw new Error('context: no context given and GITHUB_REPOSITORY is not set');
  let ref = env.GITHUB_SHA || env.GITHUB_REF;
  if (!ref) throw new Error('context: no context given and neither GITHUB_SHA nor GITHUB_REF is set');
  const pr = /^refs\/pull\/(\d+)\/merge$/.exec(env.GITHUB_REF || '');
  if (pr && /^(1|true)$/i.test(env.DOCKER_DEFAULT_GIT_CONTEXT_PR_HEAD_REF || '')) {
    ref = `refs/pull/${pr[1]}/head`;
  }
  return { url: `${server}/${env.GITHUB_REPOSITORY}.git`, ref, subdir: '' };
}

// parseGitContext reads a context that is a Git URL, as buildx takes it:
// URL[#REF[:SUBDIR]]. It returns null for anything else (a directory).
function parseGitContext(s) {
  if (!/^(https?:\/\/|git@|git:\/\/|ssh:\/\/|file:\/\/)/.test(s)) return null;
  if (!/\.git(#|$)/.test(s) && !/^git(@|:\/\/)/.test(s) && !s.includes('#')) return null;
  const [url, frag = ''] = s.split('#', 2);
  const [ref, subdir = ''] = frag.split(':', 2);
  return { url, ref: ref || 'HEAD', subdir };
}

// gitEnv passes the token to git as an HTTP header through git's
// environment-only configuration, never on a command line (where other
// users could read it) and never into the checkout's config.
function gitEnv(env, url, token) {
  const out = { ...env, GIT_TERMINAL_PROMPT: '0' };
  if (token && /^https?:\/\//.test(url)) {
    const basic = Buffer.from(`x-access-token:${token}`).toString('base64');
    out.GIT_CONFIG_COUNT = '1';
    out.GIT_CONFIG_KEY_0 = `http.${new URL(url).origin}/.extraheader`;
    out.GIT_CONFIG_VALUE_0 = `AUTHORIZATION: basic ${basic}`;
  }
  return out;
}

// fetchContext fetches src ({url, ref, subdir}) into a new directory under
// tmpDir (one commit, no history) and returns the context directory.
function fetchContext(src, { tmpDir, env, token, log = () => {} }) {
  const dir = fs.mkdtempSync(path.join(tmpDir, 'git-context-'));
  const genv = gitEnv(env, src.url, token);
  const git = (...a) => execFileSync('git', a, { cwd: dir, env: genv, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  log(`fetching the Git context ${src.url}#${src.ref}`);
  try {
    git('init', '-q');
    git('remote', 'add', 'origin', src.url);
    try {
      git('fetch', '-q', '--depth=1', '--no-tags', 'origin', src.ref);
    } catch (e) {
      // A server that refuses a shallow fetch of a commit id (an old git
      // daemon) still serves the whole history.
      git('fetch', '-q', '--no-tags', 'origin');
    }
    git('-c', 'advice.detachedHead=false', 'checkout', '-q', /^[0-9a-f]{40}$/.test(src.ref) ? src.ref : 'FETCH_HEAD');
    git('submodule', 'update', '-q', '--init', '--recursive', '--depth=1');
  } catch (e) {
    const msg = (e.stderr ? e.stderr.toString() : e.message).trim().split('\n').pop();
    throw new Error(`context: fetching ${src.url}#${src.ref}: ${msg}`);
  }
  const ctxDir = src.subdir ? path.join(dir, src.subdir) : dir;
  if (!fs.existsSync(ctxDir)) throw new Error(`context: ${src.subdir} is not a directory of ${src.url}#${src.ref}`);
  return ctxDir;
}

module.exports = { defaultSource, parseGitContext, gitEnv, fetchContext };
