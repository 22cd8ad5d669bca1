#!/usr/bin/env bash
# The project's test command: README and CI (.ci/run) call exactly this.
#
#   scripts/test.sh                      vet and test ./...
#   scripts/test.sh -run Conformance     extra arguments go to `go test`
#   scripts/test.sh ./sqlite/... ./postgres/...
#                                        package patterns replace ./...
#
# Arguments that look like package patterns (".", "./…", "../…", or
# "github.com/keyhold/keyhold…") select the packages; everything else is
# passed to `go test` as is (give flag values with "=", e.g.
# -coverprofile=c.out, so they aren't taken for packages).
#
# It starts a throwaway PostgreSQL server for the storage tests: initdb into
# a fresh temporary directory, on a free loopback port, removed on exit. It
# never touches a system cluster. If KEYHOLD_TEST_POSTGRES is already set,
# that server is used instead. It installs PostgreSQL with apt-get when no
# server binaries are found (CI runs as root on a fresh Debian 12).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'test.sh: %s\n' "$*" >&2; }

# --- arguments --------------------------------------------------------------

pkgs=()
flags=()
for arg in "$@"; do
	case "$arg" in
	. | ./* | ../* | github.com/keyhold/keyhold*) pkgs+=("$arg") ;;
	*) flags+=("$arg") ;;
	esac
done
if [ ${#pkgs[@]} -eq 0 ]; then
	pkgs=(./...)
fi

# --- PostgreSQL -------------------------------------------------------------

pg_tmp=""
pg_bin=""

# as_postgres runs a command as the postgres user when we are root
# (PostgreSQL refuses to run as root), and directly otherwise.
as_postgres() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

stop_postgres() {
	if [ -n "$pg_tmp" ] && [ -d "$pg_tmp" ]; then
		if [ -n "$pg_bin" ] && [ -f "$pg_tmp/data/postmaster.pid" ]; then
			# immediate: the cluster is thrown away, no need for a clean
			# shutdown checkpoint.
			as_postgres "$pg_bin/pg_ctl" -D "$pg_tmp/data" -m immediate stop >/dev/null 2>&1 || true
		fi
		rm -rf "$pg_tmp"
	fi
}

# find_pg_bin sets pg_bin to the newest installed server's bin directory.
find_pg_bin() {
	local d
	pg_bin=""
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			pg_bin="$d"
		fi
	done
}

install_postgres() {
	if [ "$(id -u)" -ne 0 ]; then
		log "no PostgreSQL server found in /usr/lib/postgresql/*/bin and not root:"
		log "install one (apt-get install postgresql) or set KEYHOLD_TEST_POSTGRES to a superuser URL"
		exit 1
	fi
	log "installing PostgreSQL with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq postgresql >/dev/null
}

# port_free reports whether nothing listens on 127.0.0.1:$1.
port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_postgres() {
	find_pg_bin
	if [ -z "$pg_bin" ]; then
		install_postgres
		find_pg_bin
		if [ -z "$pg_bin" ]; then
			log "PostgreSQL was installed but no initdb was found under /usr/lib/postgresql"
			exit 1
		fi
	fi
	if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
		useradd --system --no-create-home --shell /usr/sbin/nologin postgres
	fi

	# Under /tmp (world-traversable) so that the postgres user can reach it.
	pg_tmp="$(mktemp -d /tmp/keyhold-pg.XXXXXX)"
	trap stop_postgres EXIT
	chmod 755 "$pg_tmp"
	mkdir "$pg_tmp/sock"
	if [ "$(id -u)" -eq 0 ]; then
		chown -R postgres: "$pg_tmp"
	fi

	# Trust authentication: the server listens on loopback only, lives as
	# long as this script, and holds nothing but test data.
	# An ICU en-US default collation (PostgreSQL 15+), as production
	# databases often have, so the tests prove that the schema's
	# COLLATE "C" columns keep ordering bytewise anyway.
	local locale=(--locale=C)
	if [ "$(basename "$(dirname "$pg_bin")" | cut -d. -f1)" -ge 15 ] 2>/dev/null; then
		locale=(--locale=C.UTF-8 --locale-provider=icu --icu-locale=en-US)
	fi
	as_postgres "$pg_bin/initdb" -D "$pg_tmp/data" -U postgres -A trust -E UTF8 "${locale[@]}" --no-sync >"$pg_tmp/initdb.log" 2>&1 || {
		cat "$pg_tmp/initdb.log" >&2
		log "initdb failed"
		exit 1
	}

	# fsync, synchronous_commit and full_page_writes off: a throwaway test
	# cluster needs no crash safety, and the tests run much faster.
	# max_connections: every test database gets its own connection pool.
	local port tries=0
	while :; do
		tries=$((tries + 1))
		port=$((20000 + RANDOM % 40000))
		if ! port_free "$port"; then
			continue
		fi
		if as_postgres "$pg_bin/pg_ctl" -D "$pg_tmp/data" -l "$pg_tmp/server.log" -w -t 60 \
			-o "-p $port -k $pg_tmp/sock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
			start >/dev/null; then
			break
		fi
		if [ "$tries" -ge 5 ]; then
			cat "$pg_tmp/server.log" >&2 || true
			log "could not start PostgreSQL"
			exit 1
		fi
		log "PostgreSQL did not start on port $port; trying another"
	done

	export KEYHOLD_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	export KEYHOLD_TEST_POSTGRES_DATADIR="$pg_tmp/data"
	export KEYHOLD_REQUIRE_POSTGRES=1
	log "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $pg_tmp/data"
}

# --- hooks for later test dependencies ----------------------------------------

# setup_softhsm makes sure SoftHSM2 is installed for the PKCS#11 tests
# (RSA-HSM keys of the built-in vault), installing it with apt-get when its
# module is missing and we are root, and makes those tests fail rather than
# skip without it. Each test binary creates its own token in a temporary
# directory (SOFTHSM2_CONF), so nothing here touches a system token.
setup_softhsm() {
	if [ ! -e /usr/lib/softhsm/libsofthsm2.so ] || ! command -v softhsm2-util >/dev/null 2>&1; then
		if [ "$(id -u)" -ne 0 ]; then
			log "SoftHSM2 is not installed and we are not root: install it (apt-get install softhsm2)"
			exit 1
		fi
		log "installing SoftHSM2 with apt-get"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq softhsm2 >/dev/null
	fi
	export KEYHOLD_REQUIRE_SOFTHSM=1
}

# setup_chromium makes sure Debian's chromium is installed for the browser
# tests (the device code sign-in, cli/login_device_test.go), installing it
# with apt-get when it is missing and we are root. In CI (CI=true) those
# tests then fail rather than skip without it (KEYHOLD_REQUIRE_CHROMIUM=1);
# elsewhere a developer without Chromium and root sees them skip.
setup_chromium() {
	if ! command -v chromium >/dev/null 2>&1; then
		if [ "$(id -u)" -ne 0 ]; then
			log "Chromium is not installed and we are not root: the browser tests skip (apt-get install chromium)"
			if [ "${CI:-}" = "true" ]; then
				exit 1
			fi
			return 0
		fi
		log "installing Chromium with apt-get"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq chromium >/dev/null
	fi
	if [ "${CI:-}" = "true" ]; then
		export KEYHOLD_REQUIRE_CHROMIUM=1
	fi
}

# --- run --------------------------------------------------------------------

if [ -n "${KEYHOLD_TEST_POSTGRES:-}" ]; then
	log "using the PostgreSQL server in KEYHOLD_TEST_POSTGRES"
	export KEYHOLD_REQUIRE_POSTGRES=1
else
	start_postgres
fi
setup_softhsm
setup_chromium

# keyhold_faults builds the ops fault points that kill a process (ops/
# fault_armed.go) and the crash tests that use them; keyhold_azure builds
# keyprovider.Azure, not yet wired into the server, and its tests.
# Production builds leave both out.
tags=keyhold_faults,keyhold_azure
log "go vet -tags $tags ${pkgs[*]}"
go vet -tags "$tags" "${pkgs[@]}"
log "go test -tags $tags ${flags[*]:-} ${pkgs[*]}"
go test -count=1 -timeout 45m -tags "$tags" "${flags[@]}" "${pkgs[@]}"
