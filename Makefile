# bucketvault — make targets. `make help` lists them.
GO        ?= go
# The Lambda functions: the directories under functions/ with a main package
# (functions/lambdatest holds the tests that run them under the emulator).
FUNCTIONS := $(notdir $(patsubst %/main.go,%,$(wildcard functions/*/main.go)))
DIST      := dist/lambda
STATICCHECK_VERSION := v0.8.2

.PHONY: help build cli test test-short demo bench lint synth lint-template server-install clean deploy invoke invoke-inprocess

# The CDK CLI (npm's aws-cdk, pinned in infra/_cdk/package-lock.json) runs
# the Go app in infra/ (cdk.json). Synth needs no AWS credentials: the
# account and region come from cdk.json. CDK_FLAGS passes more, for example
# CDK_FLAGS='-c bucketvault:configFile=deploy/prod.json'.
CDK_DIR   := infra/_cdk
CDK       := $(CDK_DIR)/node_modules/.bin/cdk
CDK_STAMP := $(CDK_DIR)/node_modules/.installed
CDK_ENV   := JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=true
CDK_FLAGS ?=
# The bootstraps' go build flags (shared/rie.BuildFlags, which a test holds
# to this line), with CGO_ENABLED=0 GOOS=linux: GOARCH=arm64 for the stack
# (build), this machine's for the Lambda Runtime Interface Emulator (invoke).
LAMBDA_BUILD_FLAGS := -tags lambda.norpc -trimpath -ldflags='-s -w'
LOCAL_ARCH := $(shell $(GO) env GOARCH)
LOCAL_DIST := dist/lambda-local
# make invoke FN=<function> EVENT=events/<file>.json VAULT=<vault> builds
# the function's bootstrap for this machine and runs it under the Lambda
# Runtime Interface Emulator (bucketvault invoke --bootstrap), as Lambda
# runs it, against the S3 endpoint in AWS_ENDPOINT_URL (a running
# `bin/bucketvault local-server`); make invoke-inprocess calls the same
# handler in-process.
FN    ?=
EVENT ?=
VAULT ?= vault
INVOKE_USAGE := FN=journal|reconcile|restore|restoretest|protect|snapshot|expire|dispatch EVENT=events/<file>.json [VAULT=vault]

help:
	@echo "make demo    - run the end-to-end demo on a local S3 server (installs MinIO on first use)"
	@echo "make test    - run every test (installs the local S3 server first)"
	@echo "make build   - build each Lambda function as $(DIST)/<name>/bootstrap (linux/arm64) and bin/bucketvault"
	@echo "make bench   - run the benchmarks against the local server and its peers (rclone, awscli)"
	@echo "make lint    - gofmt, go vet, staticcheck, go mod tidy check, the layers check (.ci/layers)"
	@echo "make synth   - build, then synthesize the CDK app with cdk-nag's AwsSolutions checks (cdk.out/)"
	@echo "make lint-template - make synth, then cfn-lint the templates"
	@echo "make invoke FN=<function> EVENT=events/<file>.json [VAULT=vault]"
	@echo "              - run the function's bootstrap (built for this machine) under the Lambda Runtime Interface"
	@echo "                Emulator, with the stack's environment for it, against AWS_ENDPOINT_URL (bin/bucketvault local-server)"
	@echo "make invoke-inprocess FN=... EVENT=... - the same, calling the function's handler in-process"

build: cli
	@for f in $(FUNCTIONS); do \
		echo "build $(DIST)/$$f/bootstrap"; \
		mkdir -p $(DIST)/$$f && \
		CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build $(LAMBDA_BUILD_FLAGS) \
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
	command -v rclone >/dev/null || { apt-get update && apt-get install -y rclone; }
	test -x /usr/bin/aws || { apt-get update && apt-get install -y awscli; }
	$(GO) test -run='^$$' -bench=. -benchtime=1x -timeout 120m ./shared/bench/

# The layers check (.ci/layers; docs/design.md "Layers"): lower packages
# never import higher ones, and only shared/vault builds vault keys. The
# go command's ./... skips .ci/, so its package is named on its own.
LINT_CI := ./.ci/layers

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./... $(LINT_CI)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./... $(LINT_CI)
	$(GO) mod tidy -diff
	$(GO) test -count=1 -short $(LINT_CI)
	$(GO) run ./.ci/layers

$(CDK_STAMP): $(CDK_DIR)/package.json $(CDK_DIR)/package-lock.json
	cd $(CDK_DIR) && npm ci --no-audit --no-fund
	touch $@

# The app applies cdk-nag's AwsSolutions rules (infra/nag.go): an
# unsuppressed finding is an error or warning annotation, and --strict makes
# cdk fail on warnings as on errors. cdk-nag's report, with every
# suppression's reason, is cdk.out/AwsSolutions-<stack>-NagReport.csv.
synth: build $(CDK_STAMP)
	AWS_EC2_METADATA_DISABLED=true $(CDK_ENV) $(CDK) synth --quiet --strict --no-notices $(CDK_FLAGS)
	@ls cdk.out/*.template.json

# cfn-lint (pip install cfn-lint; the project uses 1.51) on make synth's
# templates, with infra/cfn-lint.yaml (which says why it ignores what it
# ignores); any finding fails.
lint-template: synth
	@command -v cfn-lint >/dev/null || { echo "make lint-template: cfn-lint is not installed: pip install cfn-lint==1.51.0"; exit 2; }
	cfn-lint --config-file infra/cfn-lint.yaml -- cdk.out/*.template.json

deploy: build $(CDK_STAMP)
	$(CDK_ENV) $(CDK) deploy --no-notices $(CDK_FLAGS)

invoke: cli
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke $(INVOKE_USAGE)"; exit 2; }
	@test -f functions/$(FN)/main.go || { echo "make invoke: no function $(FN) (functions/: $(FUNCTIONS))"; exit 2; }
	@test -n "$$AWS_ENDPOINT_URL" || { echo "make invoke: set AWS_ENDPOINT_URL (and credentials) to a running S3 endpoint, for example the one bin/bucketvault local-server prints"; exit 2; }
	@mkdir -p $(LOCAL_DIST)/$(FN)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(LOCAL_ARCH) $(GO) build $(LAMBDA_BUILD_FLAGS) -o $(LOCAL_DIST)/$(FN)/bootstrap ./functions/$(FN)
	bin/bucketvault invoke --function $(FN) --event $(EVENT) --vault $(VAULT) --endpoint-url $$AWS_ENDPOINT_URL --bootstrap $(LOCAL_DIST)/$(FN)/bootstrap

invoke-inprocess: cli
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke-inprocess $(INVOKE_USAGE)"; exit 2; }
	@test -n "$$AWS_ENDPOINT_URL" || { echo "make invoke-inprocess: set AWS_ENDPOINT_URL (and credentials) to a running S3 endpoint, for example the one bin/bucketvault local-server prints"; exit 2; }
	bin/bucketvault invoke --function $(FN) --event $(EVENT) --vault $(VAULT) --endpoint-url $$AWS_ENDPOINT_URL

clean:
	rm -rf dist bin cdk.out
