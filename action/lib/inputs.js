'use strict';
// Reading the action's inputs the way docker/build-push-action v7 does:
// the same 33 names, the same list rules, the same booleans.

// LISTS maps each list input to how its items are split. "lines": one item
// per line, a comma never splits (cache-*, build-args, labels, ...);
// "csv": lines and commas both split (tags, platforms, ...). Every other
// input is a single string (or a boolean, see BOOLEANS).
const LISTS = {
  'add-hosts': 'csv',
  allow: 'csv',
  annotations: 'lines',
  attests: 'lines',
  'build-args': 'lines',
  'build-contexts': 'lines',
  'cache-from': 'lines',
  'cache-to': 'lines',
  labels: 'lines',
  'no-cache-filters': 'csv',
  outputs: 'lines',
  platforms: 'csv',
  secrets: 'lines',
  'secret-envs': 'csv',
  'secret-files': 'lines',
  ssh: 'csv',
  tags: 'csv',
  ulimit: 'lines',
};

const BOOLEANS = ['load', 'no-cache', 'pull', 'push'];

const STRINGS = [
  'builder', 'call', 'cgroup-parent', 'context', 'file', 'github-token',
  'network', 'provenance', 'sbom', 'shm-size', 'target',
];

// NAMES are all 33 inputs of build-push-action v7.
const NAMES = [...Object.keys(LISTS), ...BOOLEANS, ...STRINGS].sort();

// rawInput is what the runner passes for an input: INPUT_<NAME> with
// spaces as underscores, upper case (hyphens stay), trimmed.
function rawInput(env, name) {
  return (env['INPUT_' + name.replace(/ /g, '_').toUpperCase()] || '').trim();
}

// records splits text into CSV records the way the toolkit's csv parser
// is configured: a record ends at a newline outside double quotes; a field
// that starts with a double quote runs to the closing quote ("" is a
// quote, newlines and commas inside are kept); a quote elsewhere is an
// ordinary character (relaxed quotes). Lines that are empty or blank, and
// lines whose first non-blank character is '#', are dropped; a '#' after
// other text is kept, so a value such as COLOR=#fff survives.
function records(text) {
  const out = [];
  let fields = [];
  let field = '';
  let quoted = false; // inside a quoted field
  let fieldStart = true;
  let lineStart = true;
  let comment = false;
  const endField = () => { fields.push(field); field = ''; fieldStart = true; };
  const endRecord = () => {
    endField();
    if (!comment && !(fields.length === 1 && fields[0].trim() === '')) {
      out.push(fields);
    }
    fields = [];
    comment = false;
    lineStart = true;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (comment) {
      if (c === '\n') endRecord();
      continue;
    }
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; continue; }
      if (c === '"') { quoted = false; continue; }
      field += c;
      continue;
    }
    if (lineStart && (c === ' ' || c === '\t')) { field += c; continue; }
    if (lineStart && c === '#') { comment = true; continue; }
    if (c === '\r' && text[i + 1] === '\n') continue;
    if (c === '\n') { endRecord(); continue; }
    lineStart = false;
    if (c === ',') { endField(); continue; }
    if (c === '"' && fieldStart && field === '') { quoted = true; fieldStart = false; continue; }
    fieldStart = false;
    field += c;
  }
  endRecord();
  return out;
}

// parseList turns a list input's text into items. With comma false a
// record's fields are joined back with commas (the whole line is one
// item); with comma true every field is an item. Items are trimmed and
// empty ones dropped.
function parseList(text, { comma }) {
  const items = [];
  for (const rec of records(text)) {
    if (rec.length === 1 || !comma) {
      items.push(rec.join(','));
    } else {
      items.push(...rec);
    }
  }
  return items.map((s) => s.trim()).filter((s) => s !== '');
}

// parseBool reads a boolean input as the toolkit's getBooleanInput: the
// YAML 1.2 core spellings only; "" is def.
function parseBool(name, text, def) {
  if (text === '') return def;
  if (['true', 'True', 'TRUE'].includes(text)) return true;
  if (['false', 'False', 'FALSE'].includes(text)) return false;
  throw new Error(`input ${name}: "${text}" is not a boolean (want true or false)`);
}

// readInputs reads every input from the environment into an object keyed
// by the input names: arrays for lists, booleans, strings.
function readInputs(env) {
  const inputs = {};
  for (const [name, rule] of Object.entries(LISTS)) {
    inputs[name] = parseList(rawInput(env, name), { comma: rule === 'csv' });
  }
  for (const name of BOOLEANS) {
    inputs[name] = parseBool(name, rawInput(env, name), false);
  }
  for (const name of STRINGS) {
    inputs[name] = rawInput(env, name);
  }
  return inputs;
}

module.exports = { NAMES, LISTS, BOOLEANS, STRINGS, records, parseList, parseBool, readInputs, rawInput };
