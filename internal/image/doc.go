// Package image assembles the built image: the config file (config,
// history, diff IDs) and the manifest, from the layers and config the solver
// produced. It uses go-containerregistry's types throughout.
//
// In a build's data flow it comes after solve and before the outputs: build
// hands Assemble the target stage's config, layers and history, and gives
// the v1.Image it returns to the outputs (files, directories, pushes) and
// to the inline cache.
//
// It does not decide what goes into the image (solve and build do), does
// not write the inline cache into the config (the inline exporter does),
// and does no registry I/O: layers stay as given, lazy ones lazy, and their
// bytes are read only if a layer's diff ID is unknown.
package image
