package atomicbroadcast

import (
	"errors"
	"fmt"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// ErrMessageType reports a Broadcast envelope whose channel header type
// the channel does not order (BAD_REQUEST): see classify.
var ErrMessageType = errors.New("atomicbroadcast: message type not accepted")

// msgClass is how Broadcast processes an envelope.
type msgClass int

const (
	normalMsg       msgClass = iota // Chain.ProcessNormal, then OrderAsync
	configMsg                       // Chain.ProcessConfig, then ConfigureAsync
	configUpdateMsg                 // Chain.ProcessConfigUpdate, then ConfigureAsync of its CONFIG envelope
)

// classify says how Broadcast processes an envelope of channel header type
// typ on a channel whose configuration in force is cfg, as Fabric's
// msgprocessor.StandardChannel.ClassifyMsg and its registrar do on an
// application channel, but stricter:
//
//   - MESSAGE, ENDORSER_TRANSACTION, CHAINCODE_PACKAGE: normal (Fabric:
//     every type it does not name is normal);
//   - CONFIG_UPDATE: a config update, which the channel's configuration
//     turns into the CONFIG envelope to order (Fabric's ConfigUpdateMsg);
//   - CONFIG: a config envelope on a channel of this project's own format,
//     whose administrators sign CONFIG envelopes; refused on a channel
//     whose configuration processes CONFIG_UPDATE (a
//     consensus.ConfigUpdater, Fabric's format), as Fabric refuses
//     ConfigMsg ("message is of type that cannot be processed directly");
//   - ORDERER_TRANSACTION: refused, as Fabric refuses it on an application
//     channel (it created channels through the system channel);
//   - DELIVER_SEEK_INFO, and any type outside the enumeration (Fabric's
//     PEER_ADMIN_OPERATION 8 and TOKEN_TRANSACTION 9 among them, and
//     negative ones): refused, where Fabric would order them as normal.
//
// A refusal wraps ErrMessageType.
func classify(typ int32, cfg consensus.ChannelConfig) (msgClass, error) {
	switch t := cb.HeaderType(typ); t {
	case cb.HeaderType_MESSAGE, cb.HeaderType_ENDORSER_TRANSACTION, cb.HeaderType_CHAINCODE_PACKAGE:
		return normalMsg, nil
	case cb.HeaderType_CONFIG_UPDATE:
		return configUpdateMsg, nil
	case cb.HeaderType_CONFIG:
		if _, ok := cfg.(consensus.ConfigUpdater); ok {
			return 0, fmt.Errorf("%w: a CONFIG envelope cannot be processed directly on a channel that takes CONFIG_UPDATE envelopes", ErrMessageType)
		}
		return configMsg, nil
	case cb.HeaderType_ORDERER_TRANSACTION:
		return 0, fmt.Errorf("%w: ORDERER_TRANSACTION on an application channel", ErrMessageType)
	case cb.HeaderType_DELIVER_SEEK_INFO:
		return 0, fmt.Errorf("%w: DELIVER_SEEK_INFO is a Deliver request", ErrMessageType)
	default:
		return 0, fmt.Errorf("%w: unknown header type %d", ErrMessageType, typ)
	}
}
