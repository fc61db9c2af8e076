#!/usr/bin/env bash
# Installs the real MCP servers the ordinaut-tools tests talk to, pinned, and only what is
# missing (safe to run again):
#   * @modelcontextprotocol/server-everything from npm: `npm ci` of
#     crates/tools/tests/fixtures/package.json + package-lock.json (node_modules there);
#   * Debian's Chromium and npm's playwright-core (gateway/tests/browser), for the
#     dashboard's browser test;
#   * the official `mcp` Python package (2.x) into the venv at
#     ${ORDINAUT_TOOLS_DIR:-/var/cache/ordinaut}/venv, which runs
#     crates/tools/tests/fixtures/weather_server.py;
#   * schemathesis into ${ORDINAUT_TOOLS_DIR:-/var/cache/ordinaut}/schemathesis (the gateway's
#     OpenAPI tests).
# Node.js, npm and python3-venv come from Debian's packages when absent.
set -euo pipefail
cd "$(dirname "$0")/.."

MCP_PY_VERSION=2.3.0
FIXTURES=crates/tools/tests/fixtures
TOOLS_DIR=${ORDINAUT_TOOLS_DIR:-/var/cache/ordinaut}
mkdir -p "$TOOLS_DIR" 2>/dev/null || TOOLS_DIR=$PWD/.ordinaut/tools
VENV=$TOOLS_DIR/venv

say() { printf '==> %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# --- npm: server-everything -------------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "installing Node.js and npm"
  apt_install nodejs npm
fi
bin=$FIXTURES/node_modules/.bin/mcp-server-everything
# The lock file's hash, recorded after a successful install: a changed lock reinstalls.
stamp=$FIXTURES/node_modules/.ordinaut-lock.sha256
want=$(sha256sum "$FIXTURES/package-lock.json" | cut -d' ' -f1)
if [ ! -x "$bin" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "npm ci in $FIXTURES (MCP server-everything)"
  (cd "$FIXTURES" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
fi

# --- the dashboard's browser test: Debian's Chromium, driven by npm's playwright-core -------
if [ ! -x /usr/bin/chromium ] && [ -z "${ORDINAUT_CHROMIUM:-}" ]; then
  say "installing Chromium (apt-get install -y chromium)"
  apt_install chromium
fi
BROWSER=gateway/tests/browser
stamp=$BROWSER/node_modules/.ordinaut-lock.sha256
want=$(sha256sum "$BROWSER/package-lock.json" | cut -d' ' -f1)
if [ ! -d "$BROWSER/node_modules/playwright-core" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "npm ci in $BROWSER (playwright-core, without its browser downloads)"
  (cd "$BROWSER" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
fi

# --- PyPI: mcp ----------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the Python venv in $VENV"
  python3 -m venv "$VENV" || { apt_install python3-venv; python3 -m venv "$VENV"; }
fi
have=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null || true)
if [ "$have" != "$MCP_PY_VERSION" ]; then
  say "pip install mcp==$MCP_PY_VERSION into $VENV"
  "$VENV/bin/pip" install -q "mcp==$MCP_PY_VERSION"
fi
# --- PyPI: schemathesis (the gateway's OpenAPI document, property-based), its own venv -----
ST_VERSION=4.32.5
ST_VENV=$TOOLS_DIR/schemathesis
if [ "$("$ST_VENV/bin/st" --version 2>/dev/null | awk '{print $3}')" != "$ST_VERSION" ]; then
  say "pip install schemathesis==$ST_VERSION into $ST_VENV"
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/pip" install -q "schemathesis==$ST_VERSION"
fi
say "MCP test peers ready: $bin, $VENV/bin/python (mcp $MCP_PY_VERSION)"
