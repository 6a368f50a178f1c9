package protoutil

import (
	"bytes"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

func TestHeaderBytesDER(t *testing.T) {
	// SEQUENCE { INTEGER 1, OCTET STRING 0xAA, OCTET STRING 0xBB 0xCC },
	// written out by hand from the DER rules.
	h := &cb.BlockHeader{Number: 1, PreviousHash: []byte{0xaa}, DataHash: []byte{0xbb, 0xcc}}
	require.Equal(t, "300a020101"+"0401aa"+"0402bbcc", hex.EncodeToString(HeaderBytes(h)))

	// Number 0 encodes as INTEGER 0; empty hashes as empty OCTET STRINGs.
	require.Equal(t, "3007020100"+"0400"+"0400", hex.EncodeToString(HeaderBytes(&cb.BlockHeader{})))

	// 128 needs a leading zero byte to stay positive.
	require.Equal(t, "3008020200800400"+"0400", hex.EncodeToString(HeaderBytes(&cb.BlockHeader{Number: 128})))

	// Largest uint64: 9 content bytes.
	require.Equal(t, "300f020900ffffffffffffffff0400"+"0400", hex.EncodeToString(HeaderBytes(&cb.BlockHeader{Number: ^uint64(0)})))
}

func TestHeaderHashIsSHA256OfDER(t *testing.T) {
	h := &cb.BlockHeader{Number: 7, PreviousHash: []byte("prev"), DataHash: []byte("data")}
	sum := sha256.Sum256(HeaderBytes(h))
	require.Equal(t, sum[:], HeaderHash(h))
	// DER written by hand: SEQUENCE{INTEGER 7, OCTET STRING "prev", OCTET
	// STRING "data"}; its SHA-256 computed outside Go (sha256sum).
	require.Equal(t, "300f020107040470726576040464617461", hex.EncodeToString(HeaderBytes(h)))
	require.Equal(t, "64c9c5b743b179f2342ae65a85a255336ce1ec0bf18a2acac1978feb185e4764", hex.EncodeToString(HeaderHash(h)))
}

func TestDataHash(t *testing.T) {
	// SHA-256("abc"), the FIPS 180-2 test vector, split over envelopes.
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	require.Equal(t, abc, hex.EncodeToString(DataHash([][]byte{[]byte("a"), []byte("bc")})))
	require.Equal(t, abc, hex.EncodeToString(DataHash([][]byte{[]byte("abc")})))
	// Empty data: SHA-256 of nothing.
	require.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", hex.EncodeToString(DataHash(nil)))
}

func TestNewBlockChains(t *testing.T) {
	b0 := NewBlock(0, nil, [][]byte{[]byte("genesis")})
	b1 := NewBlock(1, HeaderHash(b0.Header), [][]byte{[]byte("x"), []byte("y")})
	require.Equal(t, HeaderHash(b0.Header), b1.Header.PreviousHash)
	require.Len(t, b1.Metadata.Metadata, 5)
	require.NoError(t, CheckDataHash(b1))
	b1.Data.Data[0] = []byte("z")
	require.Error(t, CheckDataHash(b1))
}

func TestMetadataRoundTrip(t *testing.T) {
	b := NewBlock(3, nil, nil)
	_, err := LastConfigIndex(b)
	require.NoError(t, err, "empty slot decodes to zero")
	SetMetadata(b, cb.BlockMetadataIndex_LAST_CONFIG, &cb.Metadata{Value: MarshalOrPanic(&cb.LastConfig{Index: 2})})
	idx, err := LastConfigIndex(b)
	require.NoError(t, err)
	require.EqualValues(t, 2, idx)

	b.Metadata.Metadata[cb.BlockMetadataIndex_LAST_CONFIG] = []byte{0xff}
	_, err = LastConfigIndex(b)
	require.Error(t, err)

	b.Metadata.Metadata = nil
	_, err = Metadata(b, cb.BlockMetadataIndex_ORDERER)
	require.ErrorIs(t, err, ErrNoMetadata)
}

func TestHeaderBytesMatchesASN1(t *testing.T) {
	type asn1Header struct {
		Number       *big.Int
		PreviousHash []byte
		DataHash     []byte
	}
	numbers := []uint64{0, 1, 127, 128, 255, 256, 65535, 1 << 23, 1 << 31, 1<<63 - 1, 1 << 63, ^uint64(0)}
	sizes := []int{0, 1, 32, 127, 128, 255, 256, 70000}
	for _, n := range numbers {
		for _, ps := range sizes {
			for _, ds := range []int{0, 32, 200} {
				h := &cb.BlockHeader{Number: n, PreviousHash: bytes.Repeat([]byte{0xab}, ps), DataHash: bytes.Repeat([]byte{0xcd}, ds)}
				want, err := asn1.Marshal(asn1Header{new(big.Int).SetUint64(n), h.PreviousHash, h.DataHash})
				require.NoError(t, err)
				got := HeaderBytes(h)
				require.Equal(t, want, got, "number %d, prev %d, data %d", n, ps, ds)
				require.Equal(t, len(got), cap(got))
			}
		}
	}
}

func BenchmarkHeaderHash(b *testing.B) {
	h := &cb.BlockHeader{Number: 12345, PreviousHash: make([]byte, 32), DataHash: make([]byte, 32)}
	b.ReportAllocs()
	for b.Loop() {
		HeaderHash(h)
	}
}
