// Package remote is kiln's registry client: the only package that imports
// go-containerregistry's remote, transport and authn packages.
//
// It owns how kiln talks to registries: which ones are reached over plain
// HTTP (loopback always, others only when named in Options.Insecure), which
// CAs are trusted, where credentials come from (a docker config.json and its
// credential helpers, in a directory the caller names), how transient
// failures are retried (429, 5xx and dropped connections, with exponential
// backoff that honours Retry-After), and how failures are reported (*Error,
// with the registry's own message and never a credential or token).
//
// It does not decide what to push or pull: package output pushes built
// images, package cache/registry stores cache manifests, and solve resolves
// FROM images, all through a *Client (DESIGN.md §2). It never reads the
// environment; package cli resolves DOCKER_CONFIG and flags into Options.
package remote
