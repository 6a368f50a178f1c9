package testutil

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Envelope returns an envelope signed by signer: a payload with a channel
// header (headerType, channelID, the current time, a Fabric-style tx ID) and
// a signature header (creator = signer's serialized identity, a random
// 24-byte nonce), carrying data. It panics if signing fails, which only a
// broken signer does.
func Envelope(signer msp.SigningIdentity, channelID string, headerType cb.HeaderType, data []byte) *cb.Envelope {
	creator, err := signer.Serialize()
	if err != nil {
		panic("testutil: " + err.Error())
	}
	payload := Payload(creator, channelID, headerType, data)
	sig, err := signer.Sign(payload)
	if err != nil {
		panic("testutil: " + err.Error())
	}
	return &cb.Envelope{Payload: payload, Signature: sig}
}

// Payload returns a marshalled payload as Envelope builds it, for tests
// that sign (or mis-sign) it themselves.
func Payload(creator []byte, channelID string, headerType cb.HeaderType, data []byte) []byte {
	nonce := Nonce()
	txID := sha256.Sum256(append(append([]byte(nil), nonce...), creator...))
	ch := &cb.ChannelHeader{
		Type:      int32(headerType),
		ChannelId: channelID,
		Timestamp: timestamppb.Now(),
		TxId:      hex.EncodeToString(txID[:]),
	}
	sh := &cb.SignatureHeader{Creator: creator, Nonce: nonce}
	return protoutil.MarshalOrPanic(&cb.Payload{
		Header: &cb.Header{
			ChannelHeader:   protoutil.MarshalOrPanic(ch),
			SignatureHeader: protoutil.MarshalOrPanic(sh),
		},
		Data: data,
	})
}

// Nonce returns 24 random bytes, the nonce size Fabric uses.
func Nonce() []byte {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("testutil: " + err.Error())
	}
	return b
}
