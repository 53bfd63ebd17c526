# bucketvault — make targets. `make help` lists them.
GO        ?= go
FUNCTIONS := $(notdir $(wildcard functions/*))
DIST      := dist/lambda
STATICCHECK_VERSION := v0.8.2

.PHONY: help build cli test test-short demo bench lint synth server-install clean

help:
	@echo "make demo    - run the end-to-end demo on a local S3 server (installs MinIO on first use)"
	@echo "make test    - run every test (installs the local S3 server first)"
	@echo "make build   - build each Lambda function as $(DIST)/<name>/bootstrap (linux/arm64) and bin/bucketvault"
	@echo "make bench   - run the benchmarks against the local server and its peers (rclone, awscli)"
	@echo "make lint    - gofmt, go vet, staticcheck, go mod tidy check"

build: cli
	@for f in $(FUNCTIONS); do \
		echo "build $(DIST)/$$f/bootstrap"; \
		mkdir -p $(DIST)/$$f && \
		CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' \
			-o $(DIST)/$$f/bootstrap ./functions/$$f || exit 1; \
	done

cli:
	$(GO) build -trimpath -o bin/bucketvault ./cmd/bucketvault

# The local S3 server is built from source by go install into the cache
# (about 5 minutes cold on 2 cores), outside go test's own timeout.
server-install:
	$(GO) run ./shared/locals3/cmd/locals3 install

test: server-install
	$(GO) test -count=1 -timeout 25m ./...

test-short: server-install
	$(GO) test -count=1 -short ./...

demo:
	$(GO) run ./cmd/bucketvault demo

bench: server-install
	$(GO) run ./cmd/bvbench

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	$(GO) mod tidy -diff

clean:
	rm -rf dist bin cdk.out
