package atomicbroadcast

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// MaxMessageBytes is the largest gRPC message Fabric's orderer sends or
// receives (100 MiB): DialOptions (and so a PeerSource) dials with it,
// and a server should allow it (grpc.MaxRecvMsgSize and
// grpc.MaxSendMsgSize), since a block may be larger than gRPC's default
// of 4 MiB.
const MaxMessageBytes = 100 << 20

// DefaultPeerTimeout is how long a PeerSource waits for each answer of a
// peer, unless WithPeerTimeout says otherwise: the first one, and each one
// after a block.
const DefaultPeerTimeout = 10 * time.Second

// PeerSourceOption configures a PeerSource.
type PeerSourceOption func(*peerConfig)

type peerConfig struct {
	timeout  time.Duration
	dial     []grpc.DialOption
	certHash []byte
}

// WithPeerTimeout sets how long the peer may take to answer a seek
// request, and to send the next block (default DefaultPeerTimeout; must be
// positive).
func WithPeerTimeout(d time.Duration) PeerSourceOption {
	return func(c *peerConfig) { c.timeout = d }
}

// WithTLSCertHash binds the source's seek requests to its TLS client
// certificate: hash is the CertHash of the certificate that creds present,
// for peers that require client certificates and check the binding (see
// WithTLSBinding).
func WithTLSCertHash(hash []byte) PeerSourceOption {
	return func(c *peerConfig) { c.certHash = hash }
}

// WithDialOptions adds gRPC dial options (interceptors, keepalive, a
// custom dialer...) after the source's own: DialOptions(creds,
// DefaultClientStallTimeout).
func WithDialOptions(opts ...grpc.DialOption) PeerSourceOption {
	return func(c *peerConfig) { c.dial = append(c.dial, opts...) }
}

// PeerSource is a consensus.BlockSource that pulls a channel's blocks from
// another ordering node through its AtomicBroadcast Deliver service, as a
// Fabric orderer replicates blocks from its peers. Give it to
// consensus.WithBlockSources.
//
// Each call of Blocks dials the peer afresh (a peer that was down when last
// asked gets no reconnection backoff held against it) and sends two seek
// requests, signed by the node's own identity, which must satisfy the
// channel's Readers policy on the peer: first the peer's newest block, to
// learn how far it is; then, when it has blocks from the number asked for
// on, those blocks up to its newest. Both requests are FAIL_IF_NOT_READY and
// BEST_EFFORT: a peer whose own chain cannot consume from Kafka still
// serves the blocks it has written. The blocks are not checked here: the
// chain verifies each one before appending it.
//
// A peer that cannot be reached, stays silent for the timeout, or answers a
// status other than SUCCESS makes Blocks return an error, and the chain
// tries its next source.
type PeerSource struct {
	addr     string
	signer   protoutil.Signer
	timeout  time.Duration
	dial     []grpc.DialOption
	certHash []byte
}

var _ consensus.BlockSource = (*PeerSource)(nil)

// NewPeerSource returns a source of the blocks of the orderer serving
// AtomicBroadcast at addr (host:port), dialled with creds (for plaintext,
// insecure.NewCredentials()), whose seek requests signer signs: the node's
// identity, an msp.SigningIdentity for instance. It fails when an argument
// is missing or an option is out of range.
func NewPeerSource(addr string, creds credentials.TransportCredentials, signer protoutil.Signer, opts ...PeerSourceOption) (*PeerSource, error) {
	cfg := peerConfig{timeout: DefaultPeerTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	var errs []error
	if addr == "" {
		errs = append(errs, errors.New("no address"))
	}
	if creds == nil {
		errs = append(errs, errors.New("no transport credentials"))
	}
	if signer == nil {
		errs = append(errs, errors.New("no signer: peers serve blocks to their channels' readers only"))
	}
	if cfg.timeout <= 0 {
		errs = append(errs, fmt.Errorf("peer timeout %v: must be positive", cfg.timeout))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("atomicbroadcast: peer source %s: %w", addr, errors.Join(errs...))
	}
	dial := DialOptions(creds, DefaultClientStallTimeout)
	return &PeerSource{addr: addr, signer: signer, timeout: cfg.timeout, dial: append(dial, cfg.dial...), certHash: cfg.certHash}, nil
}

// String names the source in logs, as "peer 10.0.0.2:7050".
func (p *PeerSource) String() string { return "peer " + p.addr }

// Blocks calls fn with the blocks of channel that the peer has from number
// from on, in order, up to its newest block, and returns nil once it has
// sent them all (at once when the peer has no block from on). It returns
// fn's error as is when fn fails, and ctx's error when ctx ends.
func (p *PeerSource) Blocks(ctx context.Context, channel string, from uint64, fn func(*cb.Block) error) error {
	conn, err := grpc.NewClient(p.addr, p.dial...)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	defer conn.Close()
	client := ab.NewAtomicBroadcastClient(conn)

	var newest *cb.Block
	err = p.seek(ctx, client, channel, seekNewest(), seekNewest(), func(b *cb.Block) error {
		newest = b
		return nil
	})
	switch {
	case err != nil:
		return err
	case newest == nil:
		return fmt.Errorf("%s: channel %s: no newest block", p, channel)
	case newest.GetHeader().GetNumber() < from:
		return nil
	}
	return p.seek(ctx, client, channel, seekSpecified(from), seekNewest(), fn)
}

// errPeerSilent is the cause of a seek the peer did not answer in time.
var errPeerSilent = errors.New("peer silent")

// seek sends one seek request and calls fn with each block until the
// final status, which must be SUCCESS. The peer's first answer, and each
// answer after fn returns, must come within the timeout.
func (p *PeerSource) seek(ctx context.Context, client ab.AtomicBroadcastClient, channel string, start, stop *ab.SeekPosition, fn func(*cb.Block) error) error {
	env, err := NewSeekEnvelopeWithTLSBinding(p.signer, channel, &ab.SeekInfo{
		Start:         start,
		Stop:          stop,
		Behavior:      ab.SeekInfo_FAIL_IF_NOT_READY,
		ErrorResponse: ab.SeekInfo_BEST_EFFORT,
	}, p.certHash)
	if err != nil {
		return fmt.Errorf("%s: seek request: %w", p, err)
	}
	seekCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := time.AfterFunc(p.timeout, func() { cancel(errPeerSilent) })
	defer idle.Stop()
	var fnErr error
	st, err := ReadBlocks(seekCtx, client, env, func(b *cb.Block) error {
		idle.Stop()
		if fnErr = fn(b); fnErr != nil {
			return fnErr
		}
		idle.Reset(p.timeout)
		return nil
	})
	switch {
	case fnErr != nil:
		return fnErr
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(context.Cause(seekCtx), errPeerSilent):
		return fmt.Errorf("%s: channel %s: no answer within %v", p, channel, p.timeout)
	case err != nil:
		return fmt.Errorf("%s: channel %s: %w", p, channel, err)
	case st != cb.Status_SUCCESS:
		return fmt.Errorf("%s: channel %s: deliver answered %s", p, channel, st)
	}
	return nil
}

func seekNewest() *ab.SeekPosition {
	return &ab.SeekPosition{Type: &ab.SeekPosition_Newest{Newest: &ab.SeekNewest{}}}
}

func seekSpecified(n uint64) *ab.SeekPosition {
	return &ab.SeekPosition{Type: &ab.SeekPosition_Specified{Specified: &ab.SeekSpecified{Number: n}}}
}
