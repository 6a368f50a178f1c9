package blockcutter

import (
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Limits are the batch limits in force, from the channel configuration's
// BatchSize value.
type Limits struct {
	// MaxMessageCount is the number of envelopes at which a batch is cut.
	// Fabric's configuration validation rejects 0; a Cutter given 0 cuts
	// after every envelope.
	MaxMessageCount uint32
	// AbsoluteMaxBytes is the largest envelope size allowed on the channel.
	// It is enforced at ingress, not by the Cutter, which ignores it.
	AbsoluteMaxBytes uint32
	// PreferredMaxBytes is the size a batch should not exceed. An envelope
	// larger than it is cut alone into its own batch.
	PreferredMaxBytes uint32
}

// Receiver cuts a sequence of ordered envelopes into batches.
//
// Implementations are not safe for concurrent use: one goroutine (the
// chain's) drives a Receiver. Returned slices are owned by the caller; the
// Receiver keeps no reference to them.
type Receiver interface {
	// Ordered adds env to the pending batch, following the rules in the
	// package documentation. It returns the batches cut, oldest first (none,
	// one or two, never an empty batch; nil when none), and whether
	// envelopes remain pending afterwards.
	Ordered(env *cb.Envelope) (batches [][]*cb.Envelope, pending bool)

	// Cut returns the pending batch and starts a new, empty one. It returns
	// nil when nothing is pending.
	Cut() []*cb.Envelope
}

// Cutter is the Receiver with Fabric 1.4's semantics. Create one with New;
// the zero value is not usable.
type Cutter struct {
	limits       func() Limits
	pending      []*cb.Envelope
	pendingBytes uint64
}

var _ Receiver = (*Cutter)(nil)

// maxPrealloc bounds the capacity reserved for a new pending batch, so that a
// huge MaxMessageCount does not reserve memory that byte limits will never
// let a batch use.
const maxPrealloc = 1024

// New returns an empty Cutter that reads the limits in force by calling
// limits once on every Ordered call, so that a configuration change applies
// from the next envelope on. limits must not be nil; New panics if it is.
func New(limits func() Limits) *Cutter {
	if limits == nil {
		panic("blockcutter: New called with a nil limits function")
	}
	return &Cutter{limits: limits}
}

// Ordered implements Receiver. It allocates nothing beyond the batches it
// returns and, once per batch, the backing array of the next pending batch.
func (c *Cutter) Ordered(env *cb.Envelope) (batches [][]*cb.Envelope, pending bool) {
	l := c.limits()
	size := uint64(protoutil.EnvelopeSize(env))
	preferred := uint64(l.PreferredMaxBytes)

	if size > preferred {
		if len(c.pending) > 0 {
			batches = make([][]*cb.Envelope, 0, 2)
			batches = append(batches, c.Cut())
		}
		return append(batches, []*cb.Envelope{env}), false
	}

	if c.pendingBytes+size > preferred {
		// pendingBytes+size > preferred >= size implies pendingBytes > 0,
		// so the pending batch is not empty and a batch is really cut.
		batches = make([][]*cb.Envelope, 0, 2)
		batches = append(batches, c.Cut())
	}

	if c.pending == nil {
		c.pending = make([]*cb.Envelope, 0, min(l.MaxMessageCount, maxPrealloc))
	}
	c.pending = append(c.pending, env)
	c.pendingBytes += size

	if uint64(len(c.pending)) >= uint64(l.MaxMessageCount) {
		if batches == nil {
			batches = make([][]*cb.Envelope, 0, 1)
		}
		return append(batches, c.Cut()), false
	}
	return batches, true
}

// Cut implements Receiver.
func (c *Cutter) Cut() []*cb.Envelope {
	batch := c.pending
	c.pending = nil
	c.pendingBytes = 0
	if len(batch) == 0 {
		return nil
	}
	return batch
}

// Pending returns the number of envelopes in the pending batch.
func (c *Cutter) Pending() int {
	return len(c.pending)
}

// PendingBytes returns the size of the pending batch: the sum of the sizes
// of its envelopes, as the Cutter counts them.
func (c *Cutter) PendingBytes() uint64 {
	return c.pendingBytes
}
