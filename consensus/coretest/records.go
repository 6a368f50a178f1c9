package coretest

import (
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kafkaconsensus/kafkaconsensus/blockcutter"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/plainconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Envelope returns an unsigned envelope whose payload is payload's bytes:
// the envelope of a plain payload, for configurations that read payloads
// as the application's bytes (see package plainconfig). Its size, as the
// block cutter counts it, is len(payload).
func Envelope(payload string) *cb.Envelope { return &cb.Envelope{Payload: []byte(payload)} }

// Envelopes returns the envelopes of payloads (see Envelope), in order.
func Envelopes(payloads ...string) []*cb.Envelope {
	out := make([]*cb.Envelope, len(payloads))
	for i, p := range payloads {
		out[i] = Envelope(p)
	}
	return out
}

// Normal returns the record value a node produces for normal envelope env
// that it validated at configuration sequence seq: a
// KafkaMessage{Regular{env, seq, NORMAL}}.
func Normal(env *cb.Envelope, seq uint64) []byte {
	return regular(protoutil.MarshalOrPanic(env), seq, ab.KafkaMessageRegular_NORMAL, 0)
}

// Config returns the record value a node produces for config envelope env
// that it validated at configuration sequence seq.
func Config(env *cb.Envelope, seq uint64) []byte {
	return regular(protoutil.MarshalOrPanic(env), seq, ab.KafkaMessageRegular_CONFIG, 0)
}

// Resubmitted returns the record value of a re-submission: normal envelope
// env, first consumed at offset original under an older sequence,
// validated again at sequence seq and produced again by a node.
func Resubmitted(env *cb.Envelope, seq uint64, original int64) []byte {
	return regular(protoutil.MarshalOrPanic(env), seq, ab.KafkaMessageRegular_NORMAL, original)
}

// ConfigResubmitted is Resubmitted for a config envelope.
func ConfigResubmitted(env *cb.Envelope, seq uint64, original int64) []byte {
	return regular(protoutil.MarshalOrPanic(env), seq, ab.KafkaMessageRegular_CONFIG, original)
}

func regular(env []byte, seq uint64, class ab.KafkaMessageRegular_Class, original int64) []byte {
	return protoutil.MarshalOrPanic(&ab.KafkaMessage{Type: &ab.KafkaMessage_Regular{Regular: &ab.KafkaMessageRegular{
		Payload: env, ConfigSeq: seq, Class: class, OriginalOffset: original,
	}}})
}

// TimeToCut returns the record value of a time-to-cut for block number
// block, as a node produces when its batch timer fires.
func TimeToCut(block uint64) []byte {
	return protoutil.MarshalOrPanic(&ab.KafkaMessage{Type: &ab.KafkaMessage_TimeToCut{
		TimeToCut: &ab.KafkaMessageTimeToCut{BlockNumber: block},
	}})
}

// Connect returns the record value of a Connect message, which a node
// produces when it starts and every core ignores.
func Connect() []byte {
	return protoutil.MarshalOrPanic(&ab.KafkaMessage{Type: &ab.KafkaMessage_Connect{Connect: &ab.KafkaMessageConnect{}}})
}

// Garbage returns a record value that is not a KafkaMessage (an invalid
// wire type): what a stranger writing to the topic might put there.
// Every core skips it alike.
func Garbage() []byte { return []byte{0xff, 0xff, 0xff, 0x07, 'x'} }

// StrangerRecords returns records that a writer who is not a node of the
// channel might put in its topic, one of each kind that every core skips
// (consensus.NoteSkipped or NoteFutureTimeToCut): garbage, an empty
// record, a KafkaMessage with a field the protocol does not define, a
// regular message whose payload is not an envelope, one with an empty
// envelope, one of an unknown class, one with a negative original offset,
// one with an original offset no record reaches, one validated at a
// sequence no channel reaches, and a time-to-cut for a
// block far in the future. Appended to a log, they shift offsets but never
// change which envelopes are ordered, nor in which blocks.
func StrangerRecords() [][]byte {
	env := protoutil.MarshalOrPanic(Envelope("stranger"))
	unknownField := protowire.AppendVarint(protowire.AppendTag(Normal(Envelope("stranger"), 0), 99, protowire.VarintType), 1)
	return [][]byte{
		Garbage(),
		{},
		unknownField,
		regular([]byte{0xff, 0x01}, 0, ab.KafkaMessageRegular_NORMAL, 0),
		regular(nil, 0, ab.KafkaMessageRegular_NORMAL, 0),
		regular(env, 0, ab.KafkaMessageRegular_UNKNOWN, 0),
		regular(env, 0, ab.KafkaMessageRegular_NORMAL, -5),
		regular(env, 0, ab.KafkaMessageRegular_NORMAL, 1<<62),
		regular(env, 1<<62, ab.KafkaMessageRegular_NORMAL, 0),
		TimeToCut(1 << 40),
	}
}

// Genesis returns a block 0 for configurations that read nothing from it
// (it holds one envelope, "genesis", and no metadata): the LastBlock of a
// consensus.CoreState for a new channel whose configuration the test
// builds itself.
func Genesis() *cb.Block {
	return protoutil.NewBlock(0, nil, [][]byte{protoutil.MarshalOrPanic(Envelope("genesis"))})
}

// OpenRules are plainconfig.Rules for experiments: every envelope is valid
// and every well-formed config update is authorised. Never give them to a
// real channel. Deliver and block verification keep plainconfig's
// refusing defaults.
func OpenRules() plainconfig.Rules {
	return plainconfig.Rules{
		Validate:        func(*plainconfig.Config, *cb.Envelope) error { return nil },
		AuthorizeUpdate: func(*plainconfig.Config, plainconfig.Settings, *cb.Envelope) error { return nil },
	}
}

// OpenConfig returns the configuration at sequence 0 of a channel named
// "experiment" under OpenRules, whose blocks hold at most maxMessages
// envelopes (byte limits 1 MiB, so that only the count cuts) and whose
// batch timeout is batchTimeout. Update it with cfg.Next and
// plainconfig.UpdateEnvelope. It panics on a maxMessages of 0 or a
// batchTimeout that is not positive.
func OpenConfig(maxMessages uint32, batchTimeout time.Duration) *plainconfig.Config {
	cfg, err := plainconfig.New(plainconfig.Settings{
		Channel:      "experiment",
		BatchSize:    blockcutter.Limits{MaxMessageCount: maxMessages, AbsoluteMaxBytes: 1 << 20, PreferredMaxBytes: 1 << 20},
		BatchTimeout: batchTimeout,
	}, OpenRules())
	if err != nil {
		panic("coretest: OpenConfig: " + err.Error())
	}
	return cfg
}
