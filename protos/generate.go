// Package protos holds the wire types of kafkaconsensus: Fabric's common,
// msp, orderer (Kafka messages and the AtomicBroadcast service) and peer
// messages with Fabric's names and field numbers, Fabric's channel
// configuration tree, and kafkaconsensus's own channel configuration.
//
// The generated code is committed. To regenerate it (byte for byte):
//
//	apt-get install protobuf-compiler                                 # protoc 3.21.12
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
//	go generate ./protos/...
package protos

//go:generate protoc -I . --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative common/common.proto common/policies.proto common/configtx.proto common/configuration.proto msp/msp_principal.proto msp/identities.proto msp/msp_config.proto orderer/kafka.proto orderer/ab.proto orderer/configuration.proto peer/configuration.proto channelconfig/channelconfig.proto
