package consensus

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// TestVerifyBlock checks what a block pulled from a source must satisfy:
// each tampering is refused with ErrBadBlock; a valid config block returns
// the configuration it establishes.
func TestVerifyBlock(t *testing.T) {
	c := newTestCore(t, defaultConfig())
	blocks := stepAll(t, c, 0, 1, normal("a", 0), normal("b", 0), normal("c", 0), config("cfg:1:5:20", 0))
	require.Len(t, blocks, 2)
	genesis := genesisBlock()
	data, cfgBlock := blocks[0].Block, blocks[1].Block
	signed := func(ChannelConfig, *cb.Block) error { return nil }

	next, err := verifyBlock(genesis.Header, 0, data, defaultConfig(), signed)
	require.NoError(t, err)
	require.Equal(t, uint64(0), next.Sequence())
	next, err = verifyBlock(data.Header, 0, cfgBlock, next, signed)
	require.NoError(t, err)
	require.Equal(t, uint64(1), next.Sequence(), "the config block's configuration")
	require.Equal(t, uint32(5), next.BatchLimits().MaxMessageCount)

	tamper := func(b *cb.Block, f func(b *cb.Block)) *cb.Block {
		b = proto.Clone(b).(*cb.Block)
		f(b)
		return b
	}
	setKafka := func(b *cb.Block, f func(*ab.KafkaMetadata)) {
		md, err := KafkaMetadataOf(b)
		require.NoError(t, err)
		f(md)
		b.Metadata.Metadata[cb.BlockMetadataIndex_ORDERER] = protoutil.MarshalOrPanic(&cb.Metadata{Value: protoutil.MarshalOrPanic(md)})
	}
	tests := []struct {
		name   string
		prev   *cb.BlockHeader
		block  *cb.Block
		verify func(ChannelConfig, *cb.Block) error
		detail string
	}{
		{"wrong number", data.Header, tamper(data, func(b *cb.Block) { b.Header.Number = 5 }), nil, "number 5, want 2"},
		{"wrong previous hash", genesis.Header, tamper(data, func(b *cb.Block) { b.Header.PreviousHash = []byte("x") }), nil, "previous hash"},
		{"data altered", genesis.Header, tamper(data, func(b *cb.Block) { b.Data.Data[0] = append(b.Data.Data[0], 0) }), nil, "data hash"},
		{"envelope dropped", genesis.Header, tamper(data, func(b *cb.Block) { b.Data.Data = b.Data.Data[1:] }), nil, "data hash"},
		{"offsets altered", genesis.Header, tamper(data, func(b *cb.Block) {
			setKafka(b, func(md *ab.KafkaMetadata) { md.LastOffsetPersisted = 100 })
		}), nil, "ORDERER slot is not the signed consenter metadata"},
		{"topic altered", genesis.Header, tamper(data, func(b *cb.Block) {
			setKafka(b, func(md *ab.KafkaMetadata) { md.TopicId = []byte("other") })
		}), nil, "ORDERER slot is not the signed consenter metadata"},
		{"last config altered", genesis.Header, tamper(data, func(b *cb.Block) {
			protoutil.SetMetadata(b, cb.BlockMetadataIndex_LAST_CONFIG, &cb.Metadata{Value: protoutil.MarshalOrPanic(&cb.LastConfig{Index: 7})})
		}), nil, "last config block 7, want 0"},
		{"ORDERER slot garbage", genesis.Header, tamper(data, func(b *cb.Block) {
			b.Metadata.Metadata[cb.BlockMetadataIndex_ORDERER] = []byte{0xff}
		}), nil, ""},
		{"signature refused", genesis.Header, data, func(ChannelConfig, *cb.Block) error { return errors.New("not an orderer") }, "not an orderer"},
		{"config block with two envelopes", data.Header, tamper(cfgBlock, func(b *cb.Block) {
			b.Data.Data = append(b.Data.Data, b.Data.Data[0])
			b.Header.DataHash = protoutil.DataHash(b.Data.Data)
		}), nil, "config block with 2 envelopes"},
		{"config block the configuration refuses", data.Header, tamper(cfgBlock, func(b *cb.Block) {
			b.Data.Data[0] = protoutil.MarshalOrPanic(envOf("cfg:7:5:20"))
			b.Header.DataHash = protoutil.DataHash(b.Data.Data)
		}), nil, "update to sequence 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verify := tt.verify
			if verify == nil {
				verify = signed
			}
			cfg := ChannelConfig(defaultConfig())
			_, err := verifyBlock(tt.prev, 0, tt.block, cfg, verify)
			require.ErrorIs(t, err, ErrBadBlock)
			require.Contains(t, err.Error(), tt.detail)
		})
	}

	// A configuration that cannot verify signatures, and no verifier
	// given: nothing is trusted.
	_, err = verifyBlock(genesis.Header, 0, data, defaultConfig(), nil)
	require.ErrorContains(t, err, "cannot verify block signatures")
}
