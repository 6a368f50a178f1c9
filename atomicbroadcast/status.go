package atomicbroadcast

import (
	"context"
	"errors"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/fabricconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// ErrChannelNotFound reports a request for a channel the server does not
// serve (NOT_FOUND).
var ErrChannelNotFound = errors.New("atomicbroadcast: channel not found")

// StatusOf maps an error of validation or ordering to the status Broadcast
// and Deliver answer with, as Fabric does (the package documentation has
// the table). The sentinels are tested with errors.Is, in this order:
//
//   - ErrChannelNotFound: NOT_FOUND;
//   - ErrMessageType, ErrTLSBinding, consensus.ErrNoConfigUpdates:
//     BAD_REQUEST;
//   - ErrThrottled: SERVICE_UNAVAILABLE;
//   - consensus.ErrTooLarge: REQUEST_ENTITY_TOO_LARGE;
//   - fabricconfig.ErrBadUpdate: BAD_REQUEST, whatever else it wraps (a
//     config update's signatures that fail its mod_policy, for instance);
//   - channelconfig.ErrForbidden, channelconfig.ErrBadSignature: FORBIDDEN;
//   - channelconfig.ErrMalformed, ErrWrongChannel, ErrBadSequence:
//     BAD_REQUEST;
//   - consensus.ErrNotReady, consensus.ErrHalted, context.Canceled,
//     context.DeadlineExceeded: SERVICE_UNAVAILABLE;
//   - consensus.ErrNotAcknowledged, consensus.ErrStaleConfig:
//     INTERNAL_SERVER_ERROR;
//   - anything else, nil included: BAD_REQUEST.
func StatusOf(err error) cb.Status {
	switch {
	case errors.Is(err, ErrChannelNotFound):
		return cb.Status_NOT_FOUND
	case errors.Is(err, ErrMessageType), errors.Is(err, ErrTLSBinding), errors.Is(err, consensus.ErrNoConfigUpdates):
		// Fabric answers a type it cannot process, and a request not bound
		// to the client's certificate, BAD_REQUEST.
		return cb.Status_BAD_REQUEST
	case errors.Is(err, ErrThrottled):
		return cb.Status_SERVICE_UNAVAILABLE
	case errors.Is(err, consensus.ErrTooLarge):
		return cb.Status_REQUEST_ENTITY_TOO_LARGE
	case errors.Is(err, fabricconfig.ErrBadUpdate):
		// Fabric's configtx refuses an update (versions, mod_policy,
		// result) as BAD_REQUEST, even when the cause is a signature.
		return cb.Status_BAD_REQUEST
	case errors.Is(err, channelconfig.ErrForbidden), errors.Is(err, channelconfig.ErrBadSignature):
		// Fabric checks signatures in its policy evaluation and answers a
		// missing or bad one as a permission failure.
		return cb.Status_FORBIDDEN
	case errors.Is(err, channelconfig.ErrMalformed),
		errors.Is(err, channelconfig.ErrWrongChannel), errors.Is(err, channelconfig.ErrBadSequence):
		return cb.Status_BAD_REQUEST
	case errors.Is(err, consensus.ErrNotReady), errors.Is(err, consensus.ErrHalted),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return cb.Status_SERVICE_UNAVAILABLE
	case errors.Is(err, consensus.ErrNotAcknowledged), errors.Is(err, consensus.ErrStaleConfig):
		return cb.Status_INTERNAL_SERVER_ERROR
	default:
		return cb.Status_BAD_REQUEST
	}
}
