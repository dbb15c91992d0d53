# kiln's two everyday commands: `make demo` (a real build with the local
# cache, no server, no internet) and `make test` (the whole test suite).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/kiln-build/kiln/internal/cli.Version=$(VERSION) -X github.com/kiln-build/kiln/internal/cli.Commit=$(COMMIT)

.PHONY: kiln test demo bench clean conformance
kiln:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o kiln ./cmd/kiln

# .ci/testsum runs go test -json and ends with "N passed, N failed, N
# skipped"; with KILN_E2E set (.ci/run) a skipped test fails it too.
test:
	.ci/deps test
	go vet ./... ./.ci/testsum
	go run ./.ci/testsum -race -count=1 -timeout 20m ./... ./.ci/testsum

demo: kiln
	.ci/deps demo
	./examples/demo.sh

bench: kiln
	go run ./bench

# conformance rebuilds the expectations of the Dockerfile conformance suite
# (e2e/testdata/conformance/*/want.json) from BuildKit itself: buildkitd
# and buildctl of BUILDKIT_VERSION are built once from the Go module proxy
# into BUILDKIT_BIN (outside the repository), then every case is built by
# a buildkitd on a private socket (OCI worker, runc) from a busybox-static
# base in a local docker-registry. Needs root. `make test` compares kiln
# with the recorded files without BuildKit.
BUILDKIT_VERSION ?= v0.34.2
BUILDKIT_BIN     ?= /tmp/kiln-buildkit-$(BUILDKIT_VERSION)
conformance:
	.ci/deps test
	@if [ ! -x $(BUILDKIT_BIN)/buildkitd ] || [ ! -x $(BUILDKIT_BIN)/buildctl ]; then \
	  set -e; mkdir -p $(BUILDKIT_BIN); \
	  dir=$$(cd $(BUILDKIT_BIN) && GOFLAGS=-mod=mod go mod download -json github.com/moby/buildkit@$(BUILDKIT_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	  echo "building buildkitd and buildctl $(BUILDKIT_VERSION) from $$dir (a few minutes)" >&2; \
	  cd $$dir && CGO_ENABLED=0 nice -n 10 go build -o $(BUILDKIT_BIN)/buildkitd ./cmd/buildkitd \
	    && CGO_ENABLED=0 nice -n 10 go build -o $(BUILDKIT_BIN)/buildctl ./cmd/buildctl; \
	fi
	go test -count=1 -run TestConformance ./e2e -args -record -buildkitd=$(BUILDKIT_BIN)/buildkitd -buildctl=$(BUILDKIT_BIN)/buildctl

clean:
	rm -f kiln
