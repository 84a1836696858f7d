#!/bin/bash
# Start/stop a private OCI registry (CNCF distribution 2.8, Debian package
# `docker-registry`) on loopback with TLS (self-signed, own CA) and htpasswd
# basic auth. No systemd: the binary is run directly with its own config.yml.
#
#   registry.sh start   DIR  -> prints KEY=VALUE lines (also written to DIR/env)
#   registry.sh restart DIR  -> starts it again on the same config, port and data (after a kill)
#   registry.sh stop    DIR  -> stops it (DIR is left for the caller to rm -rf)
#
#   REG_AUTH=token REG_TOKEN_REALM=URL REG_TOKEN_CERT=PEM: token (Bearer) auth against a
#   token service the caller runs, instead of htpasswd (Basic).
#
# Needs: docker-registry apache2-utils openssl curl python3
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

cmd=${1:?usage: registry.sh start|stop DIR}
dir=${2:?usage: registry.sh start|stop DIR}
REG_BIN=${REG_BIN:-/usr/bin/docker-registry}
REG_USER=${REG_USER:-uforge}
REG_PASS=${REG_PASS:-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')}

stop() {
  stop_pidfile "$dir/registry.pid"
}

# the registry on DIR's config, in the background, until /v2/ asks for credentials
serve() {
  local code=000
  # REGISTRY_* variables in the environment would override config keys
  env -u REGISTRY_HOST -u REGISTRY_URL "$REG_BIN" serve "$dir/config.yml" >> "$dir/registry.log" 2>&1 &
  echo $! > "$dir/registry.pid"
  for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$dir/certs/ca.crt" \
      "https://127.0.0.1:$1/v2/" || true)
    [ "$code" = 401 ] && return 0
    kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null || { cat "$dir/registry.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "registry did not come up" >&2; cat "$dir/registry.log" >&2; stop; exit 1
}

restart() {
  dir=$(cd "$dir" && pwd)
  [ -f "$dir/config.yml" ] || { echo "no registry in $dir" >&2; exit 1; }
  stop
  serve "$(sed -n 's/^  addr: 127.0.0.1://p' "$dir/config.yml")"
  sed -i "s/^REGISTRY_PID=.*/REGISTRY_PID=$(cat "$dir/registry.pid")/" "$dir/env"
  cat "$dir/env"
}

start() {
  mkdir -p "$dir"/{data,certs,auth}
  dir=$(cd "$dir" && pwd)
  port=${REG_PORT:-$(free_ports 1)}

  # --- TLS: a throw-away CA plus a server cert for 127.0.0.1 / localhost ---
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=uforge-test-ca" \
    -keyout "$dir/certs/ca.key" -out "$dir/certs/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$dir/certs/server.key" -out "$dir/certs/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    > "$dir/certs/ext.cnf"
  openssl x509 -req -in "$dir/certs/server.csr" -CA "$dir/certs/ca.crt" -CAkey "$dir/certs/ca.key" \
    -CAcreateserial -days 2 -extfile "$dir/certs/ext.cnf" -out "$dir/certs/server.crt" 2>/dev/null
  # skopeo/containers-image --cert-dir wants *.crt files that are CAs
  mkdir -p "$dir/client-certs"
  cp "$dir/certs/ca.crt" "$dir/client-certs/ca.crt"

  # --- basic auth (distribution accepts bcrypt entries only) ---
  htpasswd -Bbc "$dir/auth/htpasswd" "$REG_USER" "$REG_PASS" 2>/dev/null

  cat > "$dir/config.yml" <<EOF
version: 0.1
log:
  level: ${REG_LOG_LEVEL:-info}
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
  secret: $(head -c 24 /dev/urandom | base64)
  tls:
    certificate: $dir/certs/server.crt
    key: $dir/certs/server.key
EOF
  if [ "${REG_AUTH:-htpasswd}" = token ]; then
    cp "${REG_TOKEN_CERT:?}" "$dir/auth/token-ca.pem"
    cat >> "$dir/config.yml" <<EOF
auth:
  token:
    realm: ${REG_TOKEN_REALM:?}
    service: uforge-registry
    issuer: uforge-test-issuer
    rootcertbundle: $dir/auth/token-ca.pem
EOF
  else
    cat >> "$dir/config.yml" <<EOF
auth:
  htpasswd:
    realm: uforge-test
    path: $dir/auth/htpasswd
EOF
  fi

  t0=$(date +%s.%N)
  serve "$port"
  t1=$(date +%s.%N)

  cat > "$dir/env" <<EOF
REGISTRY_HOST=127.0.0.1:$port
REGISTRY_URL=https://127.0.0.1:$port
REGISTRY_USER=$REG_USER
REGISTRY_PASSWORD=$REG_PASS
REGISTRY_CA_FILE=$dir/certs/ca.crt
REGISTRY_CERT_DIR=$dir/client-certs
REGISTRY_PID=$(cat "$dir/registry.pid")
REGISTRY_LOG=$dir/registry.log
REGISTRY_STARTUP_SECONDS=$(python3 -c "print(round($t1-$t0,3))")
EOF
  cat "$dir/env"
}

case $cmd in
  start) start ;;
  restart) restart ;;
  stop) stop ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
