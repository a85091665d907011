#!/usr/bin/env bash
# The local stack: Apache Kafka (KRaft), MariaDB, a Spark Connect server and PostgreSQL (Dagster's
# instance storage, infra/dagster/dagster-postgres.yaml), bound to 127.0.0.1, state under .local/.
#
#   infra/stack.sh up|down|status [kafka|kafka-cluster|mariadb|spark-connect|spark-cluster|postgres ...]
#
# Kafka: PLAINTEXT 9092, controller 9093, SASL_PLAINTEXT 9094, SASL_SSL 9095 (LOCAL_KAFKA_*_PORT move them).
# kafka-cluster: 3 KRaft brokers on 19092, 19094 and 19096 (replication factor 3, min.insync.replicas 2), for
# the failover tests; `up kafka-cluster-N` starts node N alone again. `make up` keeps the single broker.
# spark-cluster: a Spark standalone master (7077), two workers and a Spark Connect server on 15003 whose
# executors run on them, for the tests of the scale-out path.
# Idempotent: `up` starts what is not running, `down` stops what is. Logs in .local/logs/<service>.log,
# pid files in .local/run/<service>.pid. Jars come from `make jars` (infra/pom.xml), never at run time.
# Services run in sessions of their own (setsid), so stopping the shell or test that started them does not.
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin"  # mariadbd lives in /usr/sbin on Debian

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/.local"
RUN="$LOCAL/run"
LOGS="$LOCAL/logs"
# Kafka's ports can be moved (e.g. to run a second stack from another checkout beside the first).
KAFKA_PORT="${LOCAL_KAFKA_PORT:-9092}"                      # PLAINTEXT
KAFKA_CONTROLLER_PORT="${LOCAL_KAFKA_CONTROLLER_PORT:-9093}"  # KRaft controller
KAFKA_SASL_PORT="${LOCAL_KAFKA_SASL_PORT:-9094}"            # SASL_PLAINTEXT: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
KAFKA_SASL_SSL_PORT="${LOCAL_KAFKA_SASL_SSL_PORT:-9095}"    # SASL_SSL: the same mechanisms over TLS
KAFKA_USER=pinterest
KAFKA_SASL_MECHANISMS=(PLAIN SCRAM-SHA-256 SCRAM-SHA-512)
# Generated on first start like the MariaDB password; the CA that signs the broker's certificate too.
KAFKA_PASSWORD_FILE="$LOCAL/secrets/kafka_password"
KAFKA_KEYSTORE_PASSWORD_FILE="$LOCAL/secrets/kafka_keystore_password"
KAFKA_TLS="$LOCAL/kafka/tls"
MYSQL_PORT=3306
MYSQL_DB=pinterest_data
MYSQL_USER=pinterest
# The local database password is generated on first start and kept out of git (.local/ is ignored).
MYSQL_PASSWORD_FILE="$LOCAL/secrets/mysql_password"
mkdir -p "$RUN" "$LOGS"

die() { echo "error: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$2"; }

pid_alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() { # service port seconds
  local i
  for ((i = 0; i < $3 * 5; i++)); do
    port_open "$2" && return 0
    pid_alive "$1" || { tail -n 30 "$LOGS/$1.log" >&2; die "$1 exited during start-up (log: $LOGS/$1.log)"; }
    sleep 0.2
  done
  tail -n 30 "$LOGS/$1.log" >&2
  die "$1 did not open 127.0.0.1:$2 within $3 s (log: $LOGS/$1.log)"
}

stop_pid() { # service [signal]
  pid_alive "$1" || { rm -f "$RUN/$1.pid"; echo "$1: not running"; return 0; }
  local pid i
  pid="$(cat "$RUN/$1.pid")"
  kill "-${2:-TERM}" "$pid"
  for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$RUN/$1.pid"
  echo "$1: stopped"
}

# A secret generated on first start and kept out of git (.local/ is ignored); prints it.
generated_secret() { # file
  if [ ! -s "$1" ]; then
    mkdir -p "$(dirname "$1")"
    (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$1")
  fi
  cat "$1"
}

# --- Kafka ---------------------------------------------------------------------------------------
# A self-signed CA and a broker certificate for 127.0.0.1/localhost, made once: clients trust ca.pem.
kafka_tls() {
  [ -s "$KAFKA_TLS/broker.p12" ] && return 0
  need openssl "openssl is required to make the local Kafka broker's TLS certificate: apt-get install openssl."
  local keystore_password
  keystore_password="$(generated_secret "$KAFKA_KEYSTORE_PASSWORD_FILE")"
  mkdir -p "$KAFKA_TLS"
  (
    cd "$KAFKA_TLS" && umask 077 \
      && openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=pinterest-data-pipeline local CA" \
        -keyout ca.key -out ca.pem \
      && openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout broker.key -out broker.csr \
      && openssl x509 -req -days 3650 -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.pem \
        -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1') \
      && openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
        -out broker.p12 -passout "pass:$keystore_password" \
      && chmod 644 ca.pem
  ) >>"$LOGS/kafka.log" 2>&1 || die "making the Kafka TLS certificate failed (log: $LOGS/kafka.log)"
}

# Listeners, users and TLS settings, after infra/kafka/server.properties: they depend on ports and secrets.
kafka_listener_properties() { # password keystore_password
  echo "controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT"
  echo "listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT"
  echo "advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT"
  echo "sasl.enabled.mechanisms=$(IFS=,; echo "${KAFKA_SASL_MECHANISMS[*]}")"
  local listener
  for listener in sasl_plaintext sasl_ssl; do
    # PLAIN checks users listed here; SCRAM checks the credentials stored in the cluster metadata.
    echo "listener.name.$listener.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_USER=\"$1\";"
    echo "listener.name.$listener.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    echo "listener.name.$listener.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
  done
  echo "ssl.keystore.type=PKCS12"
  echo "ssl.keystore.location=$KAFKA_TLS/broker.p12"
  echo "ssl.keystore.password=$2"
  echo "ssl.key.password=$2"
}

# SCRAM credentials live in the cluster metadata: set after every start, so a data directory formatted
# before the SASL listeners existed (or a regenerated password) works too. One mechanism per call: Kafka
# 4.1 rejects two in one request ("A user credential cannot be altered twice in the same request").
kafka_scram_users() { # java command...
  local config="$LOCAL/kafka/scram-user.properties" password mechanism ok=1
  password="$(cat "$KAFKA_PASSWORD_FILE")"
  for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
    # From a file, not the command line, so the password shows in no process list.
    (umask 077; echo "$mechanism=password=$password" >"$config")
    "$@" kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter --entity-type users \
      --entity-name "$KAFKA_USER" --add-config-file "$config" >>"$LOGS/kafka.log" 2>&1 || ok=0
  done
  rm -f "$config"
  [ $ok = 1 ] || die "creating the Kafka SCRAM user $KAFKA_USER failed (log: $LOGS/kafka.log)"
}

kafka_up() {
  need java "Java 17 is required to run Kafka: install it (apt-get install openjdk-17-jre-headless)."
  if pid_alive kafka; then echo "kafka: already running on 127.0.0.1:$KAFKA_PORT"; return 0; fi
  ls "$LOCAL/jars/kafka/"kafka_2.13-*.jar >/dev/null 2>&1 || die "Kafka jars missing in $LOCAL/jars/kafka: run 'make jars'."
  local port
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$KAFKA_SASL_PORT" "$KAFKA_SASL_SSL_PORT"; do
    port_open "$port" && die "127.0.0.1:$port is taken by another process; stop it or free the port (ports: LOCAL_KAFKA_*_PORT)."
  done
  kafka_tls
  local conf="$LOCAL/kafka/server.properties" data="$LOCAL/kafka/data" password keystore_password
  password="$(generated_secret "$KAFKA_PASSWORD_FILE")"
  keystore_password="$(generated_secret "$KAFKA_KEYSTORE_PASSWORD_FILE")"
  mkdir -p "$data"
  # The file holds the passwords: readable by this user only.
  (umask 077; { cat "$ROOT/infra/kafka/server.properties"; kafka_listener_properties "$password" "$keystore_password"
    echo "log.dirs=$data"; } >"$conf")
  local cp="$LOCAL/jars/kafka/*"
  local jvm=(java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$ROOT/infra/kafka/log4j2.properties" -cp "$cp")
  if [ ! -f "$data/meta.properties" ]; then
    local cluster_id
    cluster_id="$("${jvm[@]}" kafka.tools.StorageTool random-uuid)"
    "${jvm[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$conf" >>"$LOGS/kafka.log" 2>&1 \
      || die "formatting Kafka storage failed (log: $LOGS/kafka.log)"
  fi
  setsid nohup "${jvm[@]}" kafka.Kafka "$conf" >>"$LOGS/kafka.log" 2>&1 &
  echo $! >"$RUN/kafka.pid"
  wait_for_port kafka "$KAFKA_PORT" 60
  kafka_scram_users "${jvm[@]}"
  echo "kafka: running on 127.0.0.1:$KAFKA_PORT (pid $(cat "$RUN/kafka.pid")); SASL_PLAINTEXT on $KAFKA_SASL_PORT and" \
    "SASL_SSL on $KAFKA_SASL_SSL_PORT (${KAFKA_SASL_MECHANISMS[*]}): user $KAFKA_USER, password in $KAFKA_PASSWORD_FILE," \
    "CA $KAFKA_TLS/ca.pem"
}

# --- A 3-broker Kafka cluster (tests of failover; `make up` keeps the single broker above) ---------
KAFKA_CLUSTER_PORT="${LOCAL_KAFKA_CLUSTER_PORT:-19092}"  # node n: PLAINTEXT $KAFKA_CLUSTER_PORT+2(n-1), CONTROLLER +1
KAFKA_CLUSTER_NODES=(1 2 3)

cluster_port() { echo $((KAFKA_CLUSTER_PORT + 2 * ($1 - 1) + ${2:-0})); } # node [1 for the controller]

kafka_cluster_jvm() {
  echo java -Xms128m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$ROOT/infra/kafka/log4j2.properties" -cp "$LOCAL/jars/kafka/*"
}

kafka_cluster_node_up() { # node cluster_id
  local node=$1 dir="$LOCAL/kafka-cluster/node-$1" svc="kafka-cluster-$1" voters="" n jvm
  if pid_alive "$svc"; then echo "$svc: already running on 127.0.0.1:$(cluster_port "$node")"; return 0; fi
  for n in "${KAFKA_CLUSTER_NODES[@]}"; do voters+="${voters:+,}$n@127.0.0.1:$(cluster_port "$n" 1)"; done
  mkdir -p "$dir/data"
  { cat "$ROOT/infra/kafka/cluster.properties"
    echo "node.id=$node"
    echo "listeners=PLAINTEXT://127.0.0.1:$(cluster_port "$node"),CONTROLLER://127.0.0.1:$(cluster_port "$node" 1)"
    echo "advertised.listeners=PLAINTEXT://127.0.0.1:$(cluster_port "$node")"
    echo "controller.quorum.voters=$voters"
    echo "log.dirs=$dir/data"; } >"$dir/server.properties"
  read -ra jvm <<<"$(kafka_cluster_jvm)"
  if [ ! -f "$dir/data/meta.properties" ]; then
    "${jvm[@]}" kafka.tools.StorageTool format -t "$2" -c "$dir/server.properties" >>"$LOGS/$svc.log" 2>&1 \
      || die "formatting $svc's storage failed (log: $LOGS/$svc.log)"
  fi
  setsid nohup "${jvm[@]}" kafka.Kafka "$dir/server.properties" >>"$LOGS/$svc.log" 2>&1 &
  echo $! >"$RUN/$svc.pid"
}

kafka_cluster_up() { # [node]: every node, or the one named (to restart a killed broker)
  need java "Java 17 is required to run Kafka: install it (apt-get install openjdk-17-jre-headless)."
  ls "$LOCAL/jars/kafka/"kafka_2.13-*.jar >/dev/null 2>&1 || die "Kafka jars missing in $LOCAL/jars/kafka: run 'make jars'."
  local id_file="$LOCAL/kafka-cluster/cluster_id" nodes=("${@:-${KAFKA_CLUSTER_NODES[@]}}") node jvm
  mkdir -p "$LOCAL/kafka-cluster"
  if [ ! -s "$id_file" ]; then read -ra jvm <<<"$(kafka_cluster_jvm)"; "${jvm[@]}" kafka.tools.StorageTool random-uuid >"$id_file"; fi
  for node in "${nodes[@]}"; do
    pid_alive "kafka-cluster-$node" || ! port_open "$(cluster_port "$node")" \
      || die "127.0.0.1:$(cluster_port "$node") is taken by another process (ports: LOCAL_KAFKA_CLUSTER_PORT)."
    kafka_cluster_node_up "$node" "$(cat "$id_file")"
  done
  # A controller quorum needs a majority of the nodes up: wait for every node started here together.
  for node in "${nodes[@]}"; do wait_for_port "kafka-cluster-$node" "$(cluster_port "$node")" 90; done
  # A broker's port opens before the controller has registered it: until every node lists all brokers, a topic
  # created now would get fewer replicas (lib/kafka.py live_brokers counts the unfenced brokers).
  local deadline=$((SECONDS + 90))
  while [ $SECONDS -lt $deadline ]; do
    [ "$(kafka_cluster_brokers_everywhere)" = "${#KAFKA_CLUSTER_NODES[@]}" ] && break
    sleep 0.5
  done
  [ "$(kafka_cluster_brokers_everywhere)" = "${#KAFKA_CLUSTER_NODES[@]}" ] \
    || die "the Kafka brokers did not all register with the controller (logs: $LOGS/kafka-cluster-*.log)"
  local servers=""
  for node in "${KAFKA_CLUSTER_NODES[@]}"; do servers+="${servers:+,}127.0.0.1:$(cluster_port "$node")"; done
  echo "kafka-cluster: running, nodes ${nodes[*]} (pids $(for n in "${nodes[@]}"; do cat "$RUN/kafka-cluster-$n.pid"; done | tr '\n' ' ' | sed 's/ $//')); KAFKA_BOOTSTRAP_SERVERS=$servers"
}

kafka_cluster_brokers_everywhere() { # the fewest unfenced brokers listed, asked once bootstrapped from each node (0 if one does not answer)
  local ports=() n
  for n in "${KAFKA_CLUSTER_NODES[@]}"; do ports+=("$(cluster_port "$n")"); done
  "$ROOT/.venv/bin/python" - "${ports[@]}" 2>/dev/null <<'PY' || echo 0
import sys
from kafka import KafkaAdminClient
from pinterest_dagster.lib.kafka import live_brokers
counts = []
for port in sys.argv[1:]:
    # Bootstrapped from this node, 3 s to answer (kafka-python sends the request to whichever broker it picks).
    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=3000, bootstrap_timeout_ms=3000)
    try:
        counts.append(live_brokers(admin))
    finally:
        admin.close()
print(min(counts))
PY
}

kafka_cluster_down() {
  # All at once: each broker's controlled shutdown needs a quorum of the controllers (2 of 3), which stopping
  # them one after the other takes away from the last one (after a test killed a node, from the second): it
  # then waited out stop_pid's 30 s.
  local node pid pids=() status=0
  for node in "${KAFKA_CLUSTER_NODES[@]}"; do stop_pid "kafka-cluster-$node" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  return $status
}

# --- MariaDB -------------------------------------------------------------------------------------
mariadb_up() {
  if pid_alive mariadb; then echo "mariadb: already running on 127.0.0.1:$MYSQL_PORT"; return 0; fi
  if ! command -v mariadbd >/dev/null 2>&1; then
    echo "mariadb: not installed; install it with 'apt-get install mariadb-server' (MySQL tests are skipped without it)" >&2
    return 0
  fi
  port_open "$MYSQL_PORT" && die "127.0.0.1:$MYSQL_PORT is taken by another process; stop it or free the port."
  local data="$LOCAL/mariadb/data" sock="$RUN/mariadb.sock"
  if [ ! -d "$data/mysql" ]; then
    mkdir -p "$data"
    mariadb-install-db --user="$(id -un)" --datadir="$data" --auth-root-authentication-method=socket \
      --skip-test-db >>"$LOGS/mariadb.log" 2>&1 || die "mariadb-install-db failed (log: $LOGS/mariadb.log)"
  fi
  setsid nohup mariadbd --no-defaults --user="$(id -un)" --datadir="$data" --socket="$sock" \
    --pid-file="$RUN/mariadbd.pid" --bind-address=127.0.0.1 --port="$MYSQL_PORT" \
    --skip-name-resolve --innodb-buffer-pool-size=256M --innodb-flush-log-at-trx-commit=2 \
    --max-allowed-packet=64M --log-error="$LOGS/mariadb.log" >>"$LOGS/mariadb.log" 2>&1 &
  echo $! >"$RUN/mariadb.pid"
  wait_for_port mariadb "$MYSQL_PORT" 60
  local password
  password="$(generated_secret "$MYSQL_PASSWORD_FILE")"
  mariadb --socket="$sock" -uroot <<SQL || die "creating the $MYSQL_DB database failed"
CREATE DATABASE IF NOT EXISTS $MYSQL_DB CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'127.0.0.1' IDENTIFIED BY '$password';
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'localhost' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'localhost';
SQL
  echo "mariadb: running on 127.0.0.1:$MYSQL_PORT (pid $(cat "$RUN/mariadb.pid")), user $MYSQL_USER, password in $MYSQL_PASSWORD_FILE"
}

# --- Spark Connect ---------------------------------------------------------------------------------
# A long-lived Spark driver with the project's jars: runs connect to it in ~0.4 s (SPARK_REMOTE)
# instead of starting a JVM each, and its JIT-warmed code keeps Delta commits fast.
SPARK_CONNECT_PORT=15002

spark_home() {
  "$ROOT/.venv/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null \
    || die "PySpark is not installed in .venv: run 'make install'."
}

# The Delta and Kafka jars (and hadoop-aws for an S3 lake), comma-separated, for spark-submit.
spark_jars() {
  local jars
  jars="$(ls "$LOCAL/jars/spark/"*.jar 2>/dev/null | paste -sd, -)"
  [ -n "$jars" ] || die "Spark jars missing in $LOCAL/jars/spark: run 'make jars'."
  if [[ "${PINTEREST_LAKE_ROOT:-}" == s3a://* ]]; then
    jars="$jars,$(ls "$LOCAL/jars/s3/"*.jar 2>/dev/null | paste -sd, -)"
  fi
  echo "$jars"
}

connect_server_up() { # service port master tuning memory
  need java "Java 17 is required to run Spark: install it (apt-get install openjdk-17-jre-headless)."
  if pid_alive "$1"; then echo "$1: already running on 127.0.0.1:$2"; return 0; fi
  local home jars
  home="$(spark_home)"
  jars="$(spark_jars)"
  # Delta, UTC, the loopback binding, the tuning (small-machine or none) and PINTEREST_SPARK_CONF's overrides,
  # as pinterest_dagster/lib/spark.py gives an in-process session.
  # SPARK_CONNECT_EXTRA_CONF adds spark-submit arguments, e.g. "--conf spark.eventLog.enabled=true
  # --conf spark.eventLog.dir=/tmp/spark-events" to see where a micro-batch's Spark time goes;
  # SPARK_CONNECT_JAVA_OPTIONS adds JVM options (the log configuration is infra/spark/log4j2.properties).
  local conf; mapfile -t conf < <(cd "$ROOT" && SPARK_MASTER="$3" PINTEREST_SPARK_TUNING="$4" .venv/bin/python -m pinterest_dagster.lib.spark)
  [ ${#conf[@]} -gt 0 ] || die "could not compute the Spark Connect server's settings (see the error above)"
  port_open "$2" && die "127.0.0.1:$2 is taken by another process; stop it or free the port."
  # The driver on 127.0.0.1 when its executors are on this machine (lib/spark.py then binds it there); a cluster's
  # executors elsewhere must reach it, so SPARK_LOCAL_IP would send them to their own loopback.
  local local_ip=()
  [[ " ${conf[*]} " == *" spark.driver.bindAddress=127.0.0.1 "* ]] && local_ip=(SPARK_LOCAL_IP=127.0.0.1)
  # The heap: PINTEREST_SPARK_CONF's spark.driver.memory when it has one (then among the settings), else $5.
  local memory=(--driver-memory "$5")
  [[ " ${conf[*]} " == *" spark.driver.memory="* ]] && memory=()
  # SPARK_REMOTE is where clients go; spark-submit refuses to start a server with it set ("Remote cannot be
  # specified with master and/or deploy mode").
  setsid nohup env -u SPARK_REMOTE "${local_ip[@]}" "$home/bin/spark-submit" \
    --class org.apache.spark.sql.connect.service.SparkConnectServer --name "pinterest-$1" \
    --master "$3" "${memory[@]}" --jars "$jars" \
    --driver-java-options "-Dlog4j2.configurationFile=$ROOT/infra/spark/log4j2.properties ${SPARK_CONNECT_JAVA_OPTIONS:-}" \
    --conf spark.connect.grpc.binding.address=127.0.0.1 --conf spark.connect.grpc.binding.port="$2" \
    "${conf[@]}" ${SPARK_CONNECT_EXTRA_CONF:-} \
    >>"$LOGS/$1.log" 2>&1 &
  echo $! >"$RUN/$1.pid"
  wait_for_port "$1" "$2" 120
  echo "$1: running on 127.0.0.1:$2 (pid $(cat "$RUN/$1.pid")); use SPARK_REMOTE=sc://127.0.0.1:$2"
}

spark_connect_up() {
  if pid_alive spark-connect; then echo "spark-connect: already running on 127.0.0.1:$SPARK_CONNECT_PORT"; return 0; fi
  # The tuning: PINTEREST_SPARK_TUNING, else small-machine on a local master and none on a cluster's.
  connect_server_up spark-connect "$SPARK_CONNECT_PORT" "${SPARK_MASTER:-local[*]}" "${PINTEREST_SPARK_TUNING:-}" \
    "${SPARK_CONNECT_MEMORY:-6g}"
  # A cold server's first micro-batches took twice as long as later ones: a few real ones on scratch topics
  # and a scratch lake warm it (pinterest_dagster/warm_up.py; PINTEREST_WARM_UP=0 skips it). Kafka starts first.
  if [ "${PINTEREST_WARM_UP:-1}" = 0 ]; then echo "spark-connect: warm-up skipped (PINTEREST_WARM_UP=0)"; return 0; fi
  (cd "$ROOT" && SPARK_REMOTE="sc://127.0.0.1:$SPARK_CONNECT_PORT" .venv/bin/python -m pinterest_dagster.warm_up) \
    || echo "spark-connect: the warm-up failed (above); the server runs, its first micro-batches will be slower"
}

# --- A Spark standalone cluster (tests of the scale-out path; `make up` keeps the local Connect server) -----
# A master, two workers of one core each and a Spark Connect server whose master is that cluster, with the
# settings a cluster gets (PINTEREST_SPARK_TUNING=none): its executors run in the workers' processes.
SPARK_MASTER_PORT=7077          # web UI and JSON status on 8080
SPARK_WORKERS=(1 2)             # worker n: web UI and JSON status on 8080+n
SPARK_CLUSTER_CONNECT_PORT=15003

spark_daemon_up() { # service port class args...
  local svc=$1 port=$2 class=$3; shift 3
  if pid_alive "$svc"; then echo "$svc: already running on 127.0.0.1:$port"; return 0; fi
  port_open "$port" && die "127.0.0.1:$port is taken by another process; stop it or free the port."
  SPARK_LOCAL_IP=127.0.0.1 SPARK_DAEMON_MEMORY=256m SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false" \
    setsid nohup env -u SPARK_REMOTE "$(spark_home)/bin/spark-class" "$class" "$@" >>"$LOGS/$svc.log" 2>&1 &
  echo $! >"$RUN/$svc.pid"
  wait_for_port "$svc" "$port" 60
}

spark_cluster_up() {
  need java "Java 17 is required to run Spark: install it (apt-get install openjdk-17-jre-headless)."
  spark_daemon_up spark-master "$SPARK_MASTER_PORT" org.apache.spark.deploy.master.Master \
    --host 127.0.0.1 --port "$SPARK_MASTER_PORT" --webui-port 8080
  local n i
  for n in "${SPARK_WORKERS[@]}"; do
    mkdir -p "$LOCAL/spark-cluster/worker-$n"
    spark_daemon_up "spark-worker-$n" $((8080 + n)) org.apache.spark.deploy.worker.Worker --host 127.0.0.1 \
      --webui-port $((8080 + n)) --cores 1 --memory 1536m --work-dir "$LOCAL/spark-cluster/worker-$n" \
      "spark://127.0.0.1:$SPARK_MASTER_PORT"
  done
  # The Connect server's executors are placed on the workers registered when it starts: wait for all of them.
  for ((i = 0; i < 300; i++)); do
    [ "$(spark_alive_workers)" = "${#SPARK_WORKERS[@]}" ] && break
    sleep 0.2
  done
  [ "$(spark_alive_workers)" = "${#SPARK_WORKERS[@]}" ] || die "the Spark workers did not register with the master (logs: $LOGS/spark-worker-*.log)"
  connect_server_up spark-cluster-connect "$SPARK_CLUSTER_CONNECT_PORT" "spark://127.0.0.1:$SPARK_MASTER_PORT" none 2g
  echo "spark-cluster: master spark://127.0.0.1:$SPARK_MASTER_PORT (status http://127.0.0.1:8080/json/), ${#SPARK_WORKERS[@]} workers; use SPARK_REMOTE=sc://127.0.0.1:$SPARK_CLUSTER_CONNECT_PORT"
}

spark_alive_workers() {
  "$ROOT/.venv/bin/python" - 2>/dev/null <<'PY' || echo 0
import json, urllib.request
status = json.load(urllib.request.urlopen("http://127.0.0.1:8080/json/", timeout=2))
print(status["aliveworkers"])
PY
}

spark_cluster_down() {
  local n
  stop_pid spark-cluster-connect
  for n in "${SPARK_WORKERS[@]}"; do stop_pid "spark-worker-$n"; done
  stop_pid spark-master
}

spark_cluster_status() {
  local n
  status_of spark-master "$SPARK_MASTER_PORT"
  for n in "${SPARK_WORKERS[@]}"; do status_of "spark-worker-$n" $((8080 + n)); done
  status_of spark-cluster-connect "$SPARK_CLUSTER_CONNECT_PORT"
}

# --- PostgreSQL ----------------------------------------------------------------------------------
# Dagster's runs, events and schedules when DAGSTER_HOME holds infra/dagster/dagster-postgres.yaml.
# DAGSTER_PG_PORT moves the server and the instance's client together.
PG_PORT="${DAGSTER_PG_PORT:-5432}"
PG_DB=dagster
PG_USER=dagster
PG_PASSWORD_FILE="$LOCAL/secrets/postgres_password"
PG_HOME="$LOCAL/postgres"

pg_bin() { # the newest Debian server binaries (not on PATH), or the ones PATH has
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -n "$dir" ]; then echo "$dir"; elif command -v postgres >/dev/null 2>&1; then dirname "$(command -v postgres)"; fi
}

# initdb and postgres refuse to run as root: as root they run as Debian's `postgres` user, which owns
# the data directory; any other user runs them as itself.
AS_PG_USER=(); [ "$(id -u)" != 0 ] || AS_PG_USER=(setpriv --reuid=postgres --regid=postgres --init-groups)
pg_os_user() { if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi; }

pg_password() {
  if [ ! -s "$PG_PASSWORD_FILE" ]; then
    mkdir -p "$(dirname "$PG_PASSWORD_FILE")"
    (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$PG_PASSWORD_FILE")
  fi
  cat "$PG_PASSWORD_FILE"
}

postgres_up() {
  if pid_alive postgres; then echo "postgres: already running on 127.0.0.1:$PG_PORT"; return 0; fi
  local bin; bin="$(pg_bin)"
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "postgres: not installed; install it with 'apt-get install postgresql' (Postgres tests are skipped without it)" >&2
    return 0
  fi
  [ "$(id -u)" != 0 ] || id postgres >/dev/null 2>&1 || die "the 'postgres' OS user is missing; reinstall the postgresql package"
  port_open "$PG_PORT" && die "127.0.0.1:$PG_PORT is taken by another process; stop it or set DAGSTER_PG_PORT."
  local data="$PG_HOME/data" sockets="$PG_HOME/sockets"
  mkdir -p "$sockets"
  [ "$(id -u)" != 0 ] || chown postgres:postgres "$PG_HOME" "$sockets"
  chmod 700 "$PG_HOME" "$sockets"
  if [ ! -f "$data/PG_VERSION" ]; then
    # Socket connections are trusted: only the server's OS user can reach the 0700 socket directory.
    "${AS_PG_USER[@]}" "$bin/initdb" -D "$data" -E UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 \
      >>"$LOGS/postgres.log" 2>&1 || die "initdb failed (log: $LOGS/postgres.log)"
  fi
  # Local data that tests recreate: a commit need not wait for the disk (as MariaDB's flush setting above).
  setsid nohup "${AS_PG_USER[@]}" "$bin/postgres" -D "$data" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories="$sockets" -c shared_buffers=128MB -c synchronous_commit=off \
    >>"$LOGS/postgres.log" 2>&1 &
  echo $! >"$RUN/postgres.pid"
  wait_for_port postgres "$PG_PORT" 60
  # The port opens before recovery ends; until then connections are refused as "starting up".
  local i
  for ((i = 0; i < 150; i++)); do "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break; sleep 0.2; done
  pg_create_database "$bin" "$sockets"
  echo "postgres: running on 127.0.0.1:$PG_PORT (pid $(cat "$RUN/postgres.pid")), user $PG_USER, database $PG_DB, password in $PG_PASSWORD_FILE"
}

pg_create_database() { # bin sockets
  local password; password="$(pg_password)"
  # The SQL goes through stdin, so the password never shows in a process list. CREATEDB: the tests
  # create a database per run.
  "${AS_PG_USER[@]}" "$1/psql" -X -q -v ON_ERROR_STOP=1 -h "$2" -p "$PG_PORT" -U "$(pg_os_user)" -d postgres <<SQL \
    >>"$LOGS/postgres.log" 2>&1 || die "creating the $PG_DB database failed (log: $LOGS/postgres.log)"
SELECT 'CREATE ROLE $PG_USER LOGIN CREATEDB' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER')\gexec
ALTER ROLE $PG_USER PASSWORD '$password';
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB')\gexec
SQL
}

# --- dispatch ------------------------------------------------------------------------------------
status_of() { # service port
  if pid_alive "$1"; then
    if port_open "$2"; then echo "$1: running on 127.0.0.1:$2 (pid $(cat "$RUN/$1.pid"))"; else echo "$1: starting (pid $(cat "$RUN/$1.pid"))"; fi
  else
    echo "$1: stopped"
  fi
}

cmd="${1:-status}"; shift || true
# With no service named: Kafka and MariaDB. `make up` names spark-connect too (runs reach it through SPARK_REMOTE).
services=("$@"); [ ${#services[@]} -gt 0 ] || services=(kafka mariadb)
for svc in "${services[@]}"; do
  case "$cmd:$svc" in
    up:kafka) kafka_up ;;
    up:kafka-cluster) kafka_cluster_up ;;
    up:kafka-cluster-[0-9]) kafka_cluster_up "${svc##*-}" ;;
    down:kafka-cluster) kafka_cluster_down ;;
    status:kafka-cluster) for n in "${KAFKA_CLUSTER_NODES[@]}"; do status_of "kafka-cluster-$n" "$(cluster_port "$n")"; done ;;
    up:mariadb) mariadb_up ;;
    up:spark-connect) spark_connect_up ;;
    up:spark-cluster) spark_cluster_up ;;
    down:spark-cluster) spark_cluster_down ;;
    status:spark-cluster) spark_cluster_status ;;
    up:postgres) postgres_up ;;
    down:kafka | down:mariadb | down:spark-connect) stop_pid "$svc" ;;
    # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to disconnect.
    down:postgres) stop_pid postgres INT ;;
    status:kafka) status_of kafka "$KAFKA_PORT" ;;
    status:mariadb) status_of mariadb "$MYSQL_PORT" ;;
    status:spark-connect) status_of spark-connect "$SPARK_CONNECT_PORT" ;;
    status:postgres) status_of postgres "$PG_PORT" ;;
    *) die "usage: infra/stack.sh up|down|status [kafka|kafka-cluster|kafka-cluster-N|mariadb|spark-connect|spark-cluster|postgres ...]" ;;
  esac
done
