// Package protoutil builds and reads the wire types of package protos the way
// Fabric does: blocks and their hashes, block metadata slots, and envelope
// headers.
//
// Hashes follow Fabric exactly, so that a Fabric peer or tool verifies our
// chains:
//
//   - a block's data hash is SHA-256 over the concatenation of its
//     envelopes' bytes (BlockData.data in order);
//   - a block header's hash is SHA-256 of the ASN.1 DER encoding of the
//     sequence {Number INTEGER, PreviousHash OCTET STRING, DataHash OCTET
//     STRING};
//   - block N's previous_hash is the header hash of block N-1.
//
// Every block built here has one metadata slot per BlockMetadataIndex value,
// each initially empty.
package protoutil
