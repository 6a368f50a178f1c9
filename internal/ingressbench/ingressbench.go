// Package ingressbench measures the CPU time an ordering node spends per
// envelope it orders through Broadcast, against the CPU time of one ECDSA
// P-256 signature verification measured in the same process: the one
// cost per envelope that validation cannot avoid. It is the harness of
// examples/bench -ingress.
//
// The measured process runs one ordering node and nothing else: the
// atomicbroadcast.Server on loopback gRPC, with the chain of one channel
// (signed blocks) on its ledger (in memory, or a file ledger that syncs
// every block). The embedded Kafka, the other nodes (with Config.Nodes >
// 1) and the clients run in child processes, the running binary started
// again with an environment variable naming their role (RunChild), so
// that their CPU time is not the node's. The clients sign their envelopes
// (random data, Config.EnvSize bytes with the signature) before each
// measurement, when told over their stdin, and send them on
// Config.Streams Broadcast streams, each keeping one envelope in flight.
//
// Measure reads the node's CPU time (getrusage RUSAGE_SELF, user +
// system, garbage collection included) from just before the clients
// start sending until every envelope acknowledged is in the node's
// ledger, and divides it by the envelopes acknowledged. Around it, the
// node verifies an envelope such as the clients send (the client's
// msp.Identity.Verify over its payload and signature) Config.Verifies
// times on one goroutine, while nothing else runs; Result.Ratio is the
// first figure over the second.
//
//	if child, err := ingressbench.RunChild(); child { ... } // first in main
//	h, err := ingressbench.Start(ctx, ingressbench.DefaultConfig())
//	defer h.Close()
//	r, err := h.Measure(ctx, 20000)
//	fmt.Println(r.OrdererCPU, r.VerifyCPU, r.Ratio())
package ingressbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"google.golang.org/grpc"

	"github.com/kafkaconsensus/kafkaconsensus/atomicbroadcast"
	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/fabricconfig"
	"github.com/kafkaconsensus/kafkaconsensus/internal/cputime"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

const channelID = "bench"

// LedgerKind is the ledger of the nodes.
type LedgerKind string

const (
	// LedgerMemory is ledger.Memory.
	LedgerMemory LedgerKind = "memory"
	// LedgerFile is ledger.File in a temporary directory removed by
	// Close, with its default sync policy (fsync every block).
	LedgerFile LedgerKind = "file"
)

// Format is the format of the channel's configuration.
type Format string

const (
	// FormatFabric is Fabric's config tree (package fabricconfig), with
	// Fabric's sample policies: a client's envelope must satisfy
	// /Channel/Writers, ANY of the Writers of the Application and Orderer
	// groups, its organisation's OR('Org1MSP.admin', 'Org1MSP.client').
	FormatFabric Format = "fabric"
	// FormatOwn is this project's own configuration (package
	// channelconfig): Writers is ANY of the organisations' Writers,
	// OR('Org1MSP.member').
	FormatOwn Format = "kafkaconsensus"
)

// Config is the set-up of a Harness.
type Config struct {
	// Nodes is the number of ordering nodes: the measured one, and Nodes-1
	// in a child process.
	Nodes int
	// Brokers is the number of embedded Kafka brokers.
	Brokers int
	// Ledger is the nodes' ledger.
	Ledger LedgerKind
	// Format is the channel configuration's format.
	Format Format
	// Streams is the number of Broadcast streams, each with one envelope
	// in flight.
	Streams int
	// Conns is the number of client connections the streams share; 0
	// means one per stream.
	Conns int
	// EnvSize is an envelope's size (payload and signature) in bytes.
	EnvSize int
	// MaxMessageCount, PreferredMaxBytes and BatchTimeout are the
	// channel's batch settings; AbsoluteMaxBytes is 10 MiB.
	MaxMessageCount   uint32
	PreferredMaxBytes uint32
	BatchTimeout      time.Duration
	// Verifies is the number of verifications timed before and after
	// each measurement.
	Verifies int
	// WarmUp is the number of envelopes Start sends before any
	// measurement.
	WarmUp int
}

// DefaultConfig returns one node on one broker with a memory ledger,
// Fabric's configuration format, 32 streams of one connection each, 1 KiB
// envelopes, batches of at most 500 envelopes, preferably 2 MiB, with a
// 20ms batch timeout, 2000 verifications and a warm-up of 2000 envelopes.
// One broker, because the brokers share the machine with the node: three
// embedded brokers replicating each record take enough of a 2-core
// machine's CPU to slow Kafka's acknowledgements, which makes the node's
// produce requests and fetches smaller and its CPU per envelope vary by a
// third from one start to the next.
func DefaultConfig() Config {
	return Config{
		Nodes: 1, Brokers: 1, Ledger: LedgerMemory, Format: FormatFabric,
		Streams: 32, EnvSize: 1024,
		MaxMessageCount: 500, PreferredMaxBytes: 2 << 20, BatchTimeout: 20 * time.Millisecond,
		Verifies: 2000, WarmUp: 2000,
	}
}

func (c Config) validate() error {
	var errs []error
	if c.Nodes < 1 || c.Brokers < 1 || c.Streams < 1 || c.Conns < 0 || c.EnvSize < 1 || c.Verifies < 1 || c.WarmUp < 0 {
		errs = append(errs, fmt.Errorf("nodes %d, brokers %d, streams %d, envelope size %d and verifications %d must be positive, connections %d and warm-up %d not negative",
			c.Nodes, c.Brokers, c.Streams, c.EnvSize, c.Verifies, c.Conns, c.WarmUp))
	}
	if c.Ledger != LedgerMemory && c.Ledger != LedgerFile {
		errs = append(errs, fmt.Errorf("ledger %q: use %q or %q", c.Ledger, LedgerMemory, LedgerFile))
	}
	if c.Format != FormatFabric && c.Format != FormatOwn {
		errs = append(errs, fmt.Errorf("format %q: use %q or %q", c.Format, FormatFabric, FormatOwn))
	}
	if len(errs) > 0 {
		return fmt.Errorf("ingressbench: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// Harness is the measured node, serving Broadcast, and its child
// processes. Close releases it.
type Harness struct {
	cfg     Config
	kafka   *child
	peers   *child
	clients *child
	node    *node
	grpc    *grpc.Server
	dir     string // of the file ledgers

	verifier msp.Identity // the clients' identity, as the node's MSPs deserialize it
	probe    *cb.Envelope // an envelope such as the clients send
}

// Result is the outcome of Measure.
type Result struct {
	// Envelopes is the number of envelopes acknowledged (SUCCESS).
	Envelopes int
	// Wall is the time from the start of sending until every envelope
	// acknowledged was in the node's ledger.
	Wall time.Duration
	// OrdererCPU is the node process's CPU time per envelope
	// acknowledged.
	OrdererCPU time.Duration
	// VerifyCPU is the CPU time of one ECDSA P-256 verification, the
	// mean of the timings before and after.
	VerifyCPU time.Duration
}

// Ratio is OrdererCPU over VerifyCPU: the node's CPU per envelope in
// verifications.
func (r Result) Ratio() float64 { return float64(r.OrdererCPU) / float64(r.VerifyCPU) }

// Start starts the embedded Kafka, the other nodes and the clients in
// child processes, and the measured node in this one; it warms up with
// Config.WarmUp envelopes. On error, what was started is closed.
func Start(ctx context.Context, cfg Config) (h *Harness, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cputime.Process() == 0 {
		return nil, errors.New("ingressbench: the process's CPU time cannot be read on this platform")
	}
	h = &Harness{cfg: cfg}
	defer func() {
		if err != nil {
			h.Close()
			h = nil
		}
	}()
	var r reply
	if h.kafka, err = spawn(roleKafka, kafkaSpec{Brokers: cfg.Brokers}, &r); err != nil {
		return h, err
	}
	spec, client, signers, err := h.channel(r.Addrs)
	if err != nil {
		return h, err
	}
	if cfg.Nodes > 1 {
		ps := peersSpec{Node: spec}
		for _, s := range signers[1:] {
			ps.Signers = append(ps.Signers, specOf(s))
		}
		if h.peers, err = spawn(rolePeers, ps, &r); err != nil {
			return h, err
		}
	}
	if err := h.serve(ctx, spec, signers[0], client); err != nil {
		return h, err
	}
	if cfg.WarmUp > 0 {
		if _, err := h.Measure(ctx, cfg.WarmUp); err != nil {
			return h, fmt.Errorf("warming up: %w", err)
		}
	}
	return h, nil
}

// channel generates the organisations, the client's and the nodes'
// identities and the channel's genesis block on the brokers.
func (h *Harness) channel(brokers []string) (nodeSpec, *msptest.Identity, []*msptest.Identity, error) {
	spec := nodeSpec{Brokers: brokers, Channel: channelID, Ledger: h.cfg.Ledger}
	org, err := msptest.NewCA("Org1MSP", msptest.WithNodeOUs())
	if err != nil {
		return spec, nil, nil, err
	}
	ord, err := msptest.NewCA("OrdererMSP", msptest.WithNodeOUs())
	if err != nil {
		return spec, nil, nil, err
	}
	client, err := org.Issue("client", msptest.WithOU(msptest.OUClient))
	if err != nil {
		return spec, nil, nil, err
	}
	signers := make([]*msptest.Identity, h.cfg.Nodes)
	for i := range signers {
		if signers[i], err = ord.Issue(fmt.Sprintf("node%d", i), msptest.WithOU(msptest.OUOrderer)); err != nil {
			return spec, nil, nil, err
		}
	}
	genesis, err := h.genesis(org, ord, brokers)
	if err != nil {
		return spec, nil, nil, err
	}
	if spec.Genesis, err = protoutil.Marshal(genesis); err != nil {
		return spec, nil, nil, err
	}
	if h.cfg.Ledger == LedgerFile {
		if h.dir, err = os.MkdirTemp("", "ingressbench-"); err != nil {
			return spec, nil, nil, err
		}
		spec.Dir = h.dir
	}
	return spec, client, signers, nil
}

// genesis returns the channel's genesis block in the configured format.
func (h *Harness) genesis(org, ord *msptest.CA, brokers []string) (*cb.Block, error) {
	c := h.cfg
	const absoluteMax = 10 << 20
	if c.Format == FormatOwn {
		return msptest.GenesisBlock(channelID, []*msptest.CA{org}, msptest.WithOrdererOrgs(ord),
			msptest.WithBatchSize(c.MaxMessageCount, absoluteMax, c.PreferredMaxBytes),
			msptest.WithBatchTimeout(c.BatchTimeout), msptest.WithKafkaBrokers(brokers...))
	}
	return fabricconfig.GenesisBlock(fabricconfig.Genesis{
		ChannelID:       channelID,
		ApplicationOrgs: []fabricconfig.Org{{MSP: fabricconfig.FabricMSPConfig(org.MSPConfig())}},
		OrdererOrgs:     []fabricconfig.Org{{MSP: fabricconfig.FabricMSPConfig(ord.MSPConfig())}},
		BatchSize:       channelconfig.BatchSize{MaxMessageCount: c.MaxMessageCount, AbsoluteMaxBytes: absoluteMax, PreferredMaxBytes: c.PreferredMaxBytes},
		BatchTimeout:    c.BatchTimeout,
		KafkaBrokers:    brokers,
	})
}

// serve starts the measured node, serves its channel over gRPC on
// loopback as the example orderer does (its limits, no TLS), starts the
// clients and prepares the verification probe.
func (h *Harness) serve(ctx context.Context, spec nodeSpec, signer, client *msptest.Identity) error {
	var err error
	if h.node, err = startNode(ctx, spec, "node0", signer); err != nil {
		return err
	}
	channels := map[string]atomicbroadcast.Channel{channelID: {Chain: h.node.chain, Ledger: h.node.ledger}}
	srv, err := atomicbroadcast.NewServer(channels, atomicbroadcast.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return err
	}
	gopts, err := atomicbroadcast.ServerOptions(atomicbroadcast.GRPCLimits{MaxRecvMsgSize: atomicbroadcast.MaxRecvMsgSize(channels)})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	h.grpc = grpc.NewServer(gopts...)
	ab.RegisterAtomicBroadcastServer(h.grpc, srv)
	go func() { _ = h.grpc.Serve(atomicbroadcast.LimitListener(ln, atomicbroadcast.DefaultMaxConnections)) }()

	var r reply
	h.clients, err = spawn(roleClients, clientsSpec{Addr: ln.Addr().String(), Signer: specOf(client),
		Streams: h.cfg.Streams, Conns: h.cfg.Conns, EnvSize: h.cfg.EnvSize}, &r)
	if err != nil {
		return err
	}
	return h.prepareVerify(client)
}

// prepareVerify signs a probe envelope as the clients do and
// deserializes its creator with the MSPs of the channel's organisations.
func (h *Harness) prepareVerify(client *msptest.Identity) error {
	pad, err := padding(client, h.cfg.EnvSize)
	if err != nil {
		return err
	}
	env, err := randomEnvelope(client, pad)
	if err != nil {
		return err
	}
	mgr, err := msptest.Manager(client.Issuer)
	if err != nil {
		return err
	}
	creator, err := client.Serialize()
	if err != nil {
		return err
	}
	if h.verifier, err = mgr.Deserialize(creator); err != nil {
		return err
	}
	h.probe = env
	return h.verifier.Verify(env.Payload, env.Signature)
}

// Measure has the clients sign n envelopes, then send them, and returns
// the node's CPU time per envelope acknowledged and that of one
// verification. Every envelope must be acknowledged.
func (h *Harness) Measure(ctx context.Context, n int) (Result, error) {
	return h.measure(ctx, n, nil)
}

// MeasureProfiled is Measure with a CPU profile of the node process,
// written to w, over the sending alone (not the verifications).
func (h *Harness) MeasureProfiled(ctx context.Context, n int, w io.Writer) (Result, error) {
	return h.measure(ctx, n, w)
}

func (h *Harness) measure(ctx context.Context, n int, profile io.Writer) (Result, error) {
	if n < 1 {
		return Result{}, errors.New("ingressbench: no envelopes to measure")
	}
	var r reply
	if err := h.clients.call(clientsCmd{Sign: n}, &r); err != nil {
		return Result{}, err
	}
	before, err := h.verifyCPU()
	if err != nil {
		return Result{}, err
	}
	base := h.node.ledger.envelopes.Load()
	runtime.GC()
	cpu, start := cputime.Process(), time.Now()
	if profile != nil {
		if err := pprof.StartCPUProfile(profile); err != nil {
			return Result{}, err
		}
	}
	err = h.send(ctx, n, base)
	if profile != nil {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return Result{}, err
	}
	wall := time.Since(start)
	// The garbage of the measurement is its cost.
	runtime.GC()
	cpu = cputime.Process() - cpu
	after, err := h.verifyCPU()
	if err != nil {
		return Result{}, err
	}
	return Result{Envelopes: n, Wall: wall, OrdererCPU: cpu / time.Duration(n), VerifyCPU: (before + after) / 2}, nil
}

// send has the clients send the n envelopes they signed and waits until
// the node's ledger, which held base envelopes, holds them all.
func (h *Harness) send(ctx context.Context, n int, base int64) error {
	var r reply
	if err := h.clients.call(clientsCmd{Go: true}, &r); err != nil {
		return err
	}
	if r.Refused > 0 || r.Acked != n {
		return fmt.Errorf("ingressbench: %d of %d envelopes acknowledged, %d refused (%s)", r.Acked, n, r.Refused, r.Info)
	}
	return h.waitLedger(ctx, base+int64(n))
}

// waitLedger waits until the node's ledger holds want envelopes.
func (h *Harness) waitLedger(ctx context.Context, want int64) error {
	for h.node.ledger.envelopes.Load() < want {
		select {
		case <-ctx.Done():
			return fmt.Errorf("ingressbench: %d of %d envelopes in the ledger: %w", h.node.ledger.envelopes.Load(), want, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// verifyCPU returns the CPU time of one verification of the probe, timed
// over Config.Verifies of them, garbage collection included.
func (h *Harness) verifyCPU() (time.Duration, error) {
	runtime.GC()
	c := cputime.Process()
	for range h.cfg.Verifies {
		if err := h.verifier.Verify(h.probe.Payload, h.probe.Signature); err != nil {
			return 0, err
		}
	}
	runtime.GC()
	return (cputime.Process() - c) / time.Duration(h.cfg.Verifies), nil
}

// Close stops the clients, the node, the other nodes and the Kafka, and
// removes the file ledgers.
func (h *Harness) Close() {
	if h.clients != nil {
		h.clients.close()
	}
	if h.grpc != nil {
		h.grpc.Stop()
	}
	if h.node != nil {
		h.node.close()
	}
	if h.peers != nil {
		h.peers.close()
	}
	if h.kafka != nil {
		h.kafka.close()
	}
	if h.dir != "" {
		_ = os.RemoveAll(h.dir)
	}
}
