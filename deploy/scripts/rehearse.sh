#!/usr/bin/env bash
# rehearse.sh runs the procedures of the operations guide (deploy/README.md)
# on one machine, against the orderer's embedded Kafka on 127.0.0.1: the
# kit's set-up steps, three nodes started with the flags of compose.yaml
# and orderer@.service, a broadcast, then backing up and restoring a
# ledger, replacing a node that lost its disk, adding a node, and reading
# the metrics the guide's alerts use. Everything it starts is stopped on
# exit. It needs the orderer program, openssl and curl; go test
# ./deploy runs it.
#
#   go build -o /tmp/orderer ./examples/orderer
#   ORDERER=/tmp/orderer bash deploy/scripts/rehearse.sh
#
# Settings, from the environment:
: "${ORDERER:=orderer}"    # the orderer program
: "${WORK:=./rehearsal}"   # its files (emptied first)
: "${PORT:=27000}"         # Kafka on PORT..PORT+2; node I: gRPC PORT+10+I, metrics PORT+20+I
: "${ENVELOPES:=1000}"     # envelopes per broadcast
: "${TIMEOUT:=60}"         # seconds a node may take to be ready or to catch up
set -euo pipefail

kit=$(cd "$(dirname "$0")" && pwd)
rm -rf "$WORK"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
BROKERS=127.0.0.1:$PORT,127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2))
declare -A pid

cleanup() {
	local p
	for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

fail() {
	echo "rehearse: $*" >&2
	for f in "$WORK"/*.log; do echo "== $f" >&2; tail -n 20 "$f" >&2; done
	exit 1
}

grpc() { echo "127.0.0.1:$((PORT + 10 + $1))"; }
metrics() { echo "127.0.0.1:$((PORT + 20 + $1))"; }

# start_node I starts node ordererI with the flags of compose.yaml; its
# peers are the nodes of $NODES but itself.
start_node() {
	local i=$1 n d peers=() j
	n=orderer$i
	d=$WORK/generated/orderers/$n
	for j in $NODES; do [ "$j" = "$i" ] || peers+=("$(grpc "$j")"); done
	"$ORDERER" start --listen "$(grpc "$i")" --brokers "$BROKERS" \
		--genesis "$d/genesis/mychannel.block" --data "$WORK/data/$n" \
		--signer "$d/msp" --signer-mspid OrdererMSP \
		--tls-cert "$d/tls/server.crt" --tls-key "$d/tls/server.key" \
		--kafka-tls-ca "$d/kafka/ca.crt" --kafka-tls-cert "$d/kafka/client.crt" --kafka-tls-key "$d/kafka/client.key" \
		--replication-factor 3 --min-insync-replicas 2 \
		--peers "$(IFS=,; echo "${peers[*]}")" --peer-tls-ca "$d/tls/ca.crt" \
		--metrics-listen "$(metrics "$i")" >>"$WORK/$n.log" 2>&1 &
	pid[$n]=$!
}

# stop_node I stops node ordererI as systemd and docker do: SIGTERM, then wait.
stop_node() {
	kill -TERM "${pid[orderer$1]}"
	wait "${pid[orderer$1]}" || fail "orderer$1 did not stop cleanly"
	unset "pid[orderer$1]"
}

healthz() { curl -s --max-time 2 "http://$(metrics "$1")/healthz" || true; }

height() { healthz "$1" | sed -n 's/.*"height":\([0-9]*\).*/\1/p'; }

# wait_ready I [HEIGHT]: until /healthz of node I answers ready (and its
# height is at least HEIGHT).
wait_ready() {
	local i=$1 want=${2:-0} t
	for ((t = 0; t < TIMEOUT * 10; t++)); do
		if healthz "$i" | grep -q '"status":"ok"' && [ "$(height "$i")" -ge "$want" ]; then
			return 0
		fi
		sleep 0.1
	done
	fail "orderer$i not ready at height $want after ${TIMEOUT}s: $(healthz "$i")"
}

broadcast() {
	local out
	out=$("$ORDERER" broadcast --orderer "$(grpc 0)" --tls-ca "$WORK/generated/orderers/orderer0/tls/ca.crt" \
		--channel mychannel --signer "$WORK/generated/crypto/org1/users/user1/msp" --signer-mspid Org1MSP \
		-n "$ENVELOPES")
	echo "$out"
	grep -Eq "^SUCCESS +$ENVELOPES\$" <<<"$out" || fail "broadcast: not every envelope succeeded"
}

# last_block I H: the line deliver prints for block H of node I.
last_block() {
	"$ORDERER" deliver --orderer "$(grpc "$1")" --tls-ca "$WORK/generated/orderers/orderer$1/tls/ca.crt" \
		--channel mychannel --signer "$WORK/generated/crypto/org1/users/user1/msp" --signer-mspid Org1MSP \
		--start "$2" --stop "$2" | grep '^block '
}

# agree: every node of $NODES has node 0's height and last block.
agree() {
	local h want i
	h=$(height 0)
	want=$(last_block 0 $((h - 1)))
	for i in $NODES; do
		wait_ready "$i" "$h"
		[ "$(last_block "$i" $((h - 1)))" = "$want" ] || fail "orderer$i: block $((h - 1)) differs from orderer0's"
	done
	echo "rehearse: nodes $NODES agree at height $h: $want"
}

# --- Kafka: the embedded brokers with TLS, standing in for the compose file's cluster.
"$ORDERER" kafka --listen "127.0.0.1:$PORT" --brokers 3 --data "$WORK/kafka-data" \
	--tls-ca-out "$WORK/kafka-ca.pem" >"$WORK/kafka.log" 2>&1 &
pid[kafka]=$!
for ((t = 0; t < 100; t++)); do grep -q '^kafka brokers:' "$WORK/kafka.log" && break; sleep 0.1; done
grep -q '^kafka brokers:' "$WORK/kafka.log" || fail "kafka did not start"

# --- Set-up: the kit's one-shot steps.
OUT=$WORK/generated ORDERER=$ORDERER KAFKA_BROKERS=$BROKERS sh "$kit/orderer-crypto.sh"
OUT=$WORK/generated sh "$kit/kafka-pki.sh"
# The embedded brokers have their own CA (and ask for no client certificate).
for d in "$WORK"/generated/orderers/*/kafka; do cp "$WORK/kafka-ca.pem" "$d/ca.crt"; done

# --- Three nodes.
NODES="0 1 2"
for i in $NODES; do start_node "$i"; done
for i in $NODES; do wait_ready "$i"; done
broadcast
agree

# --- Backing up a ledger: stop the node, copy its folder, start it again.
stop_node 2
tar -C "$WORK/data" -czf "$WORK/orderer2-ledger.tar.gz" orderer2
start_node 2
wait_ready 2
broadcast

# --- Restoring a ledger: stop the node, put the backup in place, start it:
# it consumes from its last block on and catches up.
stop_node 2
rm -rf "$WORK/data/orderer2"
tar -C "$WORK/data" -xzf "$WORK/orderer2-ledger.tar.gz"
start_node 2
agree

# --- Replacing a node whose disk is gone: same identity, empty ledger.
stop_node 1
rm -rf "$WORK/data/orderer1"
start_node 1
agree

# --- Adding a node: the spare identity orderer3, with the others as peers.
NODES="0 1 2 3"
start_node 3
broadcast
agree

# --- The metrics the guide's alerts use.
m=$(curl -s "http://$(metrics 0)/metrics")
for name in consensus_kafka_last_offset_persisted kafkaconsensus_blocks_written_total \
	kafkaconsensus_envelopes_written_total kafkaconsensus_order_latency_seconds_count \
	blockcutter_block_fill_duration_seconds_count; do
	grep -q "^$name{" <<<"$m" || fail "metric $name missing"
done
echo "rehearse: done"
