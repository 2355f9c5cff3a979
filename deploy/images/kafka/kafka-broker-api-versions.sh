#!/bin/bash
# Stand-in for apache/kafka's script of this name, so compose's healthcheck works with either
# image: succeeds once the --bootstrap-server address accepts connections (the tools jar
# with the real command is not among the broker's jars).
set -eu
while [ $# -gt 0 ]; do
    if [ "$1" = --bootstrap-server ]; then address=$2; shift; fi
    shift
done
exec 3<>"/dev/tcp/${address%:*}/${address##*:}"
