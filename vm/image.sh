#!/bin/sh
# The VM test's base image (issue "A real systemd machine, booted"): Debian 12 from packages
# only, made with mmdebstrap, cached outside the clone under $VM_CACHE/<key>, where the key is a
# hash of this script (its package list included): a second run reuses it, a changed list makes
# a new one. Prints the image's directory (disk.img, vmlinuz, initrd.img). Never modified after
# it is made: each boot writes to a qcow2 overlay of its own (vm/vm.py).
#
#     vm/image.sh [CACHE_DIR]        (default /var/cache/keyringrs-vm)
set -eu
PACKAGES="systemd-sysv,linux-image-amd64,dbus,dbus-user-session,libpam-systemd,udev,keyutils,login,passwd,initramfs-tools"
cache=${1:-/var/cache/keyringrs-vm}
key=$(sha256sum "$0" | cut -c1-16)
dir=$cache/$key
if [ -f "$dir/disk.img" ] && [ -f "$dir/vmlinuz" ] && [ -f "$dir/initrd.img" ]; then
    echo "$dir"
    exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
start=$(date +%s)
mmdebstrap --quiet --variant=apt --include="$PACKAGES" \
    --customize-hook='echo "root:root" | chroot "$1" chpasswd' \
    --customize-hook='echo keyringrs-vm > "$1/etc/hostname"' \
    --customize-hook='printf "/dev/vda / ext4 defaults 0 1\n" > "$1/etc/fstab"' \
    bookworm "$work/root.tar" >&2
mkdir "$work/root"
tar -C "$work/root" -xf "$work/root.tar"
cp "$work"/root/boot/vmlinuz-* "$work/vmlinuz"
cp "$work"/root/boot/initrd.img-* "$work/initrd.img"
mkfs.ext4 -q -F -L keyringrs-vm -d "$work/root" "$work/disk.img" 4G >&2
rm -rf "$work/root" "$work/root.tar"
echo "vm/image.sh: built $dir in $(( $(date +%s) - start )) s" >&2
# Complete, then in place: a run killed half-way leaves no image that looks finished.
rm -rf "$dir"
mv "$work" "$dir"
trap - EXIT INT TERM
# Images of earlier versions of this script are not used again.
find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name '.build-*' -exec rm -rf {} +
echo "$dir"
