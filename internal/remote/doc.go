// Package remote is kiln's registry client: the only package that imports
// go-containerregistry's remote, transport and authn packages.
//
// It owns how kiln speaks the registry protocol: references (which
// registries are reached over plain HTTP: loopback always, others only when
// named in Options.Insecure), where credentials come from (a docker
// config.json and its credential helpers, in a directory the caller
// names), pushes with cross-repository mounts, login, which blob downloads
// may be resumed, and how registry failures read (*transport.Error with
// Service "registry HOST", the registry's own code and message, and a hint
// such as `kiln login`).
//
// Everything below the protocol comes from package transport: retries of
// 429, 5xx and dropped connections within a budget, the bounds on
// redirects, silent registries and stalled downloads, the TLS policy and
// redaction, so that no credential or signed URL reaches an error or a log.
//
// It does not decide what to push or pull: package output pushes built
// images, package cache/registry stores cache manifests, and solve resolves
// FROM images, all through a *Client (DESIGN.md §2). It never reads the
// environment; package cli resolves DOCKER_CONFIG and flags into Options.
package remote
