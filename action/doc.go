// Package action holds the kiln GitHub Action (action.yml at the
// repository root runs action/main.js on node) and the Go tests that run
// it: its node unit tests (node --test) and, in e2e, whole workflows
// under act. The action itself is plain JavaScript on node's standard
// library: input parsing (lib/inputs.js), the mapping to a kiln command
// line (lib/argv.js), where kiln comes from and how it runs as root
// (lib/kiln.js), the Git context (lib/gitctx.js), outputs and workflow
// commands (lib/commands.js). There is no Go code here besides tests.
package action
