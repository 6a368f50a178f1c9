package protoutil

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// MetadataSlots is the number of metadata slots of a block, one per
// common.BlockMetadataIndex value.
var MetadataSlots = len(cb.BlockMetadataIndex_name)

// ErrNoMetadata reports that a block lacks the metadata slot asked for.
var ErrNoMetadata = errors.New("block has no such metadata")

// HeaderBytes returns the ASN.1 DER encoding of h that Fabric hashes and
// signs: SEQUENCE {Number INTEGER, PreviousHash OCTET STRING, DataHash
// OCTET STRING}. It is written directly (one allocation), and is
// byte-identical to encoding/asn1's (see TestHeaderBytesMatchesASN1).
func HeaderBytes(h *cb.BlockHeader) []byte {
	var num [9]byte // big-endian, with a leading zero when the top bit is set
	n := h.GetNumber()
	i := len(num)
	for {
		i--
		num[i] = byte(n)
		n >>= 8
		if n == 0 {
			break
		}
	}
	if num[i]&0x80 != 0 {
		i--
		num[i] = 0
	}
	number := num[i:]
	prev, data := h.GetPreviousHash(), h.GetDataHash()
	content := 2 + len(number) + derLenSize(len(prev)) + len(prev) + derLenSize(len(data)) + len(data)
	b := make([]byte, 0, derLenSize(content)+content)
	b = appendDER(b, 0x30, nil, content)
	b = appendDER(b, 0x02, number, len(number))
	b = appendDER(b, 0x04, prev, len(prev))
	return appendDER(b, 0x04, data, len(data))
}

// derLenSize is the size of a DER tag and length header for n content bytes.
func derLenSize(n int) int {
	if n <= 0x7f {
		return 2
	}
	size := 2
	for ; n > 0; n >>= 8 {
		size++
	}
	return size
}

// appendDER appends tag, the DER length n, and content (which may be nil
// when the content follows separately).
func appendDER(b []byte, tag byte, content []byte, n int) []byte {
	b = append(b, tag)
	if n <= 0x7f {
		b = append(b, byte(n))
	} else {
		var l [8]byte
		i := len(l)
		for m := n; m > 0; m >>= 8 {
			i--
			l[i] = byte(m)
		}
		b = append(b, 0x80|byte(len(l)-i))
		b = append(b, l[i:]...)
	}
	return append(b, content...)
}

// HeaderHash returns SHA-256 of HeaderBytes(h): the value the next block
// stores as its previous_hash.
func HeaderHash(h *cb.BlockHeader) []byte {
	sum := sha256.Sum256(HeaderBytes(h))
	return sum[:]
}

// DataHash returns SHA-256 over the concatenation of data.
func DataHash(data [][]byte) []byte {
	h := sha256.New()
	for _, d := range data {
		h.Write(d)
	}
	return h.Sum(nil)
}

// NewBlock returns block number with the given envelopes (marshalled
// common.Envelope bytes, which the block takes ownership of), chained to
// previousHash, with its data hash set and empty metadata slots.
func NewBlock(number uint64, previousHash []byte, data [][]byte) *cb.Block {
	return &cb.Block{
		Header: &cb.BlockHeader{
			Number:       number,
			PreviousHash: previousHash,
			DataHash:     DataHash(data),
		},
		Data:     &cb.BlockData{Data: data},
		Metadata: &cb.BlockMetadata{Metadata: make([][]byte, MetadataSlots)},
	}
}

// CheckDataHash reports whether b's header carries the hash of b's data.
func CheckDataHash(b *cb.Block) error {
	want := DataHash(b.GetData().GetData())
	if got := b.GetHeader().GetDataHash(); string(got) != string(want) {
		return fmt.Errorf("block %d: data hash %x does not match data (%x)", b.GetHeader().GetNumber(), got, want)
	}
	return nil
}

// Metadata decodes the common.Metadata in slot i of b. An empty slot decodes
// to an empty Metadata; a missing slot is ErrNoMetadata.
func Metadata(b *cb.Block, i cb.BlockMetadataIndex) (*cb.Metadata, error) {
	md := b.GetMetadata().GetMetadata()
	if int(i) >= len(md) {
		return nil, fmt.Errorf("block %d slot %v: %w", b.GetHeader().GetNumber(), i, ErrNoMetadata)
	}
	m := new(cb.Metadata)
	if err := proto.Unmarshal(md[i], m); err != nil {
		return nil, fmt.Errorf("block %d slot %v: decoding metadata: %w", b.GetHeader().GetNumber(), i, err)
	}
	return m, nil
}

// SetMetadata marshals m into slot i of b, growing the slots if needed.
func SetMetadata(b *cb.Block, i cb.BlockMetadataIndex, m *cb.Metadata) {
	if b.Metadata == nil {
		b.Metadata = &cb.BlockMetadata{}
	}
	for len(b.Metadata.Metadata) <= int(i) {
		b.Metadata.Metadata = append(b.Metadata.Metadata, nil)
	}
	b.Metadata.Metadata[i] = MarshalOrPanic(m)
}

// LastConfigIndex returns the number of the last config block recorded in
// b's LAST_CONFIG slot.
func LastConfigIndex(b *cb.Block) (uint64, error) {
	m, err := Metadata(b, cb.BlockMetadataIndex_LAST_CONFIG)
	if err != nil {
		return 0, err
	}
	lc := new(cb.LastConfig)
	if err := proto.Unmarshal(m.GetValue(), lc); err != nil {
		return 0, fmt.Errorf("block %d: decoding last config: %w", b.GetHeader().GetNumber(), err)
	}
	return lc.GetIndex(), nil
}

// MarshalOrPanic marshals m deterministically. Marshalling a well-formed
// generated message cannot fail, so an error is a programming error.
func MarshalOrPanic(m proto.Message) []byte {
	b, err := Marshal(m)
	if err != nil {
		panic("protoutil: " + err.Error())
	}
	return b
}

// Marshal marshals m deterministically (map entries sorted), so that every
// node produces the same bytes for the same message.
func Marshal(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}
