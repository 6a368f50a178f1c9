package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// newEnvelope returns an envelope signed by signer, as a Fabric client
// builds one: a channel header (type, channel, time, tx ID = hex SHA-256 of
// nonce and creator), a signature header (creator, 24-byte nonce) and data.
func newEnvelope(signer msp.SigningIdentity, channel string, typ cb.HeaderType, data []byte) (*cb.Envelope, error) {
	creator, err := signer.Serialize()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, 24)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	txID := sha256.Sum256(append(append([]byte(nil), nonce...), creator...))
	payload, err := protoutil.Marshal(&cb.Payload{
		Header: &cb.Header{
			ChannelHeader: protoutil.MarshalOrPanic(&cb.ChannelHeader{
				Type:      int32(typ),
				ChannelId: channel,
				Timestamp: timestamppb.Now(),
				TxId:      hex.EncodeToString(txID[:]),
			}),
			SignatureHeader: protoutil.MarshalOrPanic(&cb.SignatureHeader{Creator: creator, Nonce: nonce}),
		},
		Data: data,
	})
	if err != nil {
		return nil, err
	}
	sig, err := signer.Sign(payload)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return &cb.Envelope{Payload: payload, Signature: sig}, nil
}

// seekEnvelope returns a signed DELIVER_SEEK_INFO envelope.
func seekEnvelope(signer msp.SigningIdentity, channel string, info *ab.SeekInfo) (*cb.Envelope, error) {
	data, err := protoutil.Marshal(info)
	if err != nil {
		return nil, err
	}
	return newEnvelope(signer, channel, cb.HeaderType_DELIVER_SEEK_INFO, data)
}

// Seek positions.
func seekOldest() *ab.SeekPosition {
	return &ab.SeekPosition{Type: &ab.SeekPosition_Oldest{Oldest: &ab.SeekOldest{}}}
}

func seekNewest() *ab.SeekPosition {
	return &ab.SeekPosition{Type: &ab.SeekPosition_Newest{Newest: &ab.SeekNewest{}}}
}

func seekSpecified(n uint64) *ab.SeekPosition {
	return &ab.SeekPosition{Type: &ab.SeekPosition_Specified{Specified: &ab.SeekSpecified{Number: n}}}
}
