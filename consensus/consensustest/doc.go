// Package consensustest provides an embedded Kafka and helpers for testing
// code built on package consensus, in the spirit of net/http/httptest.
//
// StartKafka starts an in-process, multi-broker Kafka (franz-go's kfake)
// listening on 127.0.0.1 only. Point any Kafka client, or a consensus chain,
// at its Addrs:
//
//	k, err := consensustest.StartKafka(consensustest.WithBrokers(3))
//	if err != nil {
//		t.Fatal(err)
//	}
//	defer k.Close()
//	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...))
//
// WithTLS and WithSASLUser make the brokers require TLS (SelfSignedTLS
// generates a throwaway CA and certificates for 127.0.0.1) and SASL
// authentication (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); clients then need
// consensus.WithTLS and consensus.WithSASL, which a Cluster takes through
// WithConsenterOpts.
//
// Faults can be injected and removed again, so that a test sees a failure
// and then the recovery: FailProduce and FailFetch answer requests with a
// Kafka error code, DropConnections cuts the open client connections, and
// Pause/Resume make brokers unreachable until resumed.
//
// The embedded Kafka speaks the real protocol but is not a replicated log:
// every partition is stored once, the replication factor of a topic is only
// reported in metadata, and min.insync.replicas is stored but not enforced.
// Use FailProduce with kerr.NotEnoughReplicas to simulate an in-sync replica
// set below the minimum. With WithDataDir the cluster state and logs survive
// a Close and a StartKafka on the same directory.
//
// Cluster runs several ordering nodes (each a consensus.Consenter with its
// own ledgers and signing identity) against one Kafka, for multi-node tests
// and experiments: stop and restart nodes, order envelopes, wait for
// heights, and compare ledgers block by block (CompareLedgers).
package consensustest
