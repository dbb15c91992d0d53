// Package source reads a directory as the source of COPY and ADD: the build
// context (with .dockerignore applied) or the root filesystem of an earlier
// stage (COPY --from).
//
// A Tree answers three questions, all with the same view of the directory
// (ignored files do not exist, symlinks are followed only inside the root):
//
//   - Select: which files do the COPY sources name (paths, globs, ".")?
//   - Digest: what is the content digest of those files, for the step's cache
//     key? Paths, types, modes, owners, link targets and contents count;
//     mtimes never do. A persistent checksum cache lets an unchanged
//     context be confirmed by stat alone.
//   - CopyInto: copy them into a target root with Docker's COPY rules, never
//     writing outside it (ADD's archive extraction included).
//
// In a build's data flow it serves solve: COPY and ADD steps and RUN bind
// mounts read their files through a Tree.
//
// source does not read the Dockerfile, resolve --chown names to ids, or make
// layers: package dockerfile reads .dockerignore (through ReadIgnore) and
// solve passes numeric ids; package snapshot and layer turn the written
// files into a layer.
package source
