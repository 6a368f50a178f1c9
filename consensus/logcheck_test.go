package consensus

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
)

var (
	topicA = bytes.Repeat([]byte{0xa}, 16)
	topicB = bytes.Repeat([]byte{0xb}, 16)
)

// stepAll feeds values to c from offset start, with leader epoch epoch, and
// returns the blocks cut.
func stepAll(t *testing.T, c *Core, start int64, epoch int32, values ...[]byte) []Block {
	t.Helper()
	var out []Block
	for i, v := range values {
		r := c.Step(Record{Offset: start + int64(i), LeaderEpoch: epoch, Value: v})
		for _, b := range r.Blocks {
			out = append(out, Block{Block: proto.Clone(b.Block).(*cb.Block), Metadata: proto.Clone(b.Metadata).(*ab.KafkaMetadata), IsConfig: b.IsConfig})
		}
	}
	return out
}

func hashOf(v []byte) []byte { h := sha256.Sum256(v); return h[:] }

// TestCoreLogIdentityInBlocks checks the identity each block records: the
// topic ID learnt from the log check, and the fingerprint of the record at
// LastOffsetPersisted, also when a block records offset-1 (the record that
// cut it stays pending) and for a config block.
func TestCoreLogIdentityInBlocks(t *testing.T) {
	c := newTestCore(t, defaultConfig())
	require.NoError(t, c.CheckLog(LogView{TopicID: topicA, Start: 0, End: 0}))
	require.Equal(t, topicA, c.TopicID())
	vals := [][]byte{normal("a", 0), normal("b", 0), normal("c", 0), normal("mid1", 0), normal("mid2", 0), config("cfg:1:3:20", 0)}
	blocks := stepAll(t, c, 0, 7, vals...)
	// a b c (count) | mid1, then mid2 overflows: block [mid1] at offset 3,
	// mid2 pending | the config cuts [mid2] at offset 4, then itself at 5.
	require.Len(t, blocks, 4)
	for i, want := range []int64{2, 3, 4, 5} {
		md := blocks[i].Metadata
		require.Equal(t, want, md.LastOffsetPersisted, "block %d", i+1)
		require.Equal(t, topicA, md.TopicId, "block %d", i+1)
		require.Equal(t, &ab.LogFingerprint{Offset: want, LeaderEpoch: 7, ValueHash: hashOf(vals[want])}, md.Persisted, "block %d", i+1)
		// The signed value carries the same metadata (Fabric 1.4.12).
		sig, err := KafkaMetadataOf(blocks[i].Block)
		require.NoError(t, err)
		require.True(t, proto.Equal(md, sig))
		obm := new(cb.OrdererBlockMetadata)
		require.NoError(t, proto.Unmarshal(mustMetadata(t, blocks[i].Block, cb.BlockMetadataIndex_SIGNATURES).Value, obm))
		require.Equal(t, blocks[i].Block.Metadata.Metadata[cb.BlockMetadataIndex_ORDERER], obm.ConsenterMetadata)
	}
	require.Nil(t, checkSignedMetadata(blocks[3].Block, 4))
}

func mustMetadata(t *testing.T, b *cb.Block, i cb.BlockMetadataIndex) *cb.Metadata {
	t.Helper()
	m := new(cb.Metadata)
	require.NoError(t, proto.Unmarshal(b.Metadata.Metadata[i], m))
	return m
}

// TestCoreLogIdentityAfterRestart restarts a core from its last block: it
// knows the topic and the fingerprint, and its next blocks are those the
// first core writes, byte for byte, also when the first record after the
// restart cuts a block at offset-1 (whose fingerprint came from the last
// block).
func TestCoreLogIdentityAfterRestart(t *testing.T) {
	c := newTestCore(t, defaultConfig())
	require.NoError(t, c.CheckLog(LogView{TopicID: topicA}))
	head := stepAll(t, c, 0, 3, normal("a", 0), normal("b", 0), normal("c", 0))
	require.Len(t, head, 1)
	rc, err := NewCore("testchannel", CoreState{LastBlock: head[0].Block, Config: defaultConfig()})
	require.NoError(t, err)
	require.Equal(t, topicA, rc.TopicID())
	require.Equal(t, int64(2), rc.FingerprintOffset())
	require.Equal(t, int64(3), rc.Position())

	// mid1 at 3, then a 30-byte envelope at 4: it cuts [mid1] recording 3,
	// the record before it, consumed by the first core only.
	tail := [][]byte{normal("mid1", 0), normal("big1", 0)}
	want := stepAll(t, c, 3, 4, tail...)
	got := stepAll(t, rc, 3, 4, tail...)
	require.Len(t, want, 2)
	require.Equal(t, blockBytes(t, &Ready{Blocks: want}), blockBytes(t, &Ready{Blocks: got}))

	// The same with the restart right after the first block: the block
	// that records offset-1 = 2 takes the fingerprint from the last block.
	rc2, err := NewCore("testchannel", CoreState{LastBlock: head[0].Block, Config: defaultConfig()})
	require.NoError(t, err)
	c2 := newTestCore(t, defaultConfig())
	require.NoError(t, c2.CheckLog(LogView{TopicID: topicA}))
	stepAll(t, c2, 0, 3, normal("a", 0), normal("b", 0), normal("c", 0))
	want2 := stepAll(t, c2, 3, 4, normal("big1", 0))
	got2 := stepAll(t, rc2, 3, 4, normal("big1", 0))
	require.Equal(t, blockBytes(t, &Ready{Blocks: want2}), blockBytes(t, &Ready{Blocks: got2}))
}

// TestCoreCheckLog checks every verdict of CheckLog for a core whose last
// block persisted offset 2 (fingerprint: epoch 3 and the hash of record 2),
// from topic A.
func TestCoreCheckLog(t *testing.T) {
	vals := [][]byte{normal("a", 0), normal("b", 0), normal("c", 0)}
	restarted := func() *Core {
		c := newTestCore(t, defaultConfig())
		require.NoError(t, c.CheckLog(LogView{TopicID: topicA}))
		head := stepAll(t, c, 0, 3, vals...)
		rc, err := NewCore("testchannel", CoreState{LastBlock: head[0].Block, Config: defaultConfig()})
		require.NoError(t, err)
		return rc
	}
	good := &Record{Offset: 2, LeaderEpoch: 3, Value: vals[2]}
	tests := []struct {
		name   string
		view   LogView
		want   error // nil, or the kind
		detail string
	}{
		{"same log, records after", LogView{TopicID: topicA, Start: 0, End: 10, Fingerprinted: good}, nil, ""},
		{"same log, nothing after", LogView{TopicID: topicA, Start: 0, End: 3, Fingerprinted: good}, nil, ""},
		{"deleted up to the next offset", LogView{TopicID: topicA, Start: 3, End: 10}, nil, ""},
		{"brokers without topic IDs", LogView{Start: 0, End: 10, Fingerprinted: good}, nil, ""},
		{"other topic ID", LogView{TopicID: topicB, Start: 0, End: 10, Fingerprinted: good}, ErrLogReplaced, "topic ID 0b0b"},
		{"other topic ID, empty", LogView{TopicID: topicB, Start: 0, End: 0}, ErrLogReplaced, ""},
		{"truncated", LogView{TopicID: topicA, Start: 0, End: 2}, ErrLogTruncated, ""},
		{"other value", LogView{TopicID: topicA, Start: 0, End: 10, Fingerprinted: &Record{Offset: 2, LeaderEpoch: 3, Value: vals[1]}}, ErrLogDiverged, "value hash"},
		{"other epoch", LogView{TopicID: topicA, Start: 0, End: 10, Fingerprinted: &Record{Offset: 2, LeaderEpoch: 4, Value: vals[2]}}, ErrLogDiverged, "leader epoch 4"},
		{"record gone from the middle", LogView{TopicID: topicA, Start: 0, End: 10, Fingerprinted: &Record{Offset: 5, LeaderEpoch: 3, Value: vals[2]}}, ErrLogDiverged, "no record at offset 2"},
		{"record not read", LogView{TopicID: topicA, Start: 0, End: 10}, ErrLogDiverged, "no record at offset 2"},
		{"records missing", LogView{TopicID: topicA, Start: 7, End: 10}, ErrRecordsMissing, "records 3 to 6 are gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := restarted()
			err := c.CheckLog(tt.view)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			var le *LogError
			require.ErrorAs(t, err, &le)
			require.Equal(t, "testchannel", le.Channel)
			require.Equal(t, int64(3), le.Next)
			require.Equal(t, errors.Is(tt.want, ErrRecordsMissing), !errors.Is(err, ErrInconsistent))
			require.Contains(t, err.Error(), tt.detail)
			require.Contains(t, err.Error(), "channel testchannel: next offset 3")
		})
	}
}

// TestCoreCheckLogAdoptsTopicID: a core whose blocks carry no topic ID (a
// new channel, or blocks written before log identity existed) adopts the
// log's, and refuses another one afterwards; its restart from a block
// without identity checks offsets only.
func TestCoreCheckLogAdoptsTopicID(t *testing.T) {
	c := newTestCore(t, defaultConfig())
	require.Nil(t, c.TopicID())
	require.Equal(t, int64(-1), c.FingerprintOffset())
	require.NoError(t, c.CheckLog(LogView{Start: 0, End: 5}), "brokers that report no topic ID")
	require.Nil(t, c.TopicID())
	require.NoError(t, c.CheckLog(LogView{TopicID: topicA, Start: 0, End: 5}))
	require.ErrorIs(t, c.CheckLog(LogView{TopicID: topicB, Start: 0, End: 5}), ErrLogReplaced)

	// A block as written before log identity: no topic ID, no fingerprint.
	old := stepAll(t, newTestCore(t, defaultConfig()), 0, 0, normal("a", 0), normal("b", 0), normal("c", 0))[0].Block
	md, err := KafkaMetadataOf(old)
	require.NoError(t, err)
	md.TopicId, md.Persisted = nil, nil
	setOrdererMetadata(old, md, 0)
	rc, err := NewCore("testchannel", CoreState{LastBlock: old, Config: defaultConfig()})
	require.NoError(t, err)
	require.Equal(t, int64(-1), rc.FingerprintOffset())
	require.ErrorIs(t, rc.CheckLog(LogView{TopicID: topicB, Start: 0, End: 2}), ErrLogTruncated)
	require.NoError(t, rc.CheckLog(LogView{TopicID: topicB, Start: 0, End: 3}))
	require.Equal(t, topicB, rc.TopicID(), "the first block after the upgrade records the identity")
	b := stepAll(t, rc, 3, 1, normal("d", 0), normal("e", 0), normal("f", 0))
	require.Equal(t, topicB, b[0].Metadata.TopicId)
	require.Equal(t, int64(5), b[0].Metadata.Persisted.Offset)
}

// TestCoreValidateEveryEnvelope: with the option, a normal envelope that
// fails validation at the current sequence is skipped (NoteInvalid) by the
// core, not ordered; without it, it is ordered.
func TestCoreValidateEveryEnvelope(t *testing.T) {
	for _, validate := range []bool{false, true} {
		var opts []CoreOption
		if validate {
			opts = append(opts, ValidateEveryEnvelope())
		}
		c, err := NewCore("testchannel", CoreState{LastBlock: genesisBlock(), Config: defaultConfig()}, opts...)
		require.NoError(t, err)
		r := c.Step(Record{Offset: 0, Value: normal("bad1", 0)})
		if validate {
			require.Equal(t, "note invalid@0", render(t, r))
			require.Zero(t, c.Pending())
		} else {
			require.Equal(t, "timer start", render(t, r))
			require.Equal(t, 1, c.Pending())
		}
	}
}
