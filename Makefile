# kiln's two everyday commands: `make demo` (a real build with the local
# cache, no server, no internet) and `make test` (the whole test suite).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/kiln-build/kiln/internal/cli.Version=$(VERSION) -X github.com/kiln-build/kiln/internal/cli.Commit=$(COMMIT)

.PHONY: kiln test demo bench clean
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

clean:
	rm -f kiln
