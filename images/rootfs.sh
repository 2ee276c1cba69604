#!/bin/sh
# Assembles the images' distroless-style root file systems for one architecture from
# Debian's packages. Runs in a Debian container of the build machine's platform; the
# target architecture's packages are unpacked, never installed, so none of their
# programs runs here.
#   rootfs.sh <amd64|arm64> <dir>
# writes
#   <dir>/base       glibc, libgcc, libstdc++, CA certificates, time zones, users
#   <dir>/iptables   iptables (nft and legacy) and its libraries
#   <dir>/dataplane  `consul-dataplane` on PATH: the task's copy of consul-ecs
#   <dir>/consul     the empty /consul volume
set -eu
arch="$1"
out="$2"

dpkg --add-architecture "$arch"
apt-get update -qq
# The same on every architecture, so installed natively: ca-certificates' postinst
# makes the bundle, tzdata and netbase carry plain files.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates tzdata netbase >/dev/null

debs=/tmp/debs
mkdir -p "$debs"
# apt downloads as its own user, _apt.
chown _apt "$debs"
# unpack <dir> <package>...: the target architecture's packages, unpacked into <dir>.
unpack() {
  dir="$1"
  shift
  mkdir -p "$dir"
  for pkg in "$@"; do
    (cd "$debs" && apt-get download -qq "$pkg:$arch")
    dpkg-deb -x "$(ls "$debs/${pkg}"_*_"$arch".deb)" "$dir"
  done
  rm -rf "$dir/usr/share/doc" "$dir/usr/share/man" "$dir/usr/share/info" "$dir/usr/share/lintian" \
    "$dir/usr/share/locale" "$dir/usr/share/gcc" "$dir/usr/share/gdb"
}

base="$out/base"
unpack "$base" libc6 libgcc-s1 libstdc++6
# glibc's character set converters: only iconv(3) loads them, and nothing here calls it.
rm -rf "$base"/usr/lib/*-linux-gnu/gconv
mkdir -p "$base/etc/ssl/certs" "$base/usr/share" "$base/tmp" "$base/root" "$base/run"
chmod 1777 "$base/tmp"
chmod 0700 "$base/root"
cp /etc/ssl/certs/ca-certificates.crt "$base/etc/ssl/certs/"
cp -a /usr/share/zoneinfo "$base/usr/share/"
rm -rf "$base/usr/share/zoneinfo/right"
cp /etc/protocols /etc/services "$base/etc/"
cat >"$base/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
consul-dataplane:x:5995:5995:Envoy, the proxy transparent proxy exempts:/nonexistent:/sbin/nologin
consul-ecs:x:5996:5996:consul-ecs:/consul:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
cat >"$base/etc/group" <<'EOF'
root:x:0:
consul-dataplane:x:5995:
consul-ecs:x:5996:
nogroup:x:65534:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\nservices: files\nprotocols: files\n' >"$base/etc/nsswitch.conf"

ipt="$out/iptables"
unpack "$ipt" iptables libip4tc2 libip6tc2 libxtables12 libnftnl11 libmnl0 libnetfilter-conntrack3 libnfnetlink0
# update-alternatives' choice, made here: the nf_tables back end, as Debian's default.
for tool in iptables ip6tables; do
  for suffix in '' -save -restore; do
    ln -sf "$tool-nft$suffix" "$ipt/usr/sbin/$tool$suffix"
  done
done

mkdir -p "$out/dataplane/usr/local/bin"
ln -s /consul/consul-ecs "$out/dataplane/usr/local/bin/consul-dataplane"

mkdir -p "$out/consul"
