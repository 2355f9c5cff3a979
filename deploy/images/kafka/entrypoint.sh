#!/bin/sh
# apache/kafka-style start: KAFKA_* variables → server.properties, format once, run the broker.
set -euf  # -f: the class path's * is for the JVM, not the shell
config=/tmp/kafka-server.properties
: "${CLUSTER_ID:?set CLUSTER_ID (any 16-byte base64url id, e.g. aGFnZ2xlLWxhcHRvcC0w)}"
env | sort | while IFS='=' read -r key value; do
    case "$key" in
        KAFKA_HEAP_OPTS | KAFKA_OPTS | KAFKA_JVM_PERFORMANCE_OPTS) continue ;;
        KAFKA_*) ;;
        *) continue ;;
    esac
    name=$(printf '%s' "${key#KAFKA_}" | tr 'A-Z' 'a-z' | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g')
    printf '%s=%s\n' "$name" "$value"
done >"$config"
java="java ${KAFKA_HEAP_OPTS} ${KAFKA_OPTS:-} -Djava.awt.headless=true"
java="$java -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties -cp /opt/kafka/libs/*"
$java kafka.tools.StorageTool format -t "$CLUSTER_ID" -c "$config" --ignore-formatted >/dev/null
exec $java kafka.Kafka "$config"
