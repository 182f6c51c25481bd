#!/usr/bin/env bash
# Creates every environment the project needs, from nothing but Python 3.12 and PyPI:
#   .venvs/tools       uv (the installer)
#   .venvs/af-2.11.2   Airflow 2.11.2 + providers, exactly MWAA's constraints, this package (editable)
#   .venvs/af-3.3.1    Airflow 3.3.1 + providers, exactly MWAA's constraints, this package (editable)
#   .venvs/localcloud  the local cloud (moto, fakesnow, SMTP sink) — its pins conflict with MWAA's
#   .venvs/lint        ruff and mypy (requirements/lint.txt), run by scripts/lint.sh
#   browser            headless Chromium + chromedriver, for the trigger-form tests (tests/integration/ui) only:
#                      Debian's packages where apt-get runs as root; elsewhere it says how to
#                      provide them and goes on (the demo and all other tests need no browser)
# Idempotent: an environment is rebuilt only when its requirement files change.
# Usage: scripts/bootstrap.sh [2.11.2|3.3.1|localcloud|lint|browser ...]   (default: all)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENVS="$ROOT/.venvs"
mkdir -p "$VENVS"

find_python312() {
  for cand in python3.12 "$(command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/"3.12*/bin/python3.12 \
              /root/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do
    if [ -x "$(command -v "$cand" 2>/dev/null || echo "$cand")" ] && "$cand" -c 'import sys; assert sys.version_info[:2]==(3,12)' 2>/dev/null; then
      command -v "$cand" 2>/dev/null || echo "$cand"; return 0
    fi
  done
  echo "bootstrap: Python 3.12 (MWAA's version) not found" >&2; return 1
}
PY312="$(find_python312)"

if [ ! -x "$VENVS/tools/bin/uv" ]; then
  "$PY312" -m venv "$VENVS/tools"
  "$VENVS/tools/bin/pip" install --quiet --disable-pip-version-check uv
fi
UV="$VENVS/tools/bin/uv"
# Bytecode compiled at install: Python reads .pyc files even where PYTHONDONTWRITEBYTECODE is set (as
# on CI machines), and without them every process (each Airflow task, CLI call, local cloud) compiles
# Airflow, botocore and moto from source again: 6.4 s instead of 3.1 s to import Airflow 3 + boto3.
export UV_LINK_MODE=copy UV_NO_PROGRESS=1 UV_COMPILE_BYTECODE=1

stamp_of() { { cat "$@" pyproject.toml 2>/dev/null; echo "bytecode compiled"; } | sha256sum | cut -c1-16; }

airflow_env() {
  local v="$1" env="$VENVS/af-$1"
  local inputs=(requirements/dev-"$v".txt requirements/test.txt requirements/constraints/constraints-"$v".txt)
  local stamp; stamp="$(stamp_of "${inputs[@]}")"
  if [ -f "$env/.stamp" ] && [ "$(cat "$env/.stamp")" = "$stamp" ]; then return 0; fi
  echo "bootstrap: creating $env (Airflow $v, MWAA constraints)"
  rm -rf "$env"
  "$UV" venv --quiet --python "$PY312" "$env"
  "$UV" pip install --quiet --python "$env/bin/python" \
      --constraint requirements/constraints/constraints-"$v".txt \
      -r requirements/dev-"$v".txt -e .
  echo "$stamp" > "$env/.stamp"
}

# An environment of one requirements file, outside MWAA's constraints: tool_env NAME FILE WHAT
tool_env() {
  local env="$VENVS/$1" requirements="$2"
  local stamp; stamp="$(stamp_of "$requirements")"
  if [ -f "$env/.stamp" ] && [ "$(cat "$env/.stamp")" = "$stamp" ]; then return 0; fi
  echo "bootstrap: creating $env ($3)"
  rm -rf "$env"
  "$UV" venv --quiet --python "$PY312" "$env"
  "$UV" pip install --quiet --python "$env/bin/python" -r "$requirements"
  echo "$stamp" > "$env/.stamp"
}

# Headless Chromium + chromedriver for the trigger-form tests (tests/integration/ui), as tests/integration/ui finds them:
# CHROMIUM / CHROMEDRIVER (names or paths), else chromium and chromedriver on PATH.
browser() {
  if command -v "${CHROMIUM:-chromium}" >/dev/null && command -v "${CHROMEDRIVER:-chromedriver}" >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing chromium and chromium-driver (tests/integration/ui)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver && return 0
  fi
  echo "bootstrap: no headless Chromium with chromedriver here, and no root apt-get to install them." \
       "Only the trigger-form tests (tests/integration/ui) need them: install both (Debian: apt-get install chromium" \
       "chromium-driver; macOS: brew install --cask chromium, brew install --cask chromedriver) and set" \
       "CHROMIUM and CHROMEDRIVER to their paths if they are not on PATH as chromium and chromedriver." >&2
}

targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(localcloud lint 2.11.2 3.3.1 browser)
for t in "${targets[@]}"; do
  case "$t" in
    localcloud) tool_env localcloud requirements/localcloud.txt "local cloud" ;;
    lint) tool_env lint requirements/lint.txt "ruff, mypy" ;;
    browser) browser ;;
    2.11.2|3.3.1) airflow_env "$t" ;;
    *) echo "bootstrap: unknown target $t" >&2; exit 2 ;;
  esac
done
