// save.mjs is the post step of the actions/cache stand-in: save PATH as KEY
// unless the restore hit KEY exactly.
import * as cache from '@actions/cache';
const env = process.env;
if (env.STATE_hit === env.INPUT_KEY) {
  console.log(`cache hit on ${env.INPUT_KEY}: not saving`);
} else {
  const id = await cache.saveCache([env.INPUT_PATH], env.INPUT_KEY);
  console.log(`saved ${env.INPUT_PATH} as ${env.INPUT_KEY} (id ${id})`);
}
