# Kraken in Go — `make help` lists the targets.
GO       ?= go
BIN      ?= bin
DATA_DIR ?= $(CURDIR)/.kk-data
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/kraken-go/kk/pkg/version.Version=$(VERSION)

.PHONY: help build run test test-chaos fuzz ci test-lxd test-short bench bench-go lint fmt completions clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

AGENT_PLATFORMS ?= linux/amd64 linux/arm64

build: ## Build kk, kkd and kkagent into ./bin, and kkagent for each of AGENT_PLATFORMS into ./bin/agents (served by kkd)
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/kk ./cmd/kkd ./cmd/kkagent
	@mkdir -p $(BIN)/agents
	@set -e; for p in $(AGENT_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		echo "kkagent $$os/$$arch -> $(BIN)/agents/kkagent-$$os-$$arch"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/agents/kkagent-$$os-$$arch ./cmd/kkagent; \
	done

run: build ## Run kkd on the embedded defaults (SQLite, built-in local agent) in ./.kk-data
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/kkd serve --data-dir $(DATA_DIR)

test: ## Run the whole test suite (unit, store, end-to-end with the real binaries); scripts/test-deps.sh brings up busybox-static, MinIO, PostgreSQL and dockerd
	./scripts/test-deps.sh
	$(GO) vet ./...
	CI=$${CI:-1} $(GO) test -count=1 -timeout 25m ./...

test-chaos: ## Run the chaos suite: 200 jobs on real kkd and kkagents while agents are killed, paused and cut off and kkd restarts; prints a CHAOS line (docs/chaos.md; KK_CHAOS_SEED=N replays a seed)
	./scripts/test-deps.sh
	CI=$${CI:-1} $(GO) test -count=1 -tags chaos -run '^TestChaos' -timeout 15m -v ./test/e2e/

# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report a spurious "context deadline exceeded" as the time runs out
# (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 3000x

fuzz: ## Run every Go fuzz target under pkg/ for FUZZTIME each (default 3000x, i.e. 3000 inputs; a failing input is kept under the package's testdata/fuzz)
	@set -e; for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' pkg | xargs -n1 dirname | sort -u); do \
		for fn in $$(grep -h '^func Fuzz' $$pkg/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "fuzz ./$$pkg $$fn ($(FUZZTIME))"; \
			out=$$($(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) ./$$pkg/ 2>&1) || { echo "$$out"; exit 1; }; \
		done; \
	done

ci: test test-chaos fuzz ## What CI runs (.ci/run): the test suite, the chaos suite, then every fuzz target briefly

test-lxd: ## Run the LXD executor against a real LXD (KK_TEST_LXD_ALIAS=image alias)
	$(GO) test -count=1 -tags reallxd -run TestRealLXD ./pkg/executor/lxd/

test-short: ## Run the unit tests only
	$(GO) test -count=1 -short ./...

bench: build ## Run the system benchmark (cmd/kkbench: real kkd on SQLite and PostgreSQL, simulated agents, a real kkagent); prints BENCH lines, see docs/benchmarks.md
	$(GO) run ./cmd/kkbench -bin $(BIN)

bench-go: ## Run the Go micro-benchmarks under pkg/
	$(GO) test -run '^$$' -bench . -benchtime 2s ./pkg/...

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: ## Check formatting, vet and staticcheck
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fmt: ## Format the code
	gofmt -w .

completions: ## Regenerate shell completions into completions/
	$(GO) run ./cmd/kk completion bash > completions/kk.bash
	$(GO) run ./cmd/kk completion zsh > completions/kk.zsh
	$(GO) run ./cmd/kk completion fish > completions/kk.fish

clean: ## Remove build output and the local data dir
	rm -rf $(BIN) $(DATA_DIR)
