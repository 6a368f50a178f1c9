package consensus

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// This file is the wire of the partition: how the chain encodes the
// KafkaMessages it produces, and how the core decodes the records it
// consumes, without copying on the common path.

// Field numbers of orderer.KafkaMessage, KafkaMessageRegular and
// common.Envelope.
const (
	fieldRegular           = 1 // KafkaMessage.regular
	fieldRegPayload        = 1 // KafkaMessageRegular.payload
	fieldRegConfigSeq      = 2 // KafkaMessageRegular.config_seq
	fieldRegClass          = 3 // KafkaMessageRegular.class
	fieldRegOriginalOffset = 4 // KafkaMessageRegular.original_offset
	fieldEnvPayload        = 1 // Envelope.payload
	fieldEnvSignature      = 2 // Envelope.signature
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

// decodeStrict decodes a protobuf message and refuses bytes that carry
// fields the message does not define: a record someone else wrote is then
// recognised as foreign instead of being half understood.
func decodeStrict(b []byte, m proto.Message) error {
	if err := proto.Unmarshal(b, m); err != nil {
		return err
	}
	if len(m.ProtoReflect().GetUnknown()) > 0 {
		return errors.New("unknown fields")
	}
	return nil
}

// decodedRegular holds what fastRegular decodes from one record, so that
// both take one allocation.
type decodedRegular struct {
	m   ab.KafkaMessageRegular
	env cb.Envelope
}

// fastRegular decodes a KafkaMessage{Regular} in canonical form (fields in
// order, once each, no zero values, minimal varints, no unknown fields),
// which is what every orderer writes, without copying: the envelope's
// fields and raw (the envelope's bytes) alias v. Canonical raw is exactly
// what a deterministic marshal of the envelope gives, so blocks are the
// same whether they reuse raw or marshal again. ok is false for anything
// else, which then takes the general path (decodeStrict).
func fastRegular(v []byte) (m *ab.KafkaMessageRegular, env *cb.Envelope, raw []byte, ok bool) {
	num, typ, n := protowire.ConsumeTag(v)
	if n < 0 || num != fieldRegular || typ != protowire.BytesType {
		return nil, nil, nil, false
	}
	reg, k := protowire.ConsumeBytes(v[n:])
	if k < 0 || n+k != len(v) || len(v) != 1+protowire.SizeBytes(len(reg)) {
		return nil, nil, nil, false
	}
	d := new(decodedRegular)
	m = &d.m
	last := protowire.Number(0)
	for len(reg) > 0 {
		num, typ, n := protowire.ConsumeTag(reg)
		if n != 1 || num <= last {
			return nil, nil, nil, false
		}
		last = num
		reg = reg[n:]
		switch {
		case num == fieldRegPayload && typ == protowire.BytesType:
			b, n := protowire.ConsumeBytes(reg)
			if n < 0 || len(b) == 0 || n != protowire.SizeBytes(len(b)) {
				return nil, nil, nil, false
			}
			raw, reg = b, reg[n:]
		case num >= fieldRegConfigSeq && num <= fieldRegOriginalOffset && typ == protowire.VarintType:
			x, n := protowire.ConsumeVarint(reg)
			if n < 0 || x == 0 || n != protowire.SizeVarint(x) {
				return nil, nil, nil, false
			}
			reg = reg[n:]
			switch num {
			case fieldRegConfigSeq:
				m.ConfigSeq = x
			case fieldRegClass:
				if x > uint64(ab.KafkaMessageRegular_CONFIG) {
					return nil, nil, nil, false
				}
				m.Class = ab.KafkaMessageRegular_Class(x)
			case fieldRegOriginalOffset:
				m.OriginalOffset = int64(x)
			}
		default:
			return nil, nil, nil, false
		}
	}
	if raw == nil {
		return nil, nil, nil, false
	}
	m.Payload = raw
	env = &d.env
	e := raw
	last = 0
	for len(e) > 0 {
		num, typ, n := protowire.ConsumeTag(e)
		if n < 0 || num <= last || num > fieldEnvSignature || typ != protowire.BytesType {
			return nil, nil, nil, false
		}
		last = num
		b, k := protowire.ConsumeBytes(e[n:])
		if k < 0 || len(b) == 0 || n != 1 || k != protowire.SizeBytes(len(b)) {
			return nil, nil, nil, false
		}
		e = e[n+k:]
		if num == fieldEnvPayload {
			env.Payload = b
		} else {
			env.Signature = b
		}
	}
	if len(env.Payload) == 0 {
		return nil, nil, nil, false
	}
	return m, env, raw, true
}
