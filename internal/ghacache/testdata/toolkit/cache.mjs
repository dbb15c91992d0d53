// Drives the official @actions/cache client for kiln's cache-server tests:
//   node cache.mjs save PATH KEY
//   node cache.mjs restore PATH KEY [RESTORE_KEY...]
// It prints one JSON line ({"id":N} or {"key":K|null}) and exits 0; the
// service URLs and token come from the ACTIONS_* environment.
import * as cache from '@actions/cache';

const [op, path, key, ...restoreKeys] = process.argv.slice(2);
if (op === 'save') {
  const id = await cache.saveCache([path], key);
  console.log(JSON.stringify({ id }));
} else if (op === 'restore') {
  const matched = await cache.restoreCache([path], key, restoreKeys);
  console.log(JSON.stringify({ key: matched ?? null }));
} else {
  console.error(`usage: node cache.mjs save|restore PATH KEY [RESTORE_KEY...]`);
  process.exit(2);
}
