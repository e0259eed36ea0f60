#!/bin/sh
# Download every wheel a lock pins, for one target interpreter, into DEST/wheelhouse.tar (atomically).
# usage: build-wheelhouse.sh PYTHON LOCK DEST PY_VERSION GLIBC_MINOR ARCH UV_VERSION
set -eu
python=$1 lock=$2 dest=$3 pyver=$4 glibc=$5 arch=$6 uv=$7
abi="cp$(echo "$pyver" | cut -d. -f1,2 | tr -d .)"
platforms=""
m=$glibc
while [ "$m" -ge 17 ]; do platforms="$platforms --platform manylinux_2_${m}_${arch}"; m=$((m - 1)); done
platforms="$platforms --platform manylinux2014_${arch} --platform linux_${arch}"
tmp="$dest.tmp"
rm -rf "$tmp"
mkdir -p "$tmp/wheels"
# shellcheck disable=SC2086
"$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: --no-deps \
  --python-version "$pyver" --implementation cp --abi "$abi" --abi abi3 --abi none $platforms \
  -d "$tmp/wheels" -r "$lock" "uv==$uv"
tar -C "$tmp/wheels" -cf "$tmp/wheelhouse.tar" .
rm -rf "$tmp/wheels" "$dest"
mv "$tmp" "$dest"
