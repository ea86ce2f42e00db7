#!/usr/bin/env bash
# Install and build the HQL check (docs/hql.rst): Hibernate 3.6.10.Final (the
# version OMERO 5.6 runs) and HSQLDB 1.8 from Debian, and HqlCheck.java compiled
# into a cache directory outside the repository.
#
#   scripts/install_hql.sh            install missing packages (needs root), compile
#   scripts/install_hql.sh --no-apt   never install: fail with a message if missing
#
# Idempotent: apt-get runs only when a package is missing, javac only when
# hqlcheck/HqlCheck.java changed. Prints the classpath to run HqlCheck with on
# its last line of stdout (tests/gateway/test_hql.py reads it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$here/hqlcheck/HqlCheck.java"
cache="${OMEROFS_CACHE:-$HOME/.cache/omerofs}/hqlcheck"
packages=(openjdk-17-jdk-headless libhibernate3-java libjavassist-java libhsqldb1.8.0-java)
# The jars Hibernate 3.6 core needs at run time, as Debian names them.
jars=(hibernate-core antlr commons-collections3 dom4j geronimo-jpa_2.0_spec
      geronimo-jta-1.2-spec hibernate-commons-annotations slf4j-api slf4j-nop
      javassist hsqldb1.8.0)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ "${1:-}" == "--no-apt" ]]; then
        echo "install_hql: missing Debian packages: ${missing[*]}; run 'make hql' (as root)" >&2
        exit 1
    fi
    sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
    echo "install_hql: apt-get install ${missing[*]}" >&2
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
        --no-install-recommends "${missing[@]}" >&2
fi

cp=""
for j in "${jars[@]}"; do
    f="/usr/share/java/$j.jar"
    [[ -f "$f" ]] || { echo "install_hql: $f not found (a Debian package changed its jar names?)" >&2; exit 1; }
    cp="$cp$f:"
done

stamp="$(sha256sum "$src" | cut -c1-64)"
if [[ ! -f "$cache/HqlCheck.class" || "$(cat "$cache/source.sha256" 2>/dev/null)" != "$stamp" ]]; then
    echo "install_hql: javac $src -> $cache" >&2
    mkdir -p "$cache"
    tmp="$(mktemp -d "$cache/build.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    javac -nowarn -encoding UTF-8 -cp "$cp" -d "$tmp" "$src" >&2
    mv -f "$tmp"/*.class "$cache"/
    echo "$stamp" >"$cache/source.sha256"
fi
echo "$cp$cache"
