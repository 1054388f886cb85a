#!/bin/sh
# The VM test's setup, run as root inside the VM from the data disk (vm/test.py): installs this
# project the way a user would (the .deb with apt, then pam-auth-update), makes the test user,
# and configures the logins under test (lightdm with Xvfb and the scripted greeter, greetd,
# sshd with password logins). Nothing here is part of the package.
#     setup.sh DATA_DIR USER PASSWORD SECRET
set -eu
data=$1 user=$2 password=$3 secret=$4
lib=/usr/local/lib/keyringrs-vm
export DEBIAN_FRONTEND=noninteractive

# The package, with its dependencies resolved by apt (all in the image: the VM has no network).
apt-get install -y -q --no-install-recommends "$data"/keyringrs_*.deb
pam-auth-update --enable keyringrs
grep -l pam_keyringrs /etc/pam.d/common-auth /etc/pam.d/common-session /etc/pam.d/common-password

install -d "$lib"
install -m 0755 "$data"/guest/agent.sh "$data"/guest/probe.sh "$data"/guest/flatpak-app.sh "$data"/guest/xvfb \
    "$data"/guest/lightdm-greeter.py "$data"/guest/greetd-greeter.py "$lib"/
install -d /etc/keyringrs-vm
printf '%s' "$secret" > /etc/keyringrs-vm/secret
chmod 0644 /etc/keyringrs-vm/secret
# Where agents and greeters meet the host's driver (a tmpfs: made again at every boot).
cat > /etc/tmpfiles.d/keyringrs-vm.conf <<EOT
d /run/keyringrs-vm 1777 root root -
d /run/keyringrs-vm/lightdm 0755 lightdm lightdm -
d /run/keyringrs-vm/greetd 0755 _greetd _greetd -
EOT
systemd-tmpfiles --create /etc/tmpfiles.d/keyringrs-vm.conf

useradd --create-home --shell /bin/bash "$user"
echo "$user:$password" | chpasswd
# The TPM (the VM's swtpm): Debian's tpm-udev makes /dev/tpmrm0 tss:tss 0660 (its udev rule:
# "the tss group members can access tpmrm devices"), so membership of the group tss is the
# documented requirement for a user to use the TPM (the TPM2 keyslot).
usermod -a -G tss "$user"

# lightdm: its own Debian PAM stack (no pam_keyinit), Xvfb as the X server, our greeter and session.
install -d /etc/lightdm/lightdm.conf.d
cat > /etc/lightdm/lightdm.conf.d/50-keyringrs-vm.conf <<EOT
[LightDM]
logind-check-graphical=false
[Seat:*]
xserver-command=$lib/xvfb
greeter-session=keyringrs-vm-greeter
user-session=keyringrs-vm
EOT
cat > /usr/share/xgreeters/keyringrs-vm-greeter.desktop <<EOT
[Desktop Entry]
Name=keyringrs VM test greeter
Exec=$lib/lightdm-greeter.py
Type=Application
EOT
install -d /usr/share/xsessions
cat > /usr/share/xsessions/keyringrs-vm.desktop <<EOT
[Desktop Entry]
Name=keyringrs VM test session
Exec=$lib/agent.sh lightdm
Type=Application
EOT

# greetd: Debian's unit and PAM file, our greeter.
cat > /etc/greetd/config.toml <<EOT
[terminal]
vt = 7
[default_session]
command = "$lib/greetd-greeter.py"
user = "_greetd"
EOT

# sshd: password logins through PAM (Debian's defaults say so already; stated for the reader).
cat > /etc/ssh/sshd_config.d/keyringrs-vm.conf <<EOT
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
EOT
systemctl start ssh.service
# The VM's network: qemu's user mode (restricted), its DHCP giving 10.0.2.15; only the host's
# 127.0.0.1 forward reaches sshd.
cat > /etc/systemd/network/20-keyringrs-vm.network <<EOT
[Match]
Name=en*
[Network]
DHCP=ipv4
EOT
systemctl enable --now systemd-networkd.service
/lib/systemd/systemd-networkd-wait-online --timeout=120
echo "setup: done"
