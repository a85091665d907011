#!/usr/bin/env bash
# The local stack: Apache Kafka (KRaft), MariaDB and a Spark Connect server, bound to 127.0.0.1, state
# under .local/.
#
#   infra/stack.sh up|down|status [kafka|mariadb|spark-connect ...]
#
# Idempotent: `up` starts what is not running, `down` stops what is. Logs in .local/logs/<service>.log,
# pid files in .local/run/<service>.pid. Jars come from `make jars` (infra/pom.xml), never at run time.
# Services run in sessions of their own (setsid), so stopping the shell or test that started them does not.
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin"  # mariadbd lives in /usr/sbin on Debian

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/.local"
RUN="$LOCAL/run"
LOGS="$LOCAL/logs"
KAFKA_PORT=9092
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

stop_pid() { # service
  pid_alive "$1" || { rm -f "$RUN/$1.pid"; echo "$1: not running"; return 0; }
  local pid i
  pid="$(cat "$RUN/$1.pid")"
  kill "$pid"
  for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$RUN/$1.pid"
  echo "$1: stopped"
}

# --- Kafka ---------------------------------------------------------------------------------------
kafka_up() {
  need java "Java 17 is required to run Kafka: install it (apt-get install openjdk-17-jre-headless)."
  if pid_alive kafka; then echo "kafka: already running on 127.0.0.1:$KAFKA_PORT"; return 0; fi
  ls "$LOCAL/jars/kafka/"kafka_2.13-*.jar >/dev/null 2>&1 || die "Kafka jars missing in $LOCAL/jars/kafka: run 'make jars'."
  port_open "$KAFKA_PORT" && die "127.0.0.1:$KAFKA_PORT is taken by another process; stop it or free the port."
  local conf="$LOCAL/kafka/server.properties" data="$LOCAL/kafka/data"
  mkdir -p "$data"
  { cat "$ROOT/infra/kafka/server.properties"; echo "log.dirs=$data"; } >"$conf"
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
  echo "kafka: running on 127.0.0.1:$KAFKA_PORT (pid $(cat "$RUN/kafka.pid"))"
}

# --- MariaDB -------------------------------------------------------------------------------------
mariadb_password() {
  if [ ! -s "$MYSQL_PASSWORD_FILE" ]; then
    mkdir -p "$(dirname "$MYSQL_PASSWORD_FILE")"
    (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$MYSQL_PASSWORD_FILE")
  fi
  cat "$MYSQL_PASSWORD_FILE"
}

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
  password="$(mariadb_password)"
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
spark_connect_up() {
  need java "Java 17 is required to run Spark: install it (apt-get install openjdk-17-jre-headless)."
  if pid_alive spark-connect; then echo "spark-connect: already running on 127.0.0.1:$SPARK_CONNECT_PORT"; return 0; fi
  local spark_home jars
  spark_home="$("$ROOT/.venv/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')" \
    || die "PySpark is not installed in .venv: run 'make install'."
  jars="$(ls "$LOCAL/jars/spark/"*.jar 2>/dev/null | paste -sd, -)"
  [ -n "$jars" ] || die "Spark jars missing in $LOCAL/jars/spark: run 'make jars'."
  # The same Delta and small-machine settings as an in-process session (pinterest_dagster/lib/spark.py).
  # SPARK_CONNECT_EXTRA_CONF adds spark-submit arguments, e.g. "--conf spark.eventLog.enabled=true
  # --conf spark.eventLog.dir=/tmp/spark-events" to see where a micro-batch's Spark time goes.
  local conf; mapfile -t conf < <(cd "$ROOT" && .venv/bin/python -m pinterest_dagster.lib.spark)
  port_open "$SPARK_CONNECT_PORT" && die "127.0.0.1:$SPARK_CONNECT_PORT is taken by another process; stop it or free the port."
  SPARK_LOCAL_IP=127.0.0.1 setsid nohup "$spark_home/bin/spark-submit" \
    --class org.apache.spark.sql.connect.service.SparkConnectServer --name pinterest-spark-connect \
    --master "${SPARK_MASTER:-local[*]}" --driver-memory "${SPARK_CONNECT_MEMORY:-6g}" --jars "$jars" \
    --conf spark.connect.grpc.binding.address=127.0.0.1 --conf spark.connect.grpc.binding.port=$SPARK_CONNECT_PORT \
    "${conf[@]}" ${SPARK_CONNECT_EXTRA_CONF:-} \
    >>"$LOGS/spark-connect.log" 2>&1 &
  echo $! >"$RUN/spark-connect.pid"
  wait_for_port spark-connect "$SPARK_CONNECT_PORT" 120
  echo "spark-connect: running on 127.0.0.1:$SPARK_CONNECT_PORT (pid $(cat "$RUN/spark-connect.pid")); use SPARK_REMOTE=sc://127.0.0.1:$SPARK_CONNECT_PORT"
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
    up:mariadb) mariadb_up ;;
    up:spark-connect) spark_connect_up ;;
    down:kafka | down:mariadb | down:spark-connect) stop_pid "$svc" ;;
    status:kafka) status_of kafka "$KAFKA_PORT" ;;
    status:mariadb) status_of mariadb "$MYSQL_PORT" ;;
    status:spark-connect) status_of spark-connect "$SPARK_CONNECT_PORT" ;;
    *) die "usage: infra/stack.sh up|down|status [kafka|mariadb|spark-connect ...]" ;;
  esac
done
