package consensus

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Field numbers of orderer.KafkaMessage and KafkaMessageRegular.
const (
	fieldRegular      = 1
	fieldRegPayload   = 1
	fieldRegConfigSeq = 2
	fieldRegClass     = 3
	fieldEnvPayload   = 1
	fieldEnvSignature = 2
)

// encodeRegular returns the marshalled KafkaMessage{Regular{payload: env,
// config_seq, class}} in one allocation, writing env's fields straight into
// it instead of marshalling env and then the message around it. The bytes
// are those proto.Marshal gives (see TestEncodeRegularMatchesProto).
func encodeRegular(env *cb.Envelope, seq uint64, class ab.KafkaMessageRegular_Class) []byte {
	return appendRegular(nil, env, seq, class)
}

// appendRegular is encodeRegular appending to dst[:0], which it grows to
// the exact size when its capacity is too small.
func appendRegular(dst []byte, env *cb.Envelope, seq uint64, class ab.KafkaMessageRegular_Class) []byte {
	envSize := 0
	if len(env.Payload) > 0 {
		envSize += 1 + protowire.SizeBytes(len(env.Payload))
	}
	if len(env.Signature) > 0 {
		envSize += 1 + protowire.SizeBytes(len(env.Signature))
	}
	envSize += len(env.ProtoReflect().GetUnknown())
	regSize := 0
	if envSize > 0 {
		regSize += 1 + protowire.SizeBytes(envSize)
	}
	if seq != 0 {
		regSize += 1 + protowire.SizeVarint(seq)
	}
	if class != 0 {
		regSize += 1 + protowire.SizeVarint(uint64(class))
	}
	b := dst[:0]
	if size := 1 + protowire.SizeBytes(regSize); cap(b) < size {
		b = make([]byte, 0, size)
	}
	b = protowire.AppendTag(b, fieldRegular, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(regSize))
	if envSize > 0 {
		b = protowire.AppendTag(b, fieldRegPayload, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(envSize))
	}
	if len(env.Payload) > 0 {
		b = protowire.AppendTag(b, fieldEnvPayload, protowire.BytesType)
		b = protowire.AppendBytes(b, env.Payload)
	}
	if len(env.Signature) > 0 {
		b = protowire.AppendTag(b, fieldEnvSignature, protowire.BytesType)
		b = protowire.AppendBytes(b, env.Signature)
	}
	b = append(b, env.ProtoReflect().GetUnknown()...)
	if seq != 0 {
		b = protowire.AppendTag(b, fieldRegConfigSeq, protowire.VarintType)
		b = protowire.AppendVarint(b, seq)
	}
	if class != 0 {
		b = protowire.AppendTag(b, fieldRegClass, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(class))
	}
	return b
}

// maxPooledValue bounds the record values kept for reuse (see pending), so
// that one huge envelope does not pin its buffer.
const maxPooledValue = 64 << 10

// encodeMessage marshals a KafkaMessage the core asked to produce.
func encodeMessage(m *ab.KafkaMessage) []byte { return protoutil.MarshalOrPanic(m) }

// connectMessage is the value of the Connect record a node posts at start.
var connectMessage = func() []byte {
	b, _ := proto.Marshal(&ab.KafkaMessage{Type: &ab.KafkaMessage_Connect{Connect: &ab.KafkaMessageConnect{}}})
	return b
}()
