// restore.mjs is the main step of the actions/cache stand-in: restore PATH
// from KEY or a RESTORE-KEYS prefix, as actions/cache does.
import * as fs from 'node:fs';
import * as cache from '@actions/cache';
const env = process.env;
const restoreKeys = (env['INPUT_RESTORE-KEYS'] || '').split('\n').map((s) => s.trim()).filter(Boolean);
const hit = await cache.restoreCache([env.INPUT_PATH], env.INPUT_KEY, restoreKeys);
console.log(hit ? `restored ${env.INPUT_PATH} from ${hit}` : `no cache for ${env.INPUT_KEY}`);
fs.appendFileSync(env.GITHUB_OUTPUT, `cache-hit=${hit === env.INPUT_KEY}\n`);
fs.appendFileSync(env.GITHUB_STATE, `hit=${hit || ''}\n`);
