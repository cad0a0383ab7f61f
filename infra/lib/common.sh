# Shared by infra/dev, infra/test, infra/fuzz-api, infra/bench and infra/check-docs: the
# project-local venv, the Node tools, Chromium and the local AWS emulator. Sourced, not executed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
export PATH="$VENV/bin:$HOME/.cargo/bin:$PATH"
# Local emulators accept any credentials; never real ones.
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export SAM_CLI_TELEMETRY=0

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Creates .venv and installs infra/requirements.txt once (again when it changes).
ensure_venv() {
  local stamp="$VENV/.requirements.sha"
  local want
  want="$(sha256sum "$ROOT/infra/requirements.txt" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  log "installing Python tools into .venv (first run only)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/infra/requirements.txt"
  echo "$want" > "$stamp"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() { # port, what
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$2 did not start on port $1" >&2
  return 1
}

# Starts moto (DynamoDB + KMS) on a free port; sets MOTO_ENDPOINT and MOTO_PID.
start_moto() {
  local port
  port="$(free_port)"
  # moto_server, with DynamoDB writes made atomic as in the real service (see the file).
  "$VENV/bin/python" "$ROOT/infra/lib/moto_atomic.py" -H 127.0.0.1 -p "$port" >"${MOTO_LOG:-/dev/null}" 2>&1 &
  MOTO_PID=$!
  wait_for_port "$port" "moto_server"
  export MOTO_ENDPOINT="http://127.0.0.1:$port"
}

# Headless Chromium for the browser tests (infra/web-test): Debian's `chromium` and
# `chromium-driver` packages, installed once with apt (about 70 s, 500 MB). Playwright
# drives this system browser; no browser is ever downloaded from anywhere else.
CHROMIUM=/usr/bin/chromium
ensure_chromium() {
  [ -x "$CHROMIUM" ] && return 0
  command -v apt-get >/dev/null || { echo "no $CHROMIUM and no apt-get: install Chromium yourself" >&2; return 1; }
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  log "installing chromium and chromium-driver with apt (first run only)"
  local started=$SECONDS
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  log "chromium installed in $((SECONDS - started)) s: $("$CHROMIUM" --version 2>/dev/null)"
}

# mermaid-cli (infra/package.json; exact versions in infra/package-lock.json) into
# infra/node_modules, once (again when the lock file changes): about 25 s and 500 MB. Only
# the npm registry is reached: Puppeteer's browser download is off and no install script
# runs, since mermaid-cli drives Debian's Chromium (ensure_chromium, infra/puppeteer-config.json).
NODE_TOOLS="$ROOT/infra/node_modules"
ensure_node_tools() {
  local stamp="$NODE_TOOLS/.package-lock.sha" want started=$SECONDS
  want="$(sha256sum "$ROOT/infra/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  command -v npm >/dev/null || { echo "npm not found: install Node.js 18.19 or later" >&2; return 1; }
  log "installing mermaid-cli into infra/node_modules (first run only)"
  PUPPETEER_SKIP_DOWNLOAD=1 npm ci --prefix "$ROOT/infra" --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
  log "mermaid-cli installed in $((SECONDS - started)) s"
}
