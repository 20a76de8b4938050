# shellcheck shell=bash
# Shared by scripts/run, scripts/test and .ci/run (source it, don't run it):
# the virtual environment, Debian packages the tests need, and the local
# PostgreSQL and Redis servers (checked, started, installed as a last resort).
#
# Installing and starting system services happens only for servers on this
# machine (loopback addresses) and, for apt-get and pg_ctlcluster, only as root.

SD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SD_VENV="$SD_ROOT/.venv"
SD_PY="$SD_VENV/bin/python"
SD_APT_UPDATED=0

sd_say() { printf '==> %s\n' "$*"; }
sd_warn() { printf 'warning: %s\n' "$*" >&2; }
sd_die() {
    printf '\nERROR: %s\n' "$*" >&2
    exit 1
}

sd_is_root() { [ "$(id -u)" = 0 ]; }
sd_can_apt() { sd_is_root && command -v apt-get >/dev/null 2>&1; }

# --- Python and the virtual environment ------------------------------------

sd_is_py311() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1; }

sd_find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 || continue
        if sd_is_py311 "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# The files a requirements file pulls in with "-r", itself first.
sd_requirement_files() {
    local file="$1" dir include
    dir="$(dirname "$file")"
    printf '%s\n' "$file"
    while read -r include; do
        if [ -n "$include" ]; then sd_requirement_files "$dir/$include"; fi
    done < <(sed -n 's/^[[:space:]]*-r[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$file")
}

# sd_venv REQUIREMENTS_FILE: create .venv when missing and install the
# requirements when they changed since the last install (a hash stamp in .venv).
sd_venv() {
    local requirements="$SD_ROOT/$1" python stamp digest
    if [ ! -x "$SD_PY" ] || ! sd_is_py311 "$SD_PY"; then
        python="$(sd_find_python)" || sd_die "Python 3.11 is needed (python3.11, or python3 being 3.11; or set PYTHON=/path/to/python3.11)."
        sd_say "Creating the virtual environment in .venv ($python)"
        "$python" -m venv --clear "$SD_VENV" || sd_die "Could not create .venv (on Debian: apt-get install python3-venv)."
    fi
    stamp="$SD_VENV/.installed-$(basename "$requirements").sha256"
    digest="$( { "$SD_PY" -VV; sd_requirement_files "$requirements" | xargs cat; } | sha256sum | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
        sd_say "Installing Python packages from $(basename "$requirements") (the first time takes a minute or two)"
        "$SD_PY" -m pip install -qq --disable-pip-version-check -r "$requirements" ||
            sd_die "pip could not install $(basename "$requirements")."
        printf '%s\n' "$digest" >"$stamp"
    fi
}

sd_manage() { "$SD_PY" "$SD_ROOT/manage.py" "$@"; }

# --- Debian packages --------------------------------------------------------

sd_apt_install() {
    sd_can_apt || return 1
    if [ "$SD_APT_UPDATED" = 0 ]; then
        sd_say "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
        SD_APT_UPDATED=1
    fi
    sd_say "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

sd_has() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }

# sd_packages_ensure PACKAGE:COMMAND ...: install each package whose command is
# missing, in one apt-get call. Returns 1 when something is still missing.
# The email parser's tests read CPython's own email test corpus (test.test_email).
# pyenv and python.org builds ship it; Debian's Python keeps it in a package of its own.
sd_cpython_tests_ensure() {
    "$SD_PY" -c "import test.test_email" 2>/dev/null && return 0
    local version
    version="$("$SD_PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    if sd_can_apt && sd_apt_install "libpython$version-testsuite" && "$SD_PY" -c "import test.test_email" 2>/dev/null; then
        return 0
    fi
    sd_die "The tests need CPython's test package (test.test_email): on Debian apt-get install libpython$version-testsuite (as root), or build .venv from a Python that includes it."
}

sd_packages_ensure() {
    local pair package probe missing=()
    for pair in "$@"; do
        package="${pair%%:*}"
        probe="${pair#*:}"
        sd_has "$probe" || missing+=("$package")
    done
    [ "${#missing[@]}" = 0 ] && return 0
    if sd_can_apt; then
        sd_apt_install "${missing[@]}" || sd_die "apt-get could not install: ${missing[*]}"
        for package in "${missing[@]}"; do
            if [ "$package" = postgresql ]; then sd_postgres_trust_local; fi
        done
        return 0
    fi
    sd_warn "missing: ${missing[*]} (install them with apt-get as root)"
    return 1
}

sd_chromium_ensure() {
    sd_packages_ensure chromium:/usr/bin/chromium ||
        sd_die "The browser tests drive Debian's Chromium at /usr/bin/chromium: apt-get install chromium (as root)."
}

sd_compose_ensure() {
    sd_packages_ensure docker-compose:docker-compose ||
        sd_die "tests/test_compose.py validates docker-compose.yml with docker-compose: apt-get install docker-compose (as root)."
}

# --- PostgreSQL ---------------------------------------------------------------

sd_address() { "$SD_PY" "$SD_ROOT/scripts/services.py" address "$1"; }

sd_pg_versions() { ls /etc/postgresql 2>/dev/null | sort -V; }

# A cluster installed by us on a fresh machine: let local TCP clients in
# without a password, as on the project's development and CI machines.
sd_postgres_trust_local() {
    local version hba
    for version in $(sd_pg_versions); do
        hba="/etc/postgresql/$version/main/pg_hba.conf"
        [ -f "$hba" ] || continue
        grep -q '^# servicedesk: local trust' "$hba" && continue
        sd_say "Allowing local connections without password in $hba"
        {
            echo '# servicedesk: local trust'
            echo 'local all postgres trust'
            echo 'host all all 127.0.0.1/32 trust'
            echo 'host all all ::1/128 trust'
            cat "$hba"
        } >"$hba.new" && mv "$hba.new" "$hba"
        pg_ctlcluster --skip-systemctl-redirect "$version" main reload >/dev/null 2>&1 || true
    done
}

sd_postgres_start() {
    local version
    version="$(sd_pg_versions | tail -n 1)"
    [ -n "$version" ] || return 1
    sd_say "Starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
}

sd_postgres_ping() {
    local rc=0
    "$SD_PY" "$SD_ROOT/scripts/services.py" postgres-ping "$1" 2>"${2:-/dev/null}" || rc=$?
    return "$rc"
}

# sd_postgres_ensure URL: the server answers, or is started (installed as a
# last resort, as root), or the script stops with the reason.
sd_postgres_ensure() {
    local url="$1" rc=0 host port local_server errors i
    errors="$(mktemp)"
    sd_postgres_ping "$url" "$errors" || rc=$?
    if [ "$rc" = 2 ]; then
        read -r host port local_server < <(sd_address "$url")
        [ "$local_server" = 1 ] || sd_die "PostgreSQL at $host:$port does not answer (DATABASE_URL=$url)."
        sd_is_root || sd_die "PostgreSQL at $host:$port does not answer; start it (as root: pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start)."
        if [ -z "$(sd_pg_versions)" ]; then
            sd_can_apt || sd_die "PostgreSQL does not answer at $host:$port and is not installed (apt-get install postgresql)."
            sd_apt_install postgresql || sd_die "apt-get could not install postgresql."
            sd_postgres_trust_local
        fi
        sd_postgres_start
        for i in $(seq 1 30); do
            rc=0
            sd_postgres_ping "$url" "$errors" && break || rc=$?
            [ "$rc" = 2 ] || break
            sleep 1
        done
    fi
    case "$rc" in
    0) rm -f "$errors" ;;
    4) sd_die "DATABASE_URL must point at PostgreSQL here ($url)." ;;
    *) sd_die "PostgreSQL is not usable at DATABASE_URL=$url: $(cat "$errors")" ;;
    esac
}

sd_postgres_createdb() {
    "$SD_PY" "$SD_ROOT/scripts/services.py" postgres-createdb "$1" || sd_die "Could not create the database of $1."
}

# --- Redis --------------------------------------------------------------------

sd_redis_ping() {
    local rc=0
    "$SD_PY" "$SD_ROOT/scripts/services.py" redis-ping "$1" 2>"${2:-/dev/null}" || rc=$?
    return "$rc"
}

sd_redis_ensure() {
    local url="$1" rc=0 host port local_server errors i
    errors="$(mktemp)"
    sd_redis_ping "$url" "$errors" || rc=$?
    if [ "$rc" = 2 ]; then
        read -r host port local_server < <(sd_address "$url")
        [ "$local_server" = 1 ] || sd_die "Redis at $host:$port does not answer (REDIS_URL=$url)."
        sd_packages_ensure redis-server:redis-server ||
            sd_die "Redis does not answer at $host:$port and redis-server is not installed (apt-get install redis-server)."
        sd_say "Starting Redis on 127.0.0.1:$port"
        redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "${TMPDIR:-/tmp}" >/dev/null || true
        for i in $(seq 1 20); do
            rc=0
            sd_redis_ping "$url" "$errors" && break || rc=$?
            sleep 0.5
        done
    fi
    case "$rc" in
    0) rm -f "$errors" ;;
    4) sd_die "REDIS_URL must be a redis:// URL ($url)." ;;
    *) sd_die "Redis is not usable at REDIS_URL=$url: $(cat "$errors")" ;;
    esac
}

# --- Translations ---------------------------------------------------------------

# Compile the .po catalogues when gettext is present; the compiled .mo files
# are committed too, so a machine without gettext still shows translations.
sd_compile_messages() {
    if [ -z "$(find "$SD_ROOT" -path "$SD_VENV" -prune -o -name '*.po' -path '*/locale/*' -print -quit)" ]; then
        return 0
    fi
    if ! command -v msgfmt >/dev/null 2>&1; then
        sd_say "gettext (msgfmt) not installed: using the committed translation files"
        return 0
    fi
    (cd "$SD_ROOT" && sd_manage compilemessages --verbosity 0 --ignore .venv --ignore var --ignore staticfiles --ignore node_modules)
}
