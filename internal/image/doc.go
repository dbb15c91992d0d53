// Package image assembles the built image: the config file (config,
// history, diff IDs) and the manifest, from the layers and config the solver
// produced. It uses go-containerregistry's types throughout; it does no
// registry I/O and reads layer bytes only if a layer's digests are unknown.
package image
