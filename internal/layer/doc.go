// Package layer turns filesystem changes into OCI layer tars and back.
//
// It owns the layer tar format: WriteUpper turns an overlayfs upper
// directory into a tar (overlay whiteouts become OCI ".wh." entries),
// WriteDiff does the same for two plain trees (the copying fallback),
// Compress and Decompress handle gzip and zstd, Apply extracts a tar safely
// into a directory, and ChainIDs computes OCI chain IDs.
//
// It does not own where layers are kept (package snapshot keeps unpacked
// layers, package store keeps blobs) nor how they are described in an image
// (package image). In a build's data flow it is the step from a snapshot's
// diff to a layer blob, and the unpack side of every snapshot.
//
// Tars written here are deterministic: the same tree gives the same bytes,
// and with TarOptions.SourceDateEpoch the same bytes even when mtimes
// differ. Entries come in depth-first order with the children of each
// directory sorted by name, so a directory always precedes its contents.
package layer
