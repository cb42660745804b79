#!/usr/bin/env bash
# Brings up what `make test` needs on a fresh machine of this kind (see
# DESIGN.md §6), so the tests of real components can run:
#   - /bin/busybox from Debian's busybox-static: the docker executor's tests
#     build their FROM-scratch image from it;
#   - a running Docker engine: dockerd is started when it is installed but not
#     running (and DOCKER_HOST is not set);
#   - the MinIO server (pinned, built from the Go module proxy into
#     $(go env GOPATH)/bin) for the tests of the s3:// blob store.
#   - PostgreSQL server binaries (initdb, postgres) from Debian's postgresql
#     package, unless KK_TEST_POSTGRES_URL names a server: the PostgreSQL
#     store's tests start a throwaway cluster with them (pkg/store/pgtest).
#   - tmux, which the end-to-end tests of `kk tui` drive.
# It never fails the build itself: a missing piece makes the tests that need it
# fail in CI (CI set) with a message naming it, and skip elsewhere.
set -uo pipefail

log() { echo "test-deps: $*" >&2; }

as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n "$@"
	else
		return 1
	fi
}

apt_install() {
	command -v apt-get >/dev/null 2>&1 || return 1
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 && return 0
	as_root apt-get update -q >/dev/null 2>&1 &&
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1
}

if ! command -v tmux >/dev/null 2>&1; then
	log "installing tmux (the kk tui end-to-end tests drive it)"
	apt_install tmux || log "could not install tmux: install it (apt-get install tmux)"
fi

if [ ! -x /bin/busybox ]; then
	log "installing busybox-static (for the docker executor's test image)"
	apt_install busybox-static || log "could not install busybox-static: install it (apt-get install busybox-static)"
fi

engine_up() {
	if command -v docker >/dev/null 2>&1; then
		docker version >/dev/null 2>&1
	else
		[ -S /var/run/docker.sock ] && command -v curl >/dev/null 2>&1 &&
			curl -fsS --unix-socket /var/run/docker.sock http://docker/_ping >/dev/null 2>&1
	fi
}

if [ -z "${DOCKER_HOST:-}" ] && ! engine_up; then
	if command -v dockerd >/dev/null 2>&1; then
		log "starting dockerd (log: ${TMPDIR:-/tmp}/kk-test-dockerd.log)"
		as_root sh -c "nohup dockerd >'${TMPDIR:-/tmp}/kk-test-dockerd.log' 2>&1 &" || log "could not start dockerd"
		for _ in $(seq 1 60); do
			engine_up && break
			sleep 0.5
		done
		engine_up || log "dockerd did not come up; see ${TMPDIR:-/tmp}/kk-test-dockerd.log"
	else
		log "no Docker engine and no dockerd: install docker.io to run the docker executor's tests"
	fi
fi
# The MinIO server of the blob store's tests (pkg/blob/blobtest finds it in
# PATH or in $(go env GOPATH)/bin). Keep the version in step with
# blobtest.MinIOVersion.
MINIO_MODULE=github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
GO=${GO:-go}
gobin="$($GO env GOPATH 2>/dev/null | cut -d: -f1)/bin"
if ! command -v minio >/dev/null 2>&1 && [ ! -x "$gobin/minio" ]; then
	log "installing $MINIO_MODULE into $gobin (a few minutes on a cold module cache)"
	GOBIN="$gobin" GOFLAGS=-mod=mod "$GO" install "$MINIO_MODULE" ||
		log "could not install MinIO: run GOFLAGS=-mod=mod go install $MINIO_MODULE"
fi

# PostgreSQL: pkg/store/pgtest starts one throwaway cluster per test binary
# from initdb and postgres (found via pg_config, PATH or
# /usr/lib/postgresql/*/bin). Nothing to do when KK_TEST_POSTGRES_URL points
# the tests at an existing server. Debian's package also creates and starts a
# "main" cluster: it is stopped again, the tests do not use it.
pg_bins_found() {
	local d
	if command -v pg_config >/dev/null 2>&1; then
		d="$(pg_config --bindir 2>/dev/null)"
		[ -x "$d/initdb" ] && [ -x "$d/postgres" ] && return 0
	fi
	command -v initdb >/dev/null 2>&1 && return 0
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && [ -x "$d/postgres" ] && return 0
	done
	return 1
}

if [ -z "${KK_TEST_POSTGRES_URL:-}" ] && ! pg_bins_found; then
	log "installing postgresql (for the PostgreSQL store's tests)"
	if apt_install postgresql; then
		if command -v pg_lsclusters >/dev/null 2>&1; then
			pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
				as_root pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
			done
		fi
	else
		log "could not install postgresql: install it (apt-get install postgresql) or set KK_TEST_POSTGRES_URL"
	fi
fi
exit 0
