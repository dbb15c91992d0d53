'use strict';
// Running kiln: its output streams to the log as it comes, and the last
// line it wrote to stderr is kept for the failure message, as
// build-push-action fails with buildx's own last line.

const { spawn } = require('node:child_process');

// lastLine is the last non-blank line of text that is not a quoted output
// line: kiln ends a failed RUN's message ("kiln: Dockerfile:7: RUN make:
// exit code 2") with the step's last output lines, each "  | …", and the
// step fails with the message, as the job summary shows it.
function lastLine(text) {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  for (let i = lines.length - 1; i >= 0; i--) {
    if (!lines[i].startsWith('| ') && lines[i] !== '|') return lines[i];
  }
  return lines.length > 0 ? lines[lines.length - 1] : '';
}

// run starts file with args and resolves to { code, last } once it exits.
function run(file, args, { env, cwd, stdout = process.stdout, stderr = process.stderr }) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    child.stdout.on('data', (b) => stdout.write(b));
    child.stderr.on('data', (b) => {
      stderr.write(b);
      tail = (tail + b.toString()).slice(-8192);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code === null ? 128 : code, signal, last: lastLine(tail) }));
  });
}

module.exports = { run, lastLine };
