#!/bin/bash
# The README's commands on a fresh Debian 12 (debootstrap --variant=minbase bookworm plus git,
# make, python3), as root, one after the other in one "boot":
#     .ci/fresh-debian.sh NAME TARGET...      e.g. .ci/fresh-debian.sh b demo test demo test
# Logs and timings land in /var/tmp/tinsnip-fresh/NAME/ (summary.txt); the root is
# /var/tmp/tinsnip-fresh/root-NAME. The repository cloned into it is this checkout.
# The fresh root runs in a mount namespace of its own whose root it is (unshare -m, then
# pivot_root, as a container runtime does; a plain chroot is not enough: the kernel refuses
# user namespaces, which rootless Docker needs, to a chrooted process), with /proc, /sys,
# /dev and a private /run that last for the whole sequence, like one boot of a machine.
set -u
name=$1; shift
repo=$(cd "$(dirname "$0")/.." && pwd)
base=/var/tmp/tinsnip-fresh
root=$base/root-$name
out=$base/$name
pristine=$base/debian-bookworm-minbase.tar.zst
mkdir -p "$base"
if [ ! -f "$pristine" ]; then
  mirror=$(cd "$repo" && python3 -c 'from tinsnip_lab import mirror; print(mirror.resolve("bookworm"))')
  debootstrap --variant=minbase --include=git,make,python3 bookworm "$base/build" "$mirror"
  tar --zstd -C "$base/build" -cf "$pristine.part" . && mv "$pristine.part" "$pristine"
  rm -rf "$base/build"
fi
rm -rf "$root" "$out"; mkdir -p "$root" "$out"
tar --zstd -C "$root" -xf "$pristine"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# A machine that reaches the internet through a proxy with its own CA (this one does): the
# fresh root trusts the same local CAs (ca-certificates picks them up when lab-deps installs it).
mkdir -p "$root/usr/local/share/ca-certificates" "$root/mnt/repo" "$root/.oldroot"
cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null
cat > "$root/root/sequence.sh" <<'INNER'
#!/bin/bash
# Runs inside the fresh root: clone the repository, then each make target, timed.
cd /root
{ python3 --version; dpkg-query -W python3-venv 2>&1; git clone -q /mnt/repo tinsnip &&
  git -C tinsnip log --oneline -1; } > /out/setup.log 2>&1
i=0
for target in "$@"; do
  i=$((i+1))
  start=$(date +%s%N)
  (cd /root/tinsnip && make "$target") > "/out/$i-$target.log" 2>&1
  rc=$?
  end=$(date +%s%N)
  last=$(grep -E ' passed| failed|answers:|Error' "/out/$i-$target.log" | tail -1)
  echo "$i make $target rc=$rc seconds=$(( (end - start) / 1000000000 )) | $last" >> /out/summary.txt
done
(cd /root/tinsnip && .venv/bin/python -m invoke lab.down) >> /out/teardown.log 2>&1
echo done >> /out/summary.txt
INNER
chmod +x "$root/root/sequence.sh"
unshare -m --propagation private /bin/bash -c '
  set -e
  root=$1 out=$2 repo=$3; shift 3
  mount --bind "$root" "$root"
  mount -t proc proc "$root/proc"
  mount --rbind /sys "$root/sys"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs -o mode=0755 run "$root/run"
  mount --bind "$repo" "$root/mnt/repo"; mount -o remount,bind,ro "$root/mnt/repo"
  mkdir -p "$root/out"; mount --bind "$out" "$root/out"
  cd "$root"
  pivot_root . .oldroot
  umount -l /.oldroot
  exec /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 TINSNIP_LAB_SLOT=3 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /root/sequence.sh "$@"
' fresh-debian "$root" "$out" "$repo" "$@"
echo "$name finished: $(cat "$out/summary.txt" | tr '\n' ';')"
