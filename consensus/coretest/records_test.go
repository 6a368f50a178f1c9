package coretest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/coretest"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/plainconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

func decode(t *testing.T, v []byte) *ab.KafkaMessage {
	t.Helper()
	m := new(ab.KafkaMessage)
	require.NoError(t, proto.Unmarshal(v, m))
	return m
}

func TestRecordBuilders(t *testing.T) {
	env := coretest.Envelope("a")
	require.Equal(t, []byte("a"), env.Payload)
	require.Empty(t, env.Signature)
	require.Len(t, coretest.Envelopes("a", "b", "c"), 3)
	raw := protoutil.MarshalOrPanic(env)

	regular := func(v []byte) *ab.KafkaMessageRegular {
		r := decode(t, v).GetRegular()
		require.NotNil(t, r)
		require.Equal(t, raw, r.Payload)
		return r
	}
	r := regular(coretest.Normal(env, 2))
	require.Equal(t, ab.KafkaMessageRegular_NORMAL, r.Class)
	require.Equal(t, uint64(2), r.ConfigSeq)
	require.Zero(t, r.OriginalOffset)

	r = regular(coretest.Config(env, 1))
	require.Equal(t, ab.KafkaMessageRegular_CONFIG, r.Class)
	require.Equal(t, uint64(1), r.ConfigSeq)

	r = regular(coretest.Resubmitted(env, 3, 7))
	require.Equal(t, ab.KafkaMessageRegular_NORMAL, r.Class)
	require.Equal(t, int64(7), r.OriginalOffset)

	r = regular(coretest.ConfigResubmitted(env, 3, 9))
	require.Equal(t, ab.KafkaMessageRegular_CONFIG, r.Class)
	require.Equal(t, int64(9), r.OriginalOffset)

	require.Equal(t, uint64(4), decode(t, coretest.TimeToCut(4)).GetTimeToCut().GetBlockNumber())
	require.NotNil(t, decode(t, coretest.Connect()).GetConnect())
	require.Error(t, proto.Unmarshal(coretest.Garbage(), new(ab.KafkaMessage)))

	g := coretest.Genesis()
	require.Equal(t, uint64(0), g.Header.Number)
	require.NoError(t, protoutil.CheckDataHash(g))
}

// Every stranger record is skipped by a core, which changes nothing.
func TestStrangerRecordsAreSkipped(t *testing.T) {
	for i, v := range coretest.StrangerRecords() {
		core, err := consensus.NewCore("ch", consensus.CoreState{LastBlock: coretest.Genesis(), Config: coretest.OpenConfig(2, time.Second)})
		require.NoError(t, err)
		core.Step(consensus.Record{Offset: 0, Value: coretest.Normal(coretest.Envelope("a"), 0)})
		r := core.Step(consensus.Record{Offset: 1, Value: v})
		require.Empty(t, r.Blocks, "record %d", i)
		require.Empty(t, r.Produce, "record %d", i)
		require.Len(t, r.Notes, 1, "record %d", i)
		require.Contains(t, []consensus.NoteKind{consensus.NoteSkipped, consensus.NoteFutureTimeToCut}, r.Notes[0].Kind, "record %d", i)
		r = core.Step(consensus.Record{Offset: 2, Value: coretest.Normal(coretest.Envelope("b"), 0)})
		require.Equal(t, "block 1 [a b] persisted=2; timer stop", coretest.FormatReady(r), "record %d", i)
	}
}

func TestFormat(t *testing.T) {
	core, err := consensus.NewCore("ch", consensus.CoreState{LastBlock: coretest.Genesis(), Config: coretest.OpenConfig(2, time.Second)})
	require.NoError(t, err)
	step := func(off int64, v []byte) string {
		return coretest.FormatReady(core.Step(consensus.Record{Offset: off, Value: v}))
	}
	require.Equal(t, "timer start", step(0, coretest.Normal(coretest.Envelope("a"), 0)))
	require.Equal(t, "block 1 [a \"b c\"] persisted=1; timer stop", step(1, coretest.Normal(coretest.Envelope("b c"), 0)))
	require.Equal(t, "note stale_ttc@2", step(2, coretest.TimeToCut(1)))
	require.Equal(t, "", step(3, coretest.Connect()))
	require.Equal(t, "timer start", step(4, coretest.Normal(coretest.Envelope("0123456789012345678901234567890123456789"), 0)))
	require.Equal(t, "produce ttc 2", coretest.FormatReady(core.TimerFired()))
	require.Equal(t, "block 2 [01234567890123456789012345678901…] persisted=5", step(5, coretest.TimeToCut(2)))

	update, err := plainconfig.UpdateEnvelope(core.Config().(*plainconfig.Config).Next(), nil)
	require.NoError(t, err)
	require.Equal(t, "block 3 config persisted=6", step(6, coretest.Config(update, 0)))
	require.Equal(t, "produce normal x seq=1 orig=7; note resubmitted@7", step(7, coretest.Normal(coretest.Envelope("x"), 0)))
	require.Equal(t, "timer start", step(8, coretest.Resubmitted(coretest.Envelope("x"), 1, 7)))
	require.Equal(t, "note duplicate@9", step(9, coretest.Resubmitted(coretest.Envelope("x"), 1, 7)))
	require.Equal(t, "note skipped@10", step(10, coretest.Garbage()))

	require.Equal(t, "config \"\\x00\" seq=1 orig=3", coretest.FormatMessage(&ab.KafkaMessage{Type: &ab.KafkaMessage_Regular{
		Regular: &ab.KafkaMessageRegular{Payload: protoutil.MarshalOrPanic(&cb.Envelope{Payload: []byte{0}}), ConfigSeq: 1, Class: ab.KafkaMessageRegular_CONFIG, OriginalOffset: 3},
	}}))
	require.Equal(t, "connect", coretest.FormatMessage(&ab.KafkaMessage{Type: &ab.KafkaMessage_Connect{Connect: &ab.KafkaMessageConnect{}}}))
}
