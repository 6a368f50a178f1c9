// Package consensustest provides an embedded Kafka and helpers for testing
// code built on package consensus, in the spirit of net/http/httptest.
//
// StartKafka starts an in-process, multi-broker Kafka (franz-go's kfake)
// listening on 127.0.0.1 (WithListenHost: another address of the machine,
// for clients in other network namespaces). Point any Kafka client, or a
// consensus chain, at its Addrs:
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
// Pause/Resume make brokers unreachable (connections reset, new ones
// refused, as with a broker that is down) until resumed. Leader names the
// broker that leads a partition, to aim a fault at it.
//
// The embedded Kafka speaks the real protocol but is not a replicated log:
// every partition is stored once, the replication factor of a topic is only
// reported in metadata, and min.insync.replicas is stored but not enforced.
// Use FailProduce with kerr.NotEnoughReplicas to simulate an in-sync replica
// set below the minimum. With WithDataDir the cluster state and logs survive
// a Close and a StartKafka on the same directory.
//
// Cluster runs several ordering nodes (each a consensus.Consenter with its
// own ledgers and signing identity, made with msp/msptest) against any
// Kafka, for multi-node tests and experiments:
//
//	c, err := consensustest.NewCluster(k.Addrs(), consensustest.WithNodes(3))
//	err = c.Start(ctx)
//	err = c.WaitReady(ctx)
//	env, err := c.Envelope(consensustest.DefaultChannel, []byte("tx"))
//	err = c.Order(ctx, consensustest.DefaultChannel, env) // on a node that is ready
//	err = c.WaitInAllLedgers(ctx, consensustest.DefaultChannel, txID)
//	agreement, err := c.CheckAgreement(consensustest.DefaultChannel, sent)
//
// Stop and restart nodes, wait for heights or transactions, and compare
// ledgers block by block (CompareLedgers); CheckAgreement also checks that
// every acknowledged envelope is in exactly one block. The nodes log to
// slog.Default() at level WARN and above unless given a logger
// (WithNodeLogger), so a healthy cluster is silent.
//
// Everything here returns errors; nothing panics.
package consensustest
