package atomicbroadcast

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// anySigner signs with no key: enough for a server whose configuration
// lets anyone read.
type anySigner struct{}

func (anySigner) Serialize() ([]byte, error)      { return []byte("reader"), nil }
func (anySigner) Sign(msg []byte) ([]byte, error) { return []byte("signature"), nil }

// checkingConfig lets read only the requests that anySigner signed for
// channel ch, with a SeekInfo of FAIL_IF_NOT_READY and BEST_EFFORT.
type checkingConfig struct{ readableConfig }

func (checkingConfig) ValidateDeliver(env *cb.Envelope) error {
	h, err := protoutil.EnvelopeHeaders(env)
	if err != nil {
		return err
	}
	info := new(ab.SeekInfo)
	if err := proto.Unmarshal(h.Payload.GetData(), info); err != nil {
		return err
	}
	switch {
	case string(h.SignatureHeader.GetCreator()) != "reader", string(env.GetSignature()) != "signature":
		return errors.New("not signed by the reader")
	case cb.HeaderType(h.ChannelHeader.GetType()) != cb.HeaderType_DELIVER_SEEK_INFO, h.ChannelHeader.GetChannelId() != "ch":
		return errors.New("bad header")
	case info.GetBehavior() != ab.SeekInfo_FAIL_IF_NOT_READY, info.GetErrorResponse() != ab.SeekInfo_BEST_EFFORT:
		return errors.New("bad SeekInfo")
	}
	return nil
}

// downAddr returns a loopback address with nothing listening.
func downAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestNewPeerSource(t *testing.T) {
	creds := insecure.NewCredentials()
	src, err := NewPeerSource("127.0.0.1:7050", creds, anySigner{})
	require.NoError(t, err)
	require.Equal(t, DefaultPeerTimeout, src.timeout)
	require.Equal(t, "peer 127.0.0.1:7050", src.String())
	src, err = NewPeerSource("127.0.0.1:7050", creds, anySigner{}, WithPeerTimeout(time.Second), WithDialOptions(grpc.WithUserAgent("test")))
	require.NoError(t, err)
	require.Equal(t, time.Second, src.timeout)
	require.Len(t, src.dial, len(DialOptions(creds, DefaultClientStallTimeout))+1, "DialOptions, then the option given")

	for _, tc := range []struct {
		name   string
		addr   string
		creds  bool
		signer protoutil.Signer
		opts   []PeerSourceOption
		want   string
	}{
		{"no address", "", true, anySigner{}, nil, "no address"},
		{"no credentials", "127.0.0.1:7050", false, anySigner{}, nil, "no transport credentials"},
		{"no signer", "127.0.0.1:7050", true, nil, nil, "no signer"},
		{"zero timeout", "127.0.0.1:7050", true, anySigner{}, []PeerSourceOption{WithPeerTimeout(0)}, "peer timeout 0s: must be positive"},
	} {
		c := creds
		if !tc.creds {
			c = nil
		}
		_, err := NewPeerSource(tc.addr, c, tc.signer, tc.opts...)
		require.ErrorContains(t, err, tc.want, tc.name)
	}
}

// TestPeerSource checks PeerSource against a server whose chain is errored
// (its requests are BEST_EFFORT), a peer behind the number asked for, a
// failing callback, and peers that are unknown, down or silent.
func TestPeerSource(t *testing.T) {
	l := ledger.NewMemory()
	appendBlocks(t, l, 3)
	errored := newFakeChain(checkingConfig{})
	close(errored.errored)
	addr := listen(t, map[string]Channel{"ch": {Chain: errored, Ledger: l}})
	src, err := NewPeerSource(addr, insecure.NewCredentials(), anySigner{}, WithPeerTimeout(2*time.Second))
	require.NoError(t, err)
	require.Equal(t, "peer "+addr, src.String())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pull := func(src *PeerSource, channel string, from uint64) ([]uint64, error) {
		var got []uint64
		err := src.Blocks(ctx, channel, from, func(b *cb.Block) error {
			got = append(got, b.GetHeader().GetNumber())
			return nil
		})
		return got, err
	}

	got, err := pull(src, "ch", 1)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2}, got)
	for _, from := range []uint64{3, 10} {
		got, err = pull(src, "ch", from)
		require.NoError(t, err, "from %d", from)
		require.Empty(t, got, "from %d", from)
	}

	stop := errors.New("stop")
	calls := 0
	err = src.Blocks(ctx, "ch", 0, func(*cb.Block) error { calls++; return stop })
	require.Equal(t, stop, err)
	require.Equal(t, 1, calls)

	_, err = pull(src, "nochannel", 1)
	require.ErrorContains(t, err, "NOT_FOUND")

	canceled, cancelNow := context.WithCancel(ctx)
	cancelNow()
	err = src.Blocks(canceled, "ch", 1, func(*cb.Block) error { return nil })
	require.ErrorIs(t, err, context.Canceled)

	down := downAddr(t)
	downSrc, err := NewPeerSource(down, insecure.NewCredentials(), anySigner{}, WithPeerTimeout(2*time.Second))
	require.NoError(t, err)
	_, err = pull(downSrc, "ch", 1)
	require.ErrorContains(t, err, "peer "+down)

	// A peer that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan []net.Conn, 1)
	go func() {
		var conns []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				accepted <- conns
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for _, c := range <-accepted {
			c.Close()
		}
	})
	silent, err := NewPeerSource(ln.Addr().String(), insecure.NewCredentials(), anySigner{}, WithPeerTimeout(200*time.Millisecond))
	require.NoError(t, err)
	start := time.Now()
	_, err = pull(silent, "ch", 1)
	require.ErrorContains(t, err, "no answer within 200ms")
	require.Less(t, time.Since(start), 5*time.Second)
}
