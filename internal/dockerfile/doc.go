// Package dockerfile turns a Dockerfile, its build args and a target stage
// into a plan.Graph. It comes first in a build's data flow, once cli and
// build have gathered the inputs; package solve walks the graph it returns.
//
// It owns the meaning of the Dockerfile language: parser directives
// (escape; syntax is ignored), ARG scoping, ENV and ARG expansion, SHELL
// wrapping, heredocs, WORKDIR-relative paths, RUN --mount and --network,
// COPY/ADD flags, stage references and --target pruning. Parsing is done by
// BuildKit's reference grammar (frontend/dockerfile/parser and
// instructions); everything after parsing is ours. This is the only package
// that imports BuildKit, which keeps its dependency tail in one place.
//
// It does not read the build context, hash files, talk to a registry or run
// anything. The one piece of I/O it needs, resolving an image reference to
// its platform-specific digest and config, is injected through
// Options.ResolveImage; Options.Platform and BuildPlatform set the
// TARGET* and BUILD* args and the platform of each stage.
//
// Every error that comes from the Dockerfile's content is an *Error that
// names file and line ("Dockerfile:12: unknown instruction: FOO").
//
// Where kiln departs from BuildKit, on purpose:
//
//   - WORKDIR only changes the config; it creates no layer. The directory is
//     created by whichever step first needs it.
//   - (As BuildKit) ONBUILD is recorded in Config.OnBuild, not run. The
//     triggers of a stage's base, image or earlier stage, run first in that
//     stage (with FROM's line as their position) and are then cleared, so
//     they fire once and never carry further.
//   - ADD of a URL or a git repository, RUN --mount=type=ssh, RUN --device,
//     RUN --security=insecure, COPY --parents, --exclude, ADD --checksum,
//     --keep-git-dir and --unpack are refused with an error rather than
//     ignored.
//   - FROM --platform takes linux platforms only; a stage FROM another
//     stage has that stage's platform unless --platform says otherwise,
//     and a single-platform image of another platform is refused (by the
//     caller's ResolveImage) instead of used with a warning.
//   - A stage name used twice is an error (BuildKit only warns, and then
//     resolves the name differently for FROM and COPY --from).
//   - FROM N with N the index of an earlier stage means that stage (as
//     COPY --from=N does); BuildKit would look for an image named "N".
//   - ENV always wins over an ARG of the same name, for expansion and in
//     RUN's environment, as Docker documents (BuildKit lets a later ARG
//     shadow an earlier ENV in RUN).
//   - An absolute WORKDIR or COPY destination is cleaned ("/a/../b/" is
//     "/b/"; a trailing slash on a destination is kept).
//   - Build args named in --build-arg are never given to RUN unless an ARG
//     declares them; this includes the proxy variables (HTTP_PROXY, ...)
//     that BuildKit passes implicitly.
package dockerfile
