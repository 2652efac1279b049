#!/usr/bin/env bash
# Resolve the Elasticsearch test node's artifacts from Maven Central into the local repository (~/.m2,
# kept between runs) and compile its launcher: tools/es-node/target/{classes,classpath.txt}.
# Called by `make test`; the test suite calls it too when the launcher is missing or stale.
set -euo pipefail
cd "$(dirname "$0")/es-node"
command -v mvn >/dev/null || { echo "es_node_resolve: Maven (mvn) is required: apt-get install maven" >&2; exit 1; }
command -v java >/dev/null || [ -x "${JAVA_HOME:-/nonexistent}/bin/java" ] \
  || { echo "es_node_resolve: a Java 17+ JDK is required: apt-get install openjdk-17-jdk" >&2; exit 1; }
mvn -q -B compile
# Maven leaves up-to-date outputs untouched: the stamp says when the launcher was last checked current.
touch target/.resolved
