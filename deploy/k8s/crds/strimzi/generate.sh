#!/usr/bin/env bash
# Regenerates the Strimzi CRDs kept here, exactly as the Strimzi release build does (api/pom.xml,
# execution "generate-crd-co-install-v1"): io.strimzi:crd-generator run over io.strimzi:api, both from
# Maven Central. Needs Maven and Java 21+ (the generator's class files are Java 21).
#
#   deploy/k8s/crds/strimzi/generate.sh            # the version in pom.xml
#   STRIMZI_VERSION=1.3.0 deploy/k8s/crds/strimzi/generate.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="${STRIMZI_VERSION:-$(sed -n 's:.*<strimzi.version>\(.*\)</strimzi.version>.*:\1:p' "$here/pom.xml")}"

java_bin="${JAVA_HOME:+$JAVA_HOME/bin/java}"
if [[ -z "$java_bin" ]] || ! "$java_bin" -version 2>&1 | grep -qE 'version "(2[1-9]|[3-9][0-9])'; then
  java_bin="$(ls -d /usr/lib/jvm/*/bin/java 2>/dev/null | while read -r j; do
    "$j" -version 2>&1 | grep -qE 'version "(2[1-9]|[3-9][0-9])' && echo "$j"; done | head -n1)"
fi
[[ -n "$java_bin" ]] || { echo "Java 21 or newer is needed (set JAVA_HOME)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mvn -q -f "$here/pom.xml" -Dstrimzi.version="$version" dependency:build-classpath -Dmdep.outputFile="$work/cp.txt"
"$java_bin" -cp "$(cat "$work/cp.txt")" io.strimzi.crdgenerator.CrdGenerator \
  --label app:strimzi --label strimzi.io/crd-install:true \
  --target-kube 1.16+ --crd-api-version v1 --api-versions v1 --storage-version v1 --yaml \
  io.strimzi.api.kafka.model.kafka.Kafka="$here/040-Crd-kafka.yaml" \
  io.strimzi.api.kafka.model.topic.KafkaTopic="$here/043-Crd-kafkatopic.yaml" \
  io.strimzi.api.kafka.model.nodepool.KafkaNodePool="$here/045-Crd-kafkanodepool.yaml"
echo "Strimzi $version CRDs written to $here"
