#!/bin/sh
# orderer-crypto.sh makes, with the orderer's own cryptogen and genesis
# subcommands, the identities of the orderer organisation and of one client
# organisation, and the genesis block of each channel; then it lays out
# one folder per orderer node holding only what that node needs:
#
#   $OUT/crypto/orderer/         cryptogen's output, CA keys included: keep it
#   $OUT/crypto/org1/            off the nodes (and offline in production)
#   $OUT/crypto/CHANNEL.block    the genesis blocks
#   $OUT/orderers/ordererI/msp/                 the node's signing identity
#   $OUT/orderers/ordererI/tls/                 server.crt, server.key, ca.crt
#   $OUT/orderers/ordererI/genesis/CHANNEL.block
#
# ordererI answers to the TLS names ordererI.$DOMAIN, localhost and
# 127.0.0.1. The Kafka client certificates of the nodes (orderers/ordererI/
# kafka/) come from kafka-pki.sh.
#
# It runs once: when $OUT/crypto exists it changes nothing, since a second
# CA would not match the genesis blocks already made (crypto is made in
# crypto.new and moved there last, so a failed run starts over).
#
# Settings, from the environment:
: "${OUT:=./generated}"            # output folder
: "${ORDERER:=orderer}"            # the orderer program
: "${ORDERERS:=3}"                 # orderer nodes: orderer0 .. orderer(N-1)
: "${SPARE:=1}"                    # more orderer identities, for nodes added later
: "${DOMAIN:=example.com}"         # the orderer organisation's domain
: "${CHANNELS:=mychannel}"         # channels (space separated)
: "${KAFKA_BROKERS:=kafka1:9092,kafka2:9092,kafka3:9092}" # recorded in the genesis blocks
: "${BATCH_TIMEOUT:=2s}"           # the channels' batch timeout
: "${OWNER:=}"                     # uid:gid given to orderers/ when run as root
set -eu

if [ -e "$OUT/crypto" ]; then
	echo "orderer-crypto: $OUT/crypto exists, nothing to do"
	exit 0
fi
crypto="$OUT/crypto.new"
rm -rf "$crypto"

"$ORDERER" cryptogen --out "$crypto/orderer" --mspid OrdererMSP --domain "$DOMAIN" \
	--orderers $((ORDERERS + SPARE)) --users 0
"$ORDERER" cryptogen --out "$crypto/org1" --mspid Org1MSP --domain "org1.$DOMAIN" \
	--orderers 0 --users 1

for ch in $CHANNELS; do
	"$ORDERER" genesis --channel "$ch" --org "Org1MSP=$crypto/org1/msp" \
		--orderer-org "OrdererMSP=$crypto/orderer/msp" --kafka-brokers "$KAFKA_BROKERS" \
		--batch-timeout "$BATCH_TIMEOUT" -o "$crypto/$ch.block"
done

i=0
while [ "$i" -lt $((ORDERERS + SPARE)) ]; do
	node="$OUT/orderers/orderer$i"
	mkdir -p "$node/genesis"
	rm -rf "$node/msp" "$node/tls"
	cp -R "$crypto/orderer/orderers/orderer$i/msp" "$crypto/orderer/orderers/orderer$i/tls" "$node/"
	for ch in $CHANNELS; do
		cp "$crypto/$ch.block" "$node/genesis/$ch.block"
	done
	i=$((i + 1))
done

mv "$crypto" "$OUT/crypto"
if [ -n "$OWNER" ]; then
	chown -R "$OWNER" "$OUT/orderers"
fi
echo "orderer-crypto: wrote $OUT/crypto and $OUT/orderers/orderer0 .. orderer$((ORDERERS + SPARE - 1))"
