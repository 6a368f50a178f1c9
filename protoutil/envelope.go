package protoutil

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// Headers holds the decoded parts of an envelope that ordering looks at.
type Headers struct {
	Payload         *cb.Payload
	ChannelHeader   *cb.ChannelHeader
	SignatureHeader *cb.SignatureHeader
}

// UnmarshalEnvelope decodes a marshalled common.Envelope.
func UnmarshalEnvelope(b []byte) (*cb.Envelope, error) {
	env := new(cb.Envelope)
	if err := proto.Unmarshal(b, env); err != nil {
		return nil, fmt.Errorf("decoding envelope: %w", err)
	}
	return env, nil
}

// EnvelopeHeaders decodes env's payload and its channel and signature
// headers, failing when any is missing or malformed. The payload, its
// header and the signature header share env.Payload's bytes: callers must
// modify neither.
func EnvelopeHeaders(env *cb.Envelope) (*Headers, error) {
	if p, sh, ok := fastPayload(env.GetPayload()); ok {
		ch := new(cb.ChannelHeader)
		if err := proto.Unmarshal(p.Header.ChannelHeader, ch); err != nil {
			return nil, fmt.Errorf("decoding channel header: %w", err)
		}
		return &Headers{Payload: p, ChannelHeader: ch, SignatureHeader: sh}, nil
	}
	p := new(cb.Payload)
	if err := proto.Unmarshal(env.GetPayload(), p); err != nil {
		return nil, fmt.Errorf("decoding payload: %w", err)
	}
	if p.GetHeader() == nil {
		return nil, fmt.Errorf("payload has no header")
	}
	ch := new(cb.ChannelHeader)
	if err := proto.Unmarshal(p.GetHeader().GetChannelHeader(), ch); err != nil {
		return nil, fmt.Errorf("decoding channel header: %w", err)
	}
	sh := new(cb.SignatureHeader)
	if err := proto.Unmarshal(p.GetHeader().GetSignatureHeader(), sh); err != nil {
		return nil, fmt.Errorf("decoding signature header: %w", err)
	}
	return &Headers{Payload: p, ChannelHeader: ch, SignatureHeader: sh}, nil
}

// fastPayload decodes a Payload that has a header, and its signature
// header, without copying them (their fields alias b), when they are in
// the form clients write: each of a message's fields once at most, in
// order, and no other field (see bytesFields). ok is false for anything
// else, which proto.Unmarshal then decodes: on what fastPayload accepts
// the two agree.
func fastPayload(b []byte) (p *cb.Payload, sh *cb.SignatureHeader, ok bool) {
	pf, ok := bytesFields(b)
	if !ok || pf[0] == nil {
		return nil, nil, false
	}
	hf, ok := bytesFields(pf[0])
	if !ok {
		return nil, nil, false
	}
	sf, ok := bytesFields(hf[1])
	if !ok {
		return nil, nil, false
	}
	p = &cb.Payload{Header: &cb.Header{ChannelHeader: hf[0], SignatureHeader: hf[1]}, Data: pf[1]}
	return p, &cb.SignatureHeader{Creator: sf[0], Nonce: sf[1]}, true
}

// bytesFields returns fields 1 and 2 of message b, nil when absent, when
// both are of the length-delimited wire type (bytes or a message), b holds
// each at most once, field 1 first, and no other field: Payload (header,
// data), Header (channel_header, signature_header) and SignatureHeader
// (creator, nonce) as their writers marshal them. ok is false otherwise,
// and for b that does not decode.
func bytesFields(b []byte) (f [2][]byte, ok bool) {
	last := protowire.Number(0)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num <= last || num > 2 || typ != protowire.BytesType {
			return f, false
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return f, false
		}
		f[num-1], last, b = v, num, b[n+m:]
	}
	return f, true
}

// EnvelopeSize is the size the block cutter and the AbsoluteMaxBytes limit
// count for env: its payload plus its signature, as in Fabric.
func EnvelopeSize(env *cb.Envelope) int {
	return len(env.GetPayload()) + len(env.GetSignature())
}
