'use strict';
// Talking to the runner: workflow commands on stdout and the files behind
// GITHUB_OUTPUT. No secrets pass through here except as output values the
// caller chose.

const crypto = require('node:crypto');
const fs = require('node:fs');

// escapeData escapes a workflow command's message.
function escapeData(s) {
  return String(s).replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

// command formats ::name::message.
function command(name, message) {
  return `::${name}::${escapeData(message)}\n`;
}

// outputBlock formats one output for GITHUB_OUTPUT with a random heredoc
// delimiter that the value cannot contain, so multi-line values (the
// metadata JSON) are safe.
function outputBlock(name, value, random = () => crypto.randomUUID()) {
  const v = String(value);
  let delim;
  do {
    delim = `ghadelimiter_${random()}`;
  } while (v.includes(delim) || name.includes(delim));
  return `${name}<<${delim}\n${v}\n${delim}\n`;
}

// setOutputs appends every output to the GITHUB_OUTPUT file, or prints the
// legacy command where the file is not set (old runners, local runs).
function setOutputs(env, outputs, write = process.stdout.write.bind(process.stdout)) {
  for (const [name, value] of Object.entries(outputs)) {
    if (env.GITHUB_OUTPUT) {
      fs.appendFileSync(env.GITHUB_OUTPUT, outputBlock(name, value));
    } else {
      write(`::set-output name=${name}::${escapeData(value)}\n`);
    }
  }
}

module.exports = { escapeData, command, outputBlock, setOutputs };
