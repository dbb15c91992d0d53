#!/usr/bin/env bash
# Builds examples/demo twice with kiln: a cold build, then a warm rebuild
# that comes from the local cache into an empty state dir. Needs runc and
# /bin/busybox (Debian: apt-get install runc busybox-static).
set -euo pipefail
cd "$(dirname "$0")/.."
kiln=${KILN:-./kiln}
work=${DEMO_DIR:-.kiln-demo}
# A build killed mid-step (kill -9) can leave a snapshot mounted: let go of
# it before starting afresh.
if [ -d "$work" ]; then
  abs=$(cd "$work" && pwd)
  awk -v p="$abs/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
fi
rm -rf "$work"
mkdir -p "$work"
ctx="$work/context"
cp -r examples/demo "$ctx"
cp /bin/busybox "$ctx/busybox"

build() {
  KILN_STATE="$work/$1" "$kiln" build --progress plain -t kiln-demo:latest \
    --cache-from "type=local,src=$work/cache" \
    --cache-to "type=local,dest=$work/cache,mode=max" \
    --output "type=oci,dest=$work/demo-$1.tar" \
    "$ctx"
}

echo "== cold build (empty state dir, empty cache)"
t0=$(date +%s.%N); d1=$(build state-1); t1=$(date +%s.%N)
echo "== warm build (a new empty state dir, cache from $work/cache)"
d2=$(build state-2); t2=$(date +%s.%N)
echo
echo "cold: $(awk "BEGIN{printf \"%.2f\", $t1 - $t0}") s  digest $d1"
echo "warm: $(awk "BEGIN{printf \"%.2f\", $t2 - $t1}") s  digest $d2"
echo "cache dir: $(du -sh "$work/cache" | cut -f1)"
if [ "$d1" != "$d2" ]; then echo "digests differ!" >&2; exit 1; fi
echo "same image digest: the warm build reused every step."
