package protoutil

import (
	"fmt"

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
// headers, failing when any is missing or malformed.
func EnvelopeHeaders(env *cb.Envelope) (*Headers, error) {
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

// EnvelopeSize is the size the block cutter and the AbsoluteMaxBytes limit
// count for env: its payload plus its signature, as in Fabric.
func EnvelopeSize(env *cb.Envelope) int {
	return len(env.GetPayload()) + len(env.GetSignature())
}
