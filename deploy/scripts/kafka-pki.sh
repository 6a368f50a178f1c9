#!/bin/sh
# kafka-pki.sh makes, with openssl, the TLS material of a Kafka cluster
# whose brokers and clients all authenticate with certificates: a CA of
# its own, one certificate per broker, one for the admin and one per
# orderer node. Keys are unencrypted PKCS #8 PEM, which both Kafka
# (ssl.keystore.type=PEM, no ssl.key.password) and the orderer read.
#
#   $OUT/kafka-ca/ca.key, ca.crt                 the CA: keep it off the nodes
#   $OUT/kafka/BROKER/keystore.pem               key and certificate (CN=BROKER, DNS:BROKER)
#   $OUT/kafka/BROKER/truststore.pem             the CA's certificate
#   $OUT/kafka/admin/keystore.pem, truststore.pem, client.properties
#   $OUT/orderers/NODE/kafka/client.key, client.crt, ca.crt   (CN=NODE)
#
# A client's principal is the CN of its certificate (the brokers map
# CN=orderer0 to User:orderer0), so Kafka's trust stays apart from the
# orderer organisation's CAs: only this CA can name a Kafka principal.
#
# It runs once: when $OUT/kafka-ca exists it changes nothing (the CA is
# made in kafka-ca.new and moved there last, so a failed run starts over).
#
# Settings, from the environment:
: "${OUT:=./generated}"                      # output folder
: "${BROKERS:=kafka1 kafka2 kafka3}"         # broker host names
: "${CLIENTS:=orderer0 orderer1 orderer2 orderer3}" # orderer nodes, the spare too (their Kafka principals)
: "${DAYS:=825}"                             # validity of the certificates (the CA: 10 years)
: "${KAFKA_OWNER:=}"                         # uid:gid given to kafka/ when run as root
: "${ORDERER_OWNER:=}"                       # uid:gid given to orderers/ when run as root
set -eu

if [ -e "$OUT/kafka-ca" ]; then
	echo "kafka-pki: $OUT/kafka-ca exists, nothing to do"
	exit 0
fi
umask 077
ca="$OUT/kafka-ca.new"
rm -rf "$ca"
mkdir -p "$ca"
cnf="$ca/openssl.cnf"
printf '%s\n' '[req]' 'distinguished_name = dn' 'prompt = no' '[dn]' \
	'[ca]' 'basicConstraints = critical, CA:TRUE, pathlen:0' \
	'keyUsage = critical, keyCertSign, cRLSign' 'subjectKeyIdentifier = hash' >"$cnf"

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# issue CN KEY CERT: a key, and a certificate for CN with DNS name CN,
# for servers and clients, signed by the CA.
issue() {
	newkey "$2"
	openssl req -new -key "$2" -subj "/CN=$1" -config "$cnf" -out "$3.csr"
	printf '%s\n' 'basicConstraints = critical, CA:FALSE' 'keyUsage = critical, digitalSignature' \
		'extendedKeyUsage = serverAuth, clientAuth' 'subjectKeyIdentifier = hash' \
		'authorityKeyIdentifier = keyid' "subjectAltName = DNS:$1" >"$3.ext"
	openssl x509 -req -in "$3.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" \
		-CAcreateserial -CAserial "$ca/ca.srl" -days "$DAYS" -sha256 \
		-extfile "$3.ext" -out "$3" 2>/dev/null
	rm -f "$3.csr" "$3.ext"
}

newkey "$ca/ca.key"
openssl req -x509 -new -key "$ca/ca.key" -subj "/CN=Kafka CA" -days 3650 -sha256 \
	-config "$cnf" -extensions ca -out "$ca/ca.crt"

for b in $BROKERS admin; do
	d="$OUT/kafka/$b"
	mkdir -p "$d"
	issue "$b" "$d/key.pem" "$d/cert.pem"
	cat "$d/key.pem" "$d/cert.pem" >"$d/keystore.pem"
	rm -f "$d/key.pem" "$d/cert.pem"
	cp "$ca/ca.crt" "$d/truststore.pem"
done
printf '%s\n' 'security.protocol=SSL' 'ssl.keystore.type=PEM' \
	'ssl.keystore.location=/etc/kafka/secrets/keystore.pem' 'ssl.truststore.type=PEM' \
	'ssl.truststore.location=/etc/kafka/secrets/truststore.pem' >"$OUT/kafka/admin/client.properties"

for c in $CLIENTS; do
	d="$OUT/orderers/$c/kafka"
	mkdir -p "$d"
	issue "$c" "$d/client.key" "$d/client.crt"
	cp "$ca/ca.crt" "$d/ca.crt"
done

mv "$ca" "$OUT/kafka-ca"
if [ -n "$KAFKA_OWNER" ]; then
	chown -R "$KAFKA_OWNER" "$OUT/kafka"
fi
if [ -n "$ORDERER_OWNER" ]; then
	chown -R "$ORDERER_OWNER" "$OUT/orderers"
fi
echo "kafka-pki: wrote $OUT/kafka-ca, $OUT/kafka and the orderers' Kafka client certificates"
