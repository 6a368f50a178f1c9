package ingressbench

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kafkaconsensus/kafkaconsensus/atomicbroadcast"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// identitySpec is a signing identity as a child receives it.
type identitySpec struct {
	MSPID   string
	CertPEM []byte
	KeyPEM  []byte // PKCS #8
}

func specOf(id *msptest.Identity) identitySpec {
	return identitySpec{MSPID: id.MSPID(), CertPEM: id.CertPEM, KeyPEM: id.KeyPEM}
}

// signer rebuilds the signing identity.
func (s identitySpec) signer() (msp.SigningIdentity, error) {
	block, _ := pem.Decode(s.KeyPEM)
	if block == nil {
		return nil, errors.New("no PEM block in the private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", k)
	}
	return msp.NewSigningIdentity(s.MSPID, s.CertPEM, key)
}

// kafkaSpec is what the kafka process is asked for.
type kafkaSpec struct{ Brokers int }

// runKafka serves an embedded Kafka of the brokers asked for, answers
// their addresses and stops it when its stdin is closed.
func runKafka(dec *json.Decoder, enc *json.Encoder) error {
	var spec kafkaSpec
	if err := dec.Decode(&spec); err != nil {
		return err
	}
	k, err := consensustest.StartKafka(consensustest.WithBrokers(spec.Brokers))
	if err != nil {
		return answer(enc, err)
	}
	defer k.Close()
	if err := enc.Encode(reply{Addrs: k.Addrs()}); err != nil {
		return err
	}
	waitEOF(dec)
	return nil
}

// peersSpec is what the peers process is asked for: nodes 1 to n-1.
type peersSpec struct {
	Node    nodeSpec
	Signers []identitySpec
}

// runPeers runs the ordering nodes of its spec, each with its signer,
// answers once they are ready and stops them when its stdin is closed.
func runPeers(dec *json.Decoder, enc *json.Encoder) error {
	var spec peersSpec
	if err := dec.Decode(&spec); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var nodes []*node
	defer func() {
		for _, n := range nodes {
			n.close()
		}
	}()
	for i, s := range spec.Signers {
		signer, err := s.signer()
		if err != nil {
			return answer(enc, err)
		}
		n, err := startNode(ctx, spec.Node, fmt.Sprintf("node%d", i+1), signer)
		if err != nil {
			return answer(enc, err)
		}
		nodes = append(nodes, n)
	}
	if err := enc.Encode(reply{}); err != nil {
		return err
	}
	waitEOF(dec)
	return nil
}

// clientsSpec is what the clients process is asked for: Streams Broadcast
// streams to Addr, on Conns connections (0: one per stream), sending
// envelopes of EnvSize bytes (payload and signature) signed by Signer.
type clientsSpec struct {
	Addr    string
	Signer  identitySpec
	Streams int
	Conns   int
	EnvSize int
}

// clientsCmd is a command to the clients process: sign Sign envelopes,
// or send them (Go).
type clientsCmd struct {
	Sign int  `json:",omitempty"`
	Go   bool `json:",omitempty"`
}

// clients are the Broadcast clients of the clients process.
type clients struct {
	spec    clientsSpec
	signer  msp.SigningIdentity
	conns   []*grpc.ClientConn
	streams []ab.AtomicBroadcast_BroadcastClient
	envs    []*cb.Envelope // signed, waiting for Go
}

// runClients opens the streams of its spec, answers, then runs the
// commands it receives until its stdin is closed.
func runClients(dec *json.Decoder, enc *json.Encoder) error {
	var c clients
	if err := dec.Decode(&c.spec); err != nil {
		return err
	}
	defer c.close()
	if err := answer(enc, c.open()); err != nil {
		return err
	}
	if err := enc.Encode(reply{}); err != nil {
		return err
	}
	for {
		var cmd clientsCmd
		err := dec.Decode(&cmd)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		var r reply
		switch {
		case cmd.Sign > 0:
			err = c.sign(cmd.Sign)
			r.Signed = len(c.envs)
		case cmd.Go:
			r, err = c.send()
		default:
			err = errors.New("empty command")
		}
		if err := answer(enc, err); err != nil {
			return err
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
}

// open dials the connections and opens the streams.
func (c *clients) open() error {
	s := c.spec
	var err error
	if c.signer, err = s.Signer.signer(); err != nil {
		return err
	}
	conns := s.Conns
	if conns <= 0 || conns > s.Streams {
		conns = s.Streams
	}
	for range conns {
		cc, err := grpc.NewClient(s.Addr, atomicbroadcast.DialOptions(insecure.NewCredentials(), 0)...)
		if err != nil {
			return err
		}
		c.conns = append(c.conns, cc)
	}
	for i := range s.Streams {
		st, err := ab.NewAtomicBroadcastClient(c.conns[i%conns]).Broadcast(context.Background())
		if err != nil {
			return err
		}
		c.streams = append(c.streams, st)
	}
	return nil
}

// sign signs n envelopes of random data, each of the spec's size.
func (c *clients) sign(n int) error {
	pad, err := padding(c.signer, c.spec.EnvSize)
	if err != nil {
		return err
	}
	c.envs = make([]*cb.Envelope, 0, n)
	for range n {
		env, err := randomEnvelope(c.signer, pad)
		if err != nil {
			return err
		}
		c.envs = append(c.envs, env)
	}
	return nil
}

// send sends the envelopes signed, each stream keeping one in flight:
// it sends one, waits for its answer, then sends the next.
func (c *clients) send() (reply, error) {
	envs := c.envs
	c.envs = nil
	var next, acked, refused atomic.Int64
	var mu sync.Mutex
	var info string
	var firstErr error
	var wg sync.WaitGroup
	for _, st := range c.streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < len(envs); i = int(next.Add(1)) - 1 {
				r, err := roundTrip(st, envs[i])
				mu.Lock()
				switch {
				case err != nil:
					firstErr = cmp.Or(firstErr, err)
				case r.GetStatus() != cb.Status_SUCCESS:
					info = cmp.Or(info, fmt.Sprintf("%s: %s", r.GetStatus(), r.GetInfo()))
				}
				mu.Unlock()
				if err != nil {
					return
				}
				if r.GetStatus() == cb.Status_SUCCESS {
					acked.Add(1)
				} else {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return reply{Acked: int(acked.Load()), Refused: int(refused.Load()), Info: info}, firstErr
}

// padding returns how many bytes of data make an envelope of signer size
// bytes (payload and signature).
func padding(signer protoutil.Signer, size int) (int, error) {
	probe, err := protoutil.NewSignedEnvelope(cb.HeaderType_ENDORSER_TRANSACTION, channelID, nil, signer)
	if err != nil {
		return 0, err
	}
	return max(0, size-len(probe.Payload)-len(probe.Signature)), nil
}

// randomEnvelope returns a normal envelope of the channel signed by
// signer, carrying pad random bytes.
func randomEnvelope(signer protoutil.Signer, pad int) (*cb.Envelope, error) {
	data := make([]byte, pad)
	_, _ = rand.Read(data) // never fails
	return protoutil.NewSignedEnvelope(cb.HeaderType_ENDORSER_TRANSACTION, channelID, data, signer)
}

// roundTrip sends env on st and returns its answer.
func roundTrip(st ab.AtomicBroadcast_BroadcastClient, env *cb.Envelope) (*ab.BroadcastResponse, error) {
	if err := st.Send(env); err != nil {
		return nil, err
	}
	return st.Recv()
}

// close ends the streams and closes the connections.
func (c *clients) close() {
	for _, st := range c.streams {
		_ = st.CloseSend()
	}
	for _, cc := range c.conns {
		_ = cc.Close()
	}
}
