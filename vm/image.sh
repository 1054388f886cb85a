#!/bin/sh
# The VM test's base image (issue "A real systemd machine, booted"): Debian 12 from packages
# only, made with mmdebstrap, cached outside the clone under $VM_CACHE/<key>, where the key is a
# hash of this script (its package list included) and of the control unit it installs: a second
# run reuses it, a changed list makes a new one. Prints the image's directory (disk.img, vmlinuz, initrd.img). Never modified after
# it is made: each boot writes to a qcow2 overlay of its own (vm/vm.py).
#
#     vm/image.sh [CACHE_DIR]        (default /var/cache/keyringrs-vm)
set -eu
# The machine: systemd as PID 1 with logind and the user manager, the user's session bus.
PACKAGES="systemd-sysv,linux-image-amd64,dbus,dbus-user-session,libpam-systemd,udev,keyutils,login,passwd,initramfs-tools,procps"
# The logins under test: lightdm (with Xvfb as its X server, and liblightdm's GObject API for the
# scripted greeter; lightdm-gtk-greeter only because lightdm depends on a greeter), greetd, OpenSSH.
PACKAGES="$PACKAGES,lightdm,lightdm-gtk-greeter,xvfb,xauth,python3-gi,gir1.2-lightdm-1,greetd,openssh-server"
# The clients that read the store in those logins, and the .deb's own dependencies (the package
# goes in at test time, with apt and without a network: everything it needs is here already).
PACKAGES="$PACKAGES,libsecret-tools,python3-keyring,python3,libpam-runtime"
# The unlock prompt of a login without a password (scenario 7): pinentry's GTK dialog on the X
# display, typed into with xdotool as a person would.
PACKAGES="$PACKAGES,pinentry-gtk2,xdotool"
# The Secret portal (scenario 2): xdg-desktop-portal, started by the user's bus, and a
# Flatpak-style sandbox for libsecret (bubblewrap, xdg-dbus-proxy).
PACKAGES="$PACKAGES,xdg-desktop-portal,bubblewrap,xdg-dbus-proxy"
# The TPM2 keyslot: the libtss2 libraries the .deb links (ESAPI, the TCTI loader, marshalling,
# response codes) and the device TCTI it loads for /dev/tpmrm0, tpm-udev for the tss group and
# the udev rule that makes /dev/tpmrm0 tss:tss 0660; tpm2-tools for the test's checks (and
# debugging) of the swtpm-backed TPM that vm/vm.py gives every VM.
PACKAGES="$PACKAGES,tpm2-tools,libtss2-esys-3.0.2-0,libtss2-tctildr0,libtss2-mu0,libtss2-rc0,libtss2-tcti-device0,tpm-udev"
cache=${1:-/var/cache/keyringrs-vm}
here=$(cd "$(dirname "$0")" && pwd)
key=$(cat "$0" "$here/keyringrs-vm-control.service" | sha256sum | cut -c1-16)
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
    --customize-hook='cp "'"$here"'/keyringrs-vm-control.service" "$1/etc/systemd/system/"' \
    --customize-hook='chroot "$1" systemctl enable keyringrs-vm-control.service' \
    --customize-hook='chroot "$1" systemctl mask serial-getty@hvc0.service' \
    --customize-hook='chroot "$1" systemctl disable lightdm.service greetd.service ssh.service' \
    --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer' \
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
