// Package exec runs one RUN step in a sandbox through an OCI runtime (runc
// by default, crun as an alternative), over a root filesystem that the
// caller has already prepared (an overlayfs snapshot, or a copied tree).
//
// exec owns the runtime-spec config (namespaces, mounts, devices,
// capabilities, the process user), the bundle's config.json, and the
// runtime's life cycle: "run" with stdout and stderr streamed through pipes,
// "kill" on cancellation, and "delete --force" on every path out. It also
// resolves a Dockerfile USER against the rootfs's /etc/passwd and /etc/group.
// With crun it compiles the seccomp profile once per build and hands every
// step the program (Filters): the compile is most of a runtime's start.
//
// exec does not prepare or diff the rootfs (package snapshot), does not know
// about cache keys or steps (package solve), and never prints: the process
// output goes to the writers in the Spec. In a build's data flow it is the
// execute step of solve's cache-miss path.
//
// Run leaves the rootfs as the step left it, plus Spec.Cwd if it had to be
// created: the mount points it creates for /proc, /sys, /dev, /etc/hosts,
// /etc/resolv.conf and the Spec's mounts are removed again on the way out
// when they are still empty, so they do not show up in the layer diff.
//
// A RUN step for another architecture needs nothing from exec itself: the
// kernel runs the step's binaries through a binfmt_misc handler with the F
// flag (QEMU user emulation), whose interpreter was opened when the handler
// was registered. exec reads binfmt_misc to check one is there
// (CheckEmulation, before any work) and, only when the user asks (kiln
// binfmt --install), registers qemu-user-static's handlers (Install).
package exec
