// Package msp implements X.509 membership for kafkaconsensus: Fabric's
// membership service providers (one MSP per organisation), the identities
// they issue, and signature policies over those identities.
//
// An MSP is built from a channelconfig.MSPConfig (New), usually read from a
// Fabric MSP folder (LoadDir). It trusts certificates that chain to one of
// its root CAs through its intermediate CAs, are within their validity
// period, are not revoked by a CRL of their issuing CA, carry one of its
// organisational units when it lists any, and, when NodeOUs are enabled,
// carry exactly one role OU. A Manager holds the MSPs of a
// channel and turns a serialized identity (msp.SerializedIdentity, the
// creator of a signature header) into an Identity of the MSP it names.
//
// Typical use:
//
//	cfg, err := msp.LoadDir("org1/msp", "Org1MSP")
//	org1, err := msp.New(cfg)
//	mgr, err := msp.NewManager(org1, org2)
//	policy, err := msp.FromString("OR('Org1MSP.member', 'Org2MSP.admin')")
//	err = msp.EvaluateSignaturePolicy(policy, []msp.SignedData{{Data: msg, Identity: creator, Signature: sig}}, mgr)
//
// Signatures follow Fabric: ECDSA (P-256 or P-384) over the SHA-256 digest
// of the message, ASN.1 DER encoded, with s <= N/2 (high-S signatures are
// rejected by Verify and never produced by Sign); Ed25519 over the message
// itself. Nothing in this package panics on malformed input: bad bytes
// return errors wrapping ErrMalformed, and verification failures wrap
// ErrBadSignature, ErrUnknownMSP, ErrExpired, ErrRevoked or ErrUntrusted.
//
// Policies use Fabric's language (FromString) and Fabric's evaluation rules
// (EvaluateSignaturePolicy): an identity counts once however often it
// signed, and a signature serves at most one principal of a gate. To
// evaluate several policies with the same signatures, check them once with
// Manager.CheckSignatures and evaluate the result with
// CheckedSignatures.Evaluate.
//
// MSPs and Managers cache, in bounded memory, the identities they
// deserialize (keyed by the serialized bytes, so a certificate is parsed
// once) and the identities they validate successfully (keyed by the
// certificate). A cached validation is reused only while every certificate
// of its chain is within its validity period at the MSP's current time;
// everything else it checked (chain, revocation, NodeOUs) is fixed for the
// MSP's lifetime. Failures are never cached.
package msp
