#!/bin/sh
# Build DEST/wheelhouse.tar (atomically) for one target interpreter: every wheel a lock pins, the lock itself as
# requirements.txt, and the uv binary as bin/uv (taken out of uv's wheel), so a node installs with no index.
# EXTRA_WHEELS (optional): a folder of the team's own wheels, on no index, where pip also looks.
# usage: build-wheelhouse.sh PYTHON LOCK DEST PY_VERSION GLIBC_MINOR ARCH UV_VERSION [EXTRA_WHEELS]
set -eu
python=$1 lock=$2 dest=$3 pyver=$4 glibc=$5 arch=$6 uv=$7 extra=${8:-}
links=""
if [ -n "$extra" ]; then links="--find-links $extra"; fi
abi="cp$(echo "$pyver" | cut -d. -f1,2 | tr -d .)"
platforms=""
m=$glibc
while [ "$m" -ge 17 ]; do platforms="$platforms --platform manylinux_2_${m}_${arch}"; m=$((m - 1)); done
platforms="$platforms --platform manylinux2014_${arch} --platform linux_${arch}"
tmp="$dest.tmp"
rm -rf "$tmp"
mkdir -p "$tmp/wheels" "$tmp/uv" "$tmp/wheels/bin"
# shellcheck disable=SC2086
"$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: --no-deps \
  --python-version "$pyver" --implementation cp --abi "$abi" --abi abi3 --abi none $platforms \
  $links -d "$tmp/wheels" -r "$lock"
# shellcheck disable=SC2086
"$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: --no-deps \
  --python-version "$pyver" --implementation cp --abi "$abi" --abi abi3 --abi none $platforms \
  -d "$tmp/uv" "uv==$uv"
"$python" - "$tmp/uv" "$tmp/wheels/bin/uv" <<'PY'
import pathlib, shutil, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("uv-*.whl"))
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".data/scripts/uv"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
pathlib.Path(sys.argv[2]).chmod(0o755)
PY
cp "$lock" "$tmp/wheels/requirements.txt"
tar -C "$tmp/wheels" -cf "$tmp/wheelhouse.tar" .
rm -rf "$tmp/wheels" "$tmp/uv" "$dest"
mv "$tmp" "$dest"
