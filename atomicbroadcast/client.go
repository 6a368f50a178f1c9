package atomicbroadcast

import (
	"context"
	"errors"
	"io"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// The client side of Broadcast and Deliver, which PeerSource uses and a
// client of an orderer may use too.

// BroadcastOne sends env on a new Broadcast stream of client and returns
// the server's answer; a status other than SUCCESS is an answer, not an
// error. It returns an error when the stream cannot be opened or breaks
// before the answer. A stream for each envelope costs a round trip each:
// to send many, keep one stream open and read the answers, which come in
// order, while sending.
func BroadcastOne(ctx context.Context, client ab.AtomicBroadcastClient, env *cb.Envelope) (*ab.BroadcastResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Broadcast(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(env); err != nil {
		return nil, err
	}
	if err := stream.CloseSend(); err != nil {
		return nil, err
	}
	r, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("stream ended without an answer")
	}
	return r, err
}

// NewSeekEnvelope returns a Deliver request: a DELIVER_SEEK_INFO envelope
// for channel carrying info, signed by signer (see
// protoutil.NewSignedEnvelope).
func NewSeekEnvelope(signer protoutil.Signer, channel string, info *ab.SeekInfo) (*cb.Envelope, error) {
	return NewSeekEnvelopeWithTLSBinding(signer, channel, info, nil)
}

// NewSeekEnvelopeWithTLSBinding is NewSeekEnvelope bound to the client's
// TLS certificate: tlsCertHash is its CertHash, which a server that
// requires client certificates may check (see WithTLSBinding).
func NewSeekEnvelopeWithTLSBinding(signer protoutil.Signer, channel string, info *ab.SeekInfo, tlsCertHash []byte) (*cb.Envelope, error) {
	data, err := protoutil.Marshal(info)
	if err != nil {
		return nil, err
	}
	return protoutil.NewSignedEnvelopeWithTLSBinding(cb.HeaderType_DELIVER_SEEK_INFO, channel, data, signer, tlsCertHash)
}

// ReadBlocks sends one Deliver request, env (see NewSeekEnvelope), on a new
// stream of client, calls fn with each block served, and returns the
// status that ends the answer. It returns fn's error as is when fn fails,
// and an error when the stream breaks or ends without a status.
func ReadBlocks(ctx context.Context, client ab.AtomicBroadcastClient, env *cb.Envelope, fn func(*cb.Block) error) (cb.Status, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Deliver(ctx)
	if err != nil {
		return 0, err
	}
	if err := stream.Send(env); err != nil {
		return 0, err
	}
	if err := stream.CloseSend(); err != nil {
		return 0, err
	}
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return 0, errors.New("stream ended without a status")
		}
		if err != nil {
			return 0, err
		}
		switch t := r.GetType().(type) {
		case *ab.DeliverResponse_Block:
			if err := fn(t.Block); err != nil {
				return 0, err
			}
		case *ab.DeliverResponse_Status:
			return t.Status, nil
		}
	}
}
