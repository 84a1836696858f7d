#!/bin/bash
# Start/stop a single-node Garage (S3-compatible object store) on loopback.
#
#   garage.sh start   DIR  -> prints KEY=VALUE lines (also written to DIR/env)
#   garage.sh restart DIR  -> starts the server again on the same config and data (after a kill)
#   garage.sh stop    DIR  -> stops it (DIR is left for the caller to rm -rf)
#
# Environment knobs:
#   GARAGE_BIN      garage binary (default /var/cache/uforge-tools/garage-2.5.0/garage)
#   GARAGE_REGION   S3 region name the server expects (default "garage")
#   GARAGE_BUCKET   bucket to create (default "uforge-test")
#   GARAGE_BOOTSTRAP=cli|single-node
#                   cli (default): `layout assign` + `layout apply`, `key import`,
#                   `bucket create` + `bucket allow` through the CLI.
#                   single-node: garage >= 2.0 `server --single-node --default-bucket`.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

cmd=${1:?usage: garage.sh start|stop DIR}
dir=${2:?usage: garage.sh start|stop DIR}
GARAGE_BIN=${GARAGE_BIN:-/var/cache/uforge-tools/garage-${GARAGE_VERSION:-2.5.0}/garage}
GARAGE_REGION=${GARAGE_REGION:-garage}
GARAGE_BUCKET=${GARAGE_BUCKET:-uforge-test}
GARAGE_BOOTSTRAP=${GARAGE_BOOTSTRAP:-cli}

stop() {
  stop_pidfile "$dir/garage.pid"
}

# the server on DIR's config, in the background; waits for its RPC endpoint (the CLI
# talks RPC, authenticated by rpc_secret)
run_server() {
  RUST_LOG=${RUST_LOG:-garage=info} "$GARAGE_BIN" -c "$dir/garage.toml" server >> "$dir/garage.log" 2>&1 &
  echo $! > "$dir/garage.pid"
  wait_rpc
}

wait_rpc() {
  for _ in $(seq 100); do
    "$GARAGE_BIN" -c "$dir/garage.toml" status > /dev/null 2>&1 && return 0
    kill -0 "$(cat "$dir/garage.pid")" 2>/dev/null || { cat "$dir/garage.log" >&2; exit 1; }
    sleep 0.1
  done
}

# /health on the admin API answers 200 once the layout is live and all partitions have
# quorum (no token needed)
wait_healthy() {
  local code=000
  for _ in $(seq 200); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/health" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  echo "garage not healthy ($code)" >&2; cat "$dir/garage.log" >&2; stop; exit 1
}

restart() {
  dir=$(cd "$dir" && pwd)
  [ -f "$dir/garage.toml" ] || { echo "no garage in $dir" >&2; exit 1; }
  stop
  run_server
  wait_healthy "$(sed -n 's/^GARAGE_ADMIN_ENDPOINT=http:\/\/127.0.0.1://p' "$dir/env")"
  sed -i "s/^GARAGE_PID=.*/GARAGE_PID=$(cat "$dir/garage.pid")/" "$dir/env"
  cat "$dir/env"
}

start() {
  [ -x "$GARAGE_BIN" ] || { echo "garage binary not found at $GARAGE_BIN" >&2; exit 1; }
  mkdir -p "$dir"/{meta,data}
  dir=$(cd "$dir" && pwd)
  read -r s3_port rpc_port admin_port <<<"$(free_ports 3)"
  rpc_secret=$(openssl rand -hex 32)
  admin_token=$(openssl rand -base64 24)
  key_id="GK$(openssl rand -hex 12)"
  secret_key=$(openssl rand -hex 32)

  cat > "$dir/garage.toml" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "lmdb"
# keep the LMDB map small: the default reserves 1 TiB of address space
lmdb_map_size = "1GiB"
metadata_fsync = false
data_fsync = false
replication_factor = 1
compression_level = "none"

rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$rpc_secret"

[s3_api]
api_bind_addr = "127.0.0.1:$s3_port"
s3_region = "$GARAGE_REGION"
# vhost-style requests work for <bucket>.s3.garage.localhost; path-style always works
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
admin_token = "$admin_token"
EOF
  # keep the inline secrets private (garage itself only checks the mode of *_file secrets)
  chmod 600 "$dir/garage.toml"

  G=("$GARAGE_BIN" -c "$dir/garage.toml")
  t0=$(date +%s.%N)
  if [ "$GARAGE_BOOTSTRAP" = single-node ]; then
    GARAGE_DEFAULT_ACCESS_KEY=$key_id GARAGE_DEFAULT_SECRET_KEY=$secret_key \
    GARAGE_DEFAULT_BUCKET=$GARAGE_BUCKET RUST_LOG=${RUST_LOG:-garage=info} \
      "${G[@]}" server --single-node --default-bucket >> "$dir/garage.log" 2>&1 &
    echo $! > "$dir/garage.pid"
    wait_rpc
  else
    run_server
  fi

  if [ "$GARAGE_BOOTSTRAP" != single-node ]; then
    node_id=$("${G[@]}" node id -q 2>/dev/null | cut -d@ -f1)
    "${G[@]}" layout assign -z dc1 -c 1G "$node_id" > "$dir/bootstrap.log"
    "${G[@]}" layout apply --version 1 >> "$dir/bootstrap.log"
    "${G[@]}" key import --yes -n uforge-test "$key_id" "$secret_key" >> "$dir/bootstrap.log"
    "${G[@]}" bucket create "$GARAGE_BUCKET" >> "$dir/bootstrap.log"
    "${G[@]}" bucket allow --read --write --owner "$GARAGE_BUCKET" --key "$key_id" >> "$dir/bootstrap.log"
  fi

  wait_healthy "$admin_port"
  t1=$(date +%s.%N)

  cat > "$dir/env" <<EOF
S3_ENDPOINT=http://127.0.0.1:$s3_port
S3_REGION=$GARAGE_REGION
S3_BUCKET=$GARAGE_BUCKET
S3_ACCESS_KEY_ID=$key_id
S3_SECRET_ACCESS_KEY=$secret_key
S3_ADDRESSING_STYLE=path
S3_VHOST_DOMAIN=s3.garage.localhost
GARAGE_ADMIN_ENDPOINT=http://127.0.0.1:$admin_port
GARAGE_ADMIN_TOKEN=$admin_token
GARAGE_RPC_ADDR=127.0.0.1:$rpc_port
GARAGE_CONFIG=$dir/garage.toml
GARAGE_BIN=$GARAGE_BIN
GARAGE_PID=$(cat "$dir/garage.pid")
GARAGE_LOG=$dir/garage.log
GARAGE_STARTUP_SECONDS=$(python3 -c "print(round($t1-$t0,3))")
EOF
  cat "$dir/env"
}

case $cmd in
  start) start ;;
  restart) restart ;;
  stop) stop ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
