// Package snapshot keeps unpacked layers by chain ID and gives builds
// writable and read-only root filesystems on top of them.
//
// In a build's data flow it sits under solve: solve asks for a rootfs on top
// of a chain of layers (Prepare), exec runs a RUN step in it, and the change
// comes back as a layer tar (Active.WriteDiff) that package layer compresses.
// Committing the change keeps it as the snapshot of the new chain ID, so the
// next step needs no unpack.
//
// Two modes, picked once by New:
//
//   - overlayfs: each snapshot is one layer's tree with deletions kept as
//     overlay whiteouts; a rootfs is an overlay mount of the chain with a
//     fresh upper directory, and its diff is that upper directory. Chains too
//     deep for one mount (the mount data is limited to a page, and the kernel
//     to a few hundred layers) are flattened: the merged tree of the chain is
//     materialized once, kept beside the snapshot, and used as one lower.
//   - copy, where overlayfs cannot be mounted (an unprivileged container, a
//     filesystem overlay refuses as upper): see copy.go for the trade-off.
//
// The package does not own blobs, records or locking between builds
// (package store does) and never fetches anything: Unpack is handed the
// uncompressed layer tar.
//
// On disk, under Options.Root, paths are kept short for the overlay mount
// data:
//
//	sn/<16 hex of chain ID>/chain  full chain ID; its mtime is the last use
//	sn/<16 hex>/fs                 overlayfs mode: the layer, overlay whiteouts
//	sc/<16 hex>/tar                copy mode (its own directory, so the two
//	                               modes never share or delete a snapshot):
//	                               the layer tar as unpacked
//	sc/<16 hex>/m                  merged tree of the whole chain, when built
//	a/<n>/                         one Active or view (u, w, m, or r)
//	tmp/<n>/                       staging; renamed into sn/ when complete
//
// Sixteen hex digits (64 bits) of a SHA-256 make a collision between the
// chain IDs of one machine's store practically impossible.
package snapshot
