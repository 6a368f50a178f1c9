// Package kafkaconsensus orders transactions for blockchain-style orderers
// by using Kafka as a shared, totally ordered log: the protocol of
// Hyperledger Fabric's Kafka consenter (release 1.4), as an embeddable
// library with Fabric's wire formats.
//
// # Packages
//
//   - consensus: Consenter and Chain, the deterministic ordering core and
//     its franz-go loop; consensus/consensustest: an embedded multi-broker
//     Kafka, multi-node clusters and the agreement check, for tests and
//     experiments; consensus/coretest: record builders and an in-memory log
//     running several cores, with faults and invariant checks, no broker;
//     consensus/plainconfig: a channel configuration for payloads that are
//     not Fabric transactions.
//   - blockcutter: Fabric's batching rules.
//   - ledger: block storage, in memory or in crash-safe files.
//   - msp and channelconfig: X.509 membership, signature policies, and the
//     channel configuration that validates envelopes; msp/msptest makes
//     identities, MSP folders and genesis blocks in code.
//   - protoutil: blocks, Fabric's hashes, metadata and envelope helpers.
//   - protos: the wire types (Fabric's field numbers) and the
//     AtomicBroadcast gRPC service.
//
// # The flow of a transaction
//
// A client's signed envelope is validated against the channel
// configuration (Chain.ProcessNormal) and produced to the channel's Kafka
// partition (Chain.Order), which returns once Kafka acknowledged it. Every
// orderer node consumes the partition in order and feeds each record to the
// same deterministic core, which cuts the same blocks at the same offsets on
// every node; each node appends them to its own ledger, with the Kafka
// offsets in the block metadata so that a restarted node continues exactly
// where it stopped.
package kafkaconsensus
