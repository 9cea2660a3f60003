#!/usr/bin/env bash
# Create (idempotently) the two virtualenvs the peer benchmark needs.
#
#   peers venv         gunicorn, bjoern, granian, waitress, httptools, matplotlib,
#                      and the frameworks the framework scenarios serve (flask, django)
#   pypi-fastwsgi venv the unrelated PyPI project "fastwsgi==0.0.9" (libuv-based);
#                      its import name clashes with ours, so it lives alone.
#
# System tools (Debian/Ubuntu, as root):
#   apt-get update && apt-get install -y wrk nginx-light libev-dev
# (libev-dev is needed because bjoern builds from its sdist.)
#
# Environment:
#   BENCH_HOME     base directory         (default: ~/.cache/fastwsgi-bench)
#   PEERS_VENV     peers venv path        (default: $BENCH_HOME/peers)
#   PYPI_FW_VENV   pypi-fastwsgi venv     (default: $BENCH_HOME/pypi-fastwsgi)
#   PYTHON         interpreter for venvs  (default: python3)
#   WITH_APT=1     also run the apt-get line above
set -euo pipefail

BENCH_HOME="${BENCH_HOME:-$HOME/.cache/fastwsgi-bench}"
PEERS_VENV="${PEERS_VENV:-$BENCH_HOME/peers}"
PYPI_FW_VENV="${PYPI_FW_VENV:-$BENCH_HOME/pypi-fastwsgi}"
PYTHON="${PYTHON:-python3}"

PEER_PKGS=(gunicorn bjoern granian waitress httptools matplotlib flask django)
# fastwsgi 0.0.9 imports pkg_resources, which setuptools>=81 no longer ships.
PYPI_FW_PKGS=("fastwsgi==0.0.9" "setuptools<81")

if [[ "${WITH_APT:-0}" == 1 ]]; then
    apt-get update
    apt-get install -y wrk nginx-light libev-dev
fi

for tool in wrk nginx taskset; do
    command -v "$tool" >/dev/null 2>&1 || [[ -x /usr/sbin/$tool ]] || \
        echo "warning: '$tool' not found (apt-get install -y wrk nginx-light libev-dev util-linux)" >&2
done
if [[ ! -e /usr/include/ev.h && ! -e /usr/local/include/ev.h ]]; then
    echo "warning: libev headers not found; bjoern will fail to build (apt-get install -y libev-dev)" >&2
fi

make_venv() {  # make_venv DIR IMPORT-CHECK PKG...
    local dir="$1" check="$2"; shift 2
    # Checks run from $BENCH_HOME so that a ./fastwsgi source tree in the
    # current directory cannot shadow the installed package.
    if [[ -x "$dir/bin/python" ]] && (cd "$BENCH_HOME" && "$dir/bin/python" -c "$check") >/dev/null 2>&1; then
        echo "ok: $dir already complete"
        return
    fi
    echo "== creating $dir"
    mkdir -p "$(dirname "$dir")"
    [[ -x "$dir/bin/python" ]] || "$PYTHON" -m venv "$dir"
    "$dir/bin/python" -m pip install -q --upgrade pip wheel
    "$dir/bin/python" -m pip install -q "$@"
    (cd "$BENCH_HOME" && "$dir/bin/python" -c "$check")
    echo "ok: $dir"
}

make_venv "$PEERS_VENV" \
    "import gunicorn, bjoern, granian, waitress, httptools, matplotlib, flask, django" \
    "${PEER_PKGS[@]}"

# pypi-fastwsgi: verify it is the 0.0.9 distribution, not something else called fastwsgi.
make_venv "$PYPI_FW_VENV" \
    "import importlib.metadata as m, fastwsgi; assert m.version('fastwsgi') == '0.0.9'; fastwsgi.run" \
    "${PYPI_FW_PKGS[@]}"

echo
echo "peers venv:         $PEERS_VENV"
echo "pypi-fastwsgi venv: $PYPI_FW_VENV"
"$PEERS_VENV/bin/python" -m pip list 2>/dev/null | grep -Ei '^(gunicorn|bjoern|granian|waitress|httptools|matplotlib|flask|django) '
"$PYPI_FW_VENV/bin/python" -m pip list 2>/dev/null | grep -Ei '^fastwsgi '
