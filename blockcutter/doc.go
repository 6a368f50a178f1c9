// Package blockcutter cuts the stream of ordered envelopes of a channel into
// batches, each of which becomes one block, with the semantics of Hyperledger
// Fabric 1.4's block cutter (orderer/common/blockcutter).
//
// Every orderer node feeds the same envelopes, in the same order, with the
// same limits, to its own Cutter, and so cuts the same batches. The Cutter is
// a pure state machine: no goroutines, no clock, no IO. The batch timeout is
// the caller's business: when it expires, the caller calls Cut.
//
// The usage loop:
//
//	c := blockcutter.New(func() blockcutter.Limits { return current })
//	for env := range ordered {
//		batches, pending := c.Ordered(env)
//		for _, b := range batches {
//			writeBlock(b)
//		}
//		if pending {
//			startTimerIfStopped()
//		} else {
//			stopTimer()
//		}
//	}
//	// when the timer fires (in Kafka mode: when the TimeToCut is consumed):
//	if b := c.Cut(); b != nil {
//		writeBlock(b)
//	}
//
// Rules, applied by Ordered to each envelope, where the size of an envelope
// is len(Payload)+len(Signature) (protoutil.EnvelopeSize):
//
//  1. An envelope larger than PreferredMaxBytes is isolated: the pending
//     batch, if any, is cut first, then the envelope is returned alone in
//     a second batch, and nothing is left pending.
//  2. Otherwise, if adding the envelope would make the pending bytes exceed
//     PreferredMaxBytes, the pending batch is cut first.
//  3. The envelope is appended to the pending batch; when the pending batch
//     then holds MaxMessageCount envelopes or more, it is cut.
//
// Ordered therefore returns at most two batches, never an empty one.
// AbsoluteMaxBytes is not enforced here: envelopes larger than it are
// rejected at ingress, before they reach the log.
//
// Invariants: after Ordered returns, the pending batch is at most the
// PreferredMaxBytes that call read and holds fewer envelopes than its
// MaxMessageCount (none when it is 0); the batches returned, followed by what
// is still pending, hold the envelopes in the order they were given. Limits
// are read once per Ordered call, so a configuration change applies from the
// next envelope on; the pending batch is not re-checked against new limits
// until then.
package blockcutter
