# kubemesos: the commands a developer and CI use. `make help` lists them.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X github.com/kubemesos/kubemesos/internal/version.Version=$(VERSION) -X github.com/kubemesos/kubemesos/internal/version.Commit=$(COMMIT)
# Generous: the first e2e run builds kube-apiserver & co. (~10 min on 2 cores) before any test starts.
E2E_TIMEOUT ?= 40m

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## host set-up the isolating simulated agents need: Debian's nftables (nft, for CNI portmap), a C toolchain (the image store's busybox is built from source), a static busybox (tests' containers), inotify instances; as root, idempotent
	@# Each command names the Debian package that brings it: nft for CNI portmap's nftables backend;
	@# cc, make and bzip2 for the image store's busybox (upstream's 1.37.0 source, internal/imagebuild);
	@# the host's busybox, static (its debug-container tests copy it into containers without libraries),
	@# for the tests whose containers share the host's root (busybox httpd, wget).
	@missing=; for pair in nft:nftables cc:gcc make:make bzip2:bzip2; do \
	  command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair##*:}"; done; \
	bb=$$(command -v busybox) && ! ldd "$$bb" >/dev/null 2>&1 || missing="$$missing busybox-static"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" != 0 ]; then echo "deps: not root: install$$missing (isolating agents and their tests need root)"; \
	elif command -v apt-get >/dev/null; then \
	  apt-get install -y --no-install-recommends $$missing libc6-dev >/dev/null || \
	  { apt-get update >/dev/null && apt-get install -y --no-install-recommends $$missing libc6-dev >/dev/null; }; \
	else echo "deps: no apt-get: install$$missing"; fi
	@# Every executor follows its containers' logs with inotify; a host running many (the local cluster,
	@# the e2e suite, the scheduling benchmark's agents) exhausts the default 128 instances per user, as
	@# kubelet hosts do (kind asks for 512). Raised, never lowered.
	@if [ "$$(id -u)" = 0 ] && [ "$$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo 8192)" -lt 8192 ]; then \
	  sysctl -qw fs.inotify.max_user_instances=8192 || echo "deps: could not raise fs.inotify.max_user_instances"; fi

.PHONY: local-up
local-up: deps ## start etcd, kube-apiserver, controller-manager, a simulated Mesos cluster and kubemesos; Ctrl-C stops it
	cd e2e && $(GO) run ./cmd/local-up

.PHONY: conformance
conformance: deps ## upstream [NodeConformance] specs (k8s e2e.test; first build ~16 min) on a local cluster; results in .local/conformance/latest; not part of test (CONFORMANCE_FLAGS=--subset=... --procs=...)
	cd e2e && $(GO) run ./cmd/conformance $(CONFORMANCE_FLAGS)

.PHONY: images
images: ## build (or find cached) the simulated agents' image store; prints its dir, size and build time
	cd e2e && $(GO) run ./cmd/images

.PHONY: test
test: deps unit e2e ## everything CI runs: unit tests (with -race) and the end-to-end suite

.PHONY: unit
unit: ## unit and simulator tests of the root module, with the race detector
	$(GO) test -race -count=1 ./...

# e2e/kubemesos is most of the suite's time: its tests share one control plane per process and run one
# after the other (see its main_test.go), so it runs as 2 concurrent shards, each a `go test` process
# with its own control plane, beside the other e2e packages. Shard 1 runs the tests E2E_SHARD_1 names
# (anchored), shard 2 every other one (-skip of the same list): every test runs exactly once, a new one
# in shard 2. Balanced by measured durations (2 cores loaded by other work; the serial package took
# ~1,540 s): shard 1's 14 tests 854 s (TestLeaderTakeovers 332, the pod network ~280, maintenance 127),
# shard 2's 40 tests 893 s; make e2e 16 min wall (-v logs give every test's time).
# What two shards' envs could share on the host is allocated host-wide (pod-network slots and
# control-plane addresses under flock, kube-proxy behind a host lock, free ports, temporary
# directories) or is per env (cgroups by container ID, namespaces, Node names, fetcher caches). Disk
# is not: every pod-network pod's sandbox executor is a copy of the kubemesos binary (the agents'
# fetcher copies it from its cache, as Mesos'), kept until its test ends (TestPodNetworkChurnLeavesNothing
# held ~23 GB of 122 MB copies), so the pod-network tests stay together in shard 1, and the binary,
# built once here for both shards, is stripped (-s -w: 85 MB). E2E_SHARD_1= runs the
# package as one process.
E2E_PKG := ./kubemesos
E2E_SHARD_1 ?= TestLeaderTakeovers|TestPodNetwork.*|TestMaintenanceWindowDrainsAgent|TestKubectlTop|TestTwoFrameworks.*
E2E_LABELS := others kubemesos-1 kubemesos-2
# Each job's whole output (the shards' with -v: every test's duration) is kept here after the run; the
# recipe ends with each failed test's last log lines (one per statement: a repeated diagnostic does not
# push the error out) and the failed tests' names, so that the tail of a CI log says which failed and why.
E2E_LOGS := $(CURDIR)/.local/e2e

.PHONY: e2e
e2e: ## end-to-end tests against a real control plane and the Mesos simulator (e2e/kubemesos in 2 concurrent shards; logs in .local/e2e)
	@out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; logs=$(E2E_LOGS); mkdir -p "$$logs"; \
	$(GO) build -ldflags '-s -w' -o "$$out/kubemesos" ./cmd/kubemesos || exit 1; \
	export E2E_KUBEMESOS_BINARY="$$out/kubemesos"; \
	cd e2e && all=$$($(GO) list ./...) || exit 1; pkgs=$$(grep -vx 'github.com/kubemesos/kubemesos/e2e/kubemesos' <<<"$$all"); \
	job() { label=$$1; shift; echo "== e2e $$label: started"; \
	  ( start=$$SECONDS; $(GO) test -count=1 -timeout $(E2E_TIMEOUT) "$$@" >"$$logs/$$label.log" 2>&1; \
	    echo "$$? $$((SECONDS - start))" >"$$logs/$$label.rc" ) & }; \
	rm -f "$$logs"/*.rc; \
	job others $$pkgs; \
	job kubemesos-1 -v -run '^($(E2E_SHARD_1))$$' $(E2E_PKG); \
	job kubemesos-2 -v -skip '^($(E2E_SHARD_1))$$' $(E2E_PKG); \
	wait; fail=0; \
	for label in $(E2E_LABELS); do rc=1; secs=?; read -r rc secs <"$$logs/$$label.rc"; \
	  if [ "$$rc" = 0 ]; then verdict=ok; else verdict="FAIL (exit $$rc)"; fail=1; fi; \
	  echo "== e2e $$label: $$verdict in $$secs s ($$logs/$$label.log)"; \
	  if [ "$$rc" = 0 ] && [ "$$label" != others ]; then \
	    grep -E '^(--- |ok |PASS|FAIL)' "$$logs/$$label.log" | sed "s/^/[$$label] /"; \
	  else sed "s/^/[$$label] /" "$$logs/$$label.log"; fi; \
	done; \
	for label in $(E2E_LABELS); do rc=1; secs=?; read -r rc secs <"$$logs/$$label.rc"; echo "e2e $$label: exit $$rc in $$secs s"; done; \
	for label in $(E2E_LABELS); do grep -oE '^ *--- FAIL: [^ ]+' "$$logs/$$label.log" 2>/dev/null | sed 's/^ *--- FAIL: //' | \
	  while read -r name; do echo "e2e $$label $$name, its last lines:"; \
	    awk -v run="=== RUN   $$name" -v end="--- FAIL: $$name " '$$0 == run {on=1} on && /^ +[A-Za-z0-9_]+\.go:[0-9]+: / && !seen[$$1]++ {print} index($$0, end) {on=0}' \
	      "$$logs/$$label.log" | tail -n 5 | cut -c1-2000; done; done; \
	for label in $(E2E_LABELS); do grep -E '^ *--- FAIL' "$$logs/$$label.log" 2>/dev/null | sed "s/^ */e2e $$label failed: /"; done; \
	exit $$fail

.PHONY: bench
bench: ## benchmarks (allocation cycle, placement, translation)
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: bench-scheduling
bench-scheduling: ## kube-scheduler vs kubemesos (hollow executors) vs the API server's write rate on one control plane; JSON, SVG chart and table in .local/bench/<time> (BENCH_FLAGS='--sizes 100x1000,1000x10000 --qps default,high --out dir')
	cd e2e && $(GO) run ./cmd/bench-scheduling $(BENCH_FLAGS)

# Issue 14's chaos suite. The command's flag defaults are the issue's full run (500 pods, 100 framework
# kills, 20 executor kills, 10 agent partitions, 10 agent restarts, 5 master failovers, 5 leader pauses, a 30 s API-server
# outage, over 30 min); CHAOS_SCALE scales it to about 10 minutes on a 2-core machine. CHAOS_ARGS adds
# or overrides flags: --seed N reproduces a run's faults and churn, CHAOS_SCALE= runs the full one.
CHAOS_SCALE ?= --duration 6m --pods 250 --framework-kills 30 --leader-pauses 5 --executor-kills 6 \
	--agent-partitions 4 --agent-restarts 3 --master-failovers 3 --api-outage 30s --settle 3m

.PHONY: chaos
chaos: deps ## pods churned under random faults (framework, executor, agent partition and restart, master, API server, leader pause), then a ledger of lost/duplicated/orphaned/over-committed, all 0 (CHAOS_ARGS='--seed N ...')
	cd e2e && $(GO) run ./cmd/chaos $(CHAOS_SCALE) $(CHAOS_ARGS)

# Fuzz targets as package:Target; `make fuzz` runs each for FUZZTIME (Go's -fuzztime: a duration or
# Nx executions). Crashers land in the package's testdata/fuzz/<Target>/ and are then run by every
# `go test` of that package: commit them with the fix, as regression corpus.
FUZZ_TARGETS := ./podtranslate:FuzzPodFromTaskData ./podtranslate:FuzzTranslatePod ./podtranslate:FuzzPodStatusForTask \
	./framework:FuzzSchedulerEvent ./executor/execstream:FuzzSubscriptionStream \
	./mesossim:FuzzSchedulerCall ./mesossim/agent:FuzzExecutorAPI ./mesossim/agent:FuzzOperatorAPI
FUZZTIME ?= 1000000x

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME (default 10^6 executions each); prints executions per target
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; out=$$(mktemp); \
	  echo "== $$fn ($$pkg)"; \
	  if $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg >$$out 2>&1; then \
	    grep -E 'elapsed' $$out | tail -1; rm -f $$out; \
	  else tail -30 $$out; rm -f $$out; exit 1; fi; \
	done

.PHONY: build
build: ## bin/kubemesos and bin/mesos-sim
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kubemesos ./cmd/kubemesos
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/mesos-sim ./cmd/mesos-sim

.PHONY: mesos-sim
mesos-sim: ## run the Mesos simulator alone with 3 agents
	$(GO) run ./cmd/mesos-sim --agents 3

.PHONY: diffcheck
diffcheck: ## the Mesos scenario against the simulator; MASTER=http://leader.mesos:5050 compares it with a real master
	$(GO) run ./cmd/mesos-diffcheck $(if $(MASTER),--master $(MASTER))

.PHONY: lint
lint: ## gofmt and go vet, both modules
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd e2e && $(GO) vet ./...
