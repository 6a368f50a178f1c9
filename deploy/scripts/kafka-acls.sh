#!/bin/bash
# kafka-acls.sh gives each orderer principal what an ordering node needs on
# each channel topic, and nothing else: Read, Write, Describe and
# DescribeConfigs (consume, produce, check the topic's settings), Create
# (the nodes create their channels' topics on first use) and, on the
# cluster, IdempotentWrite (the idempotent producer; only Kafka before 3.0
# needs it). Readers that are not orderers get Read and Describe. With
# allow.everyone.if.no.acl.found=false, no other principal but the super
# users can touch a channel topic. Adding an ACL that exists changes
# nothing, so it may run again, for example after adding a channel or a
# node.
#
# It runs where Kafka's tools are (the apache/kafka image), as an
# administrator (a super user). It retries while the brokers start.
#
# Settings, from the environment:
: "${BOOTSTRAP:=kafka1:9092,kafka2:9092,kafka3:9092}"    # brokers
: "${COMMAND_CONFIG:=/etc/kafka/secrets/client.properties}" # the admin's client settings
: "${KAFKA_BIN:=/opt/kafka/bin}"                         # Kafka's tools
: "${CHANNELS:=mychannel}"                               # channel topics (space separated)
: "${PRINCIPALS:=orderer0 orderer1 orderer2}"            # orderer principals, User:NAME (space separated)
: "${READERS:=}"                                         # read-only principals (space separated)
: "${ATTEMPTS:=60}"                                      # tries of each command, 5 s apart
set -euo pipefail

acls() {
	local i
	for ((i = 1; ; i++)); do
		if "$KAFKA_BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$COMMAND_CONFIG" "$@"; then
			return 0
		fi
		if ((i >= ATTEMPTS)); then
			echo "kafka-acls: giving up after $i attempts: kafka-acls.sh $*" >&2
			return 1
		fi
		echo "kafka-acls: the brokers do not answer yet, attempt $i of $ATTEMPTS" >&2
		sleep 5
	done
}

for p in $PRINCIPALS; do
	for ch in $CHANNELS; do
		acls --add --allow-principal "User:$p" --topic "$ch" --operation Read --operation Write \
			--operation Describe --operation DescribeConfigs --operation Create
	done
	acls --add --allow-principal "User:$p" --cluster --operation IdempotentWrite
done
for p in $READERS; do
	for ch in $CHANNELS; do
		acls --add --allow-principal "User:$p" --topic "$ch" --operation Read --operation Describe
	done
done
acls --list
