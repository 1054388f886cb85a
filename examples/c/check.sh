#!/bin/sh
# make c-example: build examples/c/example.c exactly as an application would (pkg-config), then
# run it against a real store in a fresh session keyring. Arguments: the build tree's pkgconfig
# dir, the keyringrs binary, a scratch dir.
set -eu
pcdir=$1 keyringrs=$2 scratch=$3
here=$(dirname "$0")
rm -rf "$scratch" && mkdir -p "$scratch"
libdir=$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=libdir keyringrs)
# shellcheck disable=SC2046
cc -Wall -Wextra -Werror -o "$scratch/example" "$here/example.c" \
  $(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs keyringrs) -Wl,-rpath,"$libdir"
store=$scratch/store
out=$(KEYRINGRS_KDF_MEMORY=256 KEYRINGRS_KDF_TIME=1 keyctl session - sh -c '
  printf "pw\n" | "$1" --store "$2" init --password-stdin && "$1" --store "$2" lock &&
  printf "pw\n" | "$3" "$2"' sh "$keyringrs" "$store" "$scratch/example")
echo "$out"
for want in "get: ghp_example-token" "get_alloc: 17 bytes" "list: github.com	alice" \
            "missing: KEYRINGRS_NO_ENTRY" "after lock: KEYRINGRS_LOCKED"; do
  printf '%s\n' "$out" | grep -qF "$want" || { echo "c-example: missing \"$want\"" >&2; exit 1; }
done
echo "c-example: ok"
