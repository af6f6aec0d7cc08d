#!/usr/bin/env bash
# Installs the .deb on a clean Debian root with apt-get, as a user would, and runs it from there.
#
#   tests/package/install_test.sh build-package/tunnel-agent_*.deb [build/tests/tunnel-test-server]
#
# With the test server, 1 MiB also goes through the installed agent to an echo target and back.
#
# The clean root is a minimal bookworm made by debootstrap from the machine's Debian mirror; apt in
# that root then fetches the package's dependencies (the only network use, the same as scripts/setup).
# The install itself and every check run in a new network namespace with no network at all. Needs
# root (chroot, unshare).
set -euo pipefail
deb=$(realpath "$1")
[ -f "$deb" ] || { echo "install test: no such package: $1" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "install test: needs root for debootstrap and chroot" >&2; exit 2; }

work=$(mktemp -d /tmp/tunnel-agent-deb-XXXXXX)
root="$work/root"
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The mirror apt on this machine uses (deb822 sources or a classic sources.list).
mirror=$(sed -n 's|^URIs: *\(http[^ ]*debian\)/*$|\1|p; s|^deb \[*[^]]*\]* *\(http[^ ]*debian\)/* bookworm .*|\1|p; s|^deb \(http[^ ]*debian\)/* bookworm .*|\1|p' \
           /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n 1 || true)
if [ -z "$mirror" ]; then
  # Never a hard-coded mirror: this machine may reach only its own.
  echo "install test: no Debian bookworm mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list;" \
       "add the mirror this machine uses there (apt needs it too), then run again" >&2
  exit 1
fi

fail() {
  echo "install test: $1" >&2
  [ -n "${2:-}" ] && [ -f "$2" ] && tail -n 30 "$2" >&2
  exit 1
}

# The package names a maintainer who can be written to, and carries its licence where Debian looks.
maintainer=$(dpkg-deb -f "$deb" Maintainer)
[[ $maintainer =~ \<[^@\<\>]+@[^@\<\>]+\>$ && $maintainer != *@localhost* ]] ||
  fail "the package's Maintainer field names no address: '$maintainer' (see TUNNEL_PACKAGE_CONTACT in CMakeLists.txt)"
contents=$(dpkg-deb -c "$deb")
for f in ./usr/share/doc/tunnel-agent/copyright ./usr/share/bash-completion/completions/tunnel-agent \
         ./usr/share/zsh/vendor-completions/_tunnel-agent; do
  grep " $f\$" <<<"$contents" >/dev/null || fail "the package lacks $f"
done

echo "install test: a clean root (debootstrap --variant=minbase bookworm from $mirror)"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  fail "debootstrap could not build the clean root (the end of its log is below)" "$work/debootstrap.log"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/"
name=$(basename "$deb")
mount -t proc proc "$root/proc"

echo "install test: apt in the root fetches the dependencies"
{ chroot "$root" apt-get update && chroot "$root" apt-get install -y --download-only "/tmp/$name"; } \
  >"$work/fetch.log" 2>&1 || fail "apt-get could not fetch the package's dependencies" "$work/fetch.log"
chroot "$root" dpkg-query -W tunnel-agent >/dev/null 2>&1 && fail "the root was not clean: tunnel-agent is already there"

echo "install test: apt-get install ./$name, offline"
# (No --no-download: apt 2.6 refuses a local .deb with it. The namespace has no network anyway.)
unshare --net chroot "$root" sh -c "cd /tmp && DEBIAN_FRONTEND=noninteractive apt-get install -y ./$name" \
  >"$work/install.log" 2>&1 || fail "apt-get install ./$name failed in the clean root" "$work/install.log"

status=$(chroot "$root" dpkg-query -W -f='${Status} ${Version}' tunnel-agent)
[ "$status" = "install ok installed $(dpkg-deb -f "$deb" Version)" ] || fail "dpkg says: $status"
version=$(unshare --net chroot "$root" tunnel-agent --version) || fail "tunnel-agent --version failed in the root"
echo "install test: tunnel-agent --version in the root: $version"
[[ "$version" == "tunnel-agent $(dpkg-deb -f "$deb" Version) "* ]] || fail "unexpected --version output: $version"
[ -f "$root/usr/share/man/man1/tunnel-agent.1.gz" ] || fail "the man page is not installed"
# It starts, listens and stops on Ctrl-C in the root (on the namespace's own loopback). Its output
# comes through a FIFO, read line by line with a deadline until the "listening on" line.
mkfifo "$work/out"
unshare --net bash -c '
  ip link set lo up || exit 1
  chroot "$2" tunnel-agent --no-config --listen 127.0.0.1:0 http://127.0.0.1:9/x </dev/null >"$1/out" 2>&1 &
  pid=$!
  exec 3<"$1/out"
  listening=
  while IFS= read -r -t 15 line <&3; do
    printf "%s\n" "$line" >>"$1/run.log"
    case $line in *"listening on 127.0.0.1:"*) listening=1; break ;; esac
  done
  kill -INT "$pid"
  cat <&3 >>"$1/run.log"  # the rest, until the agent exits and closes its end
  wait "$pid" && [ -n "$listening" ]' _ "$work" "$root" ||
  fail "the installed agent did not listen and stop cleanly on Ctrl-C (its output is below)" "$work/run.log"
if [ -n "${2:-}" ]; then
  unshare --net python3 "$(dirname "$0")/through_installed.py" "$root" "$(realpath "$2")" ||
    fail "bytes did not go through the installed agent intact (above)"
fi
echo "install test: passed"
