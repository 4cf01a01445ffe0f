#!/bin/sh
# Creates one virtual environment per peer orchestrator beside bench/, never touching the project's.
# Versions are pinned so that results from different days compare the same releases.
set -eu
PY="${PY:-python3}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
PREFECT_VERSION="3.9.1"
DAGSTER_VERSION="1.13.29"
PYINSTRUMENT_VERSION="5.1.3"

make_venv() {  # folder, packages...
    dir="$1"; shift
    stamp="$dir/.installed"
    want="$*"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        echo "$dir: up to date ($want)"
        return
    fi
    rm -rf "$dir"
    "$PY" -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
    echo "$want" > "$stamp"
    echo "$dir: installed $want"
}

make_venv "$HERE/.venv-prefect" "prefect==$PREFECT_VERSION"
make_venv "$HERE/.venv-dagster" "dagster==$DAGSTER_VERSION"
make_venv "$HERE/.venv-profile" "pyinstrument==$PYINSTRUMENT_VERSION"
