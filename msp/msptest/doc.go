// Package msptest makes the identities of Fabric organisations in code: a
// certificate authority per organisation that issues members,
// administrators and TLS certificates, the organisation's MSP
// configuration, its MSP folder on disk, signed envelopes and genesis
// blocks. It is for tests, examples and tools that need identities without
// a Fabric CA or cryptogen (examples/orderer's cryptogen command is built
// on it); keys live in memory and are written to disk unencrypted.
//
// An organisation starts with NewCA, which makes its root CA and its TLS
// CA. The root (or an intermediate from NewIntermediate) issues identities;
// options choose their role and validity:
//
//	org1, err := msptest.NewCA("Org1MSP", msptest.WithNodeOUs())
//	admin, err := org1.Issue("admin", msptest.WithOU(msptest.OUAdmin))
//	alice, err := org1.Issue("alice", msptest.WithOU(msptest.OUClient))
//	tlsCert, err := org1.IssueTLS("orderer0.org1", []string{"127.0.0.1", "localhost"})
//	genesis, err := msptest.GenesisBlock("mychannel", []*msptest.CA{org1})
//	env, err := alice.Envelope(cb.HeaderType_ENDORSER_TRANSACTION, "mychannel", []byte("tx"))
//	err = org1.WriteMSPDir("org1/msp", nil)
//
// Administrators are named as the msp package recognises them: with
// NodeOUs, by the OUAdmin organisational unit; with or without, by being
// issued ListedAdmin (Fabric 1.4's admincerts). An Identity is an
// msp.SigningIdentity, so it signs blocks (consensus.WithSigner), config
// updates (channelconfig.NewConfigEnvelope) and envelopes
// (protoutil.NewSignedEnvelope, which Identity.Envelope calls).
//
// MSPConfig reflects the organisation as it is when called: intermediates
// made, identities issued ListedAdmin and revocations (Revoke) after a
// configuration was taken are not in it.
//
// Nothing here panics: every function that can fail returns an error.
package msptest
