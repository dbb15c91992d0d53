// Package progress carries what a build is doing from the code that does it
// to the person (or program) watching, and ends with the build's summary.
//
// Library packages never print. solve, build and the cache backends emit
// typed Events to a Sink they are given; cli picks the Sink from
// --progress:
//
//   - NewTTY: a live view for a terminal, redrawn about ten times a second;
//   - NewPlain: one stable line per event, for CI logs;
//   - NewJSON: one JSON object per line, for programs;
//   - Discard: nothing, the default for code that was given no Sink.
//
// A StepStart may carry a Miss: why the step was not a cache hit, shown on
// its own "#N MISS …" line by plain and tty and as the "miss" object in
// json. WriteMarkdown and WriteLogGroup write a Summary for GitHub Actions:
// the job summary's markdown and the same figures as a collapsible log
// group, with every build text escaped.
//
// Recorder keeps events for tests, and Tee sends one stream to several sinks.
// HumanBytes and HumanDuration are the size and duration formats every
// renderer uses, exported so that cli's own messages match.
//
// progress owns the rendering of events and nothing upstream of it: it does
// not decide what is a warning (solve does), it does not show a failed RUN's
// last output lines in plain mode (the build error carries them), and it
// does not scrub secrets (the emitter must never put one in an event).
//
// In a build's data flow it sits beside everything: solve and build are its
// producers, cli is the only package that chooses a renderer, and it
// imports nothing from kiln.
//
// Diagnostics for developers are not events: they go to the injected
// *slog.Logger.
package progress
