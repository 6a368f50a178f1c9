package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"github.com/twmb/franz-go/plugin/kslog"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/atomicbroadcast"
	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
)

// nodeConfig is what the start subcommand runs. A zero window or peer
// timeout means the atomicbroadcast package's default.
type nodeConfig struct {
	listen          string
	brokers         []string
	genesis         []string
	dataDir         string
	signer          signerFlags
	tls             serverTLSFlags
	kafka           kafkaFlags
	kafkaTiming     kafkaTimingFlags
	metricsListen   string
	replication     int
	minInsync       int
	window          int
	shutdownTimeout time.Duration
	syncEvery       int
	kafkaLogLevel   slog.Level
	peers           []string
	peerTLS         clientTLSFlags
	peerTimeout     time.Duration

	// Set by tests and embedding programs, not by flags.
	logger  *slog.Logger
	retry   *consensus.RetryPolicy
	tracers trace.TracerProvider
	// wrapLedger, when set, wraps each channel's file ledger: the chain
	// writes, and Deliver reads, the ledger it returns.
	wrapLedger func(channel string, l *ledger.File) consensus.Ledger
}

func runStart(ctx context.Context, args []string, out io.Writer) error {
	var c nodeConfig
	var brokers, peers commaList
	var genesis stringList
	var logLevel, kafkaLogLevel string
	fs := newFlagSet("start", "--brokers HOST:PORT,... --genesis FILE... --data DIR [flags]")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:7050", "gRPC `address` of the AtomicBroadcast service")
	fs.Var(&brokers, "brokers", "Kafka seed brokers, `host:port` (comma separated or repeated)")
	fs.Var(&genesis, "genesis", "genesis block `file` of a channel to serve (repeatable)")
	fs.StringVar(&c.dataDir, "data", "", "`directory` of the ledgers, one folder per channel")
	c.signer.register(fs, "the node's signing identity (signs blocks)")
	c.tls.register(fs)
	c.kafka.register(fs)
	c.kafkaTiming.register(fs)
	fs.StringVar(&c.metricsListen, "metrics-listen", "", "HTTP `address` of /metrics (Prometheus) and /healthz (default: off)")
	fs.IntVar(&c.replication, "replication-factor", 3, "replication factor of the channel topics the node creates")
	fs.IntVar(&c.minInsync, "min-insync-replicas", 2, "min.insync.replicas of the channel topics the node creates")
	fs.IntVar(&c.window, "window", atomicbroadcast.DefaultWindow, "envelopes of one Broadcast stream that may await Kafka at once")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a shutdown waits for open streams")
	fs.IntVar(&c.syncEvery, "sync-every", 1, "fsync the ledger every N blocks (0: leave it to the operating system)")
	fs.Var(&peers, "peers", "AtomicBroadcast `addresses` of the other orderers, host:port (comma separated or repeated): the node pulls from them the blocks whose records Kafka no longer holds (needs --signer)")
	c.peerTLS.register(fs, "peer-", "the other orderers'", "")
	fs.DurationVar(&c.peerTimeout, "peer-timeout", atomicbroadcast.DefaultPeerTimeout, "how long a peer may take to answer when catching up, and between two blocks")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&kafkaLogLevel, "kafka-log-level", "warn", "log level of the Kafka client (franz-go): debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c.brokers, c.genesis, c.peers = brokers, genesis, peers
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if err := c.kafkaLogLevel.UnmarshalText([]byte(kafkaLogLevel)); err != nil {
		return fmt.Errorf("--kafka-log-level: %w", err)
	}
	c.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	n, err := startNode(c)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "orderer listening on %s, channels %s\n", n.Addr(), strings.Join(n.Channels(), ","))
	if a := n.MetricsAddr(); a != "" {
		fmt.Fprintf(out, "metrics on http://%s/metrics, health on http://%s/healthz\n", a, a)
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-n.Failed():
	}
	fmt.Fprintln(out, "orderer: shutting down")
	n.Close()
	return serveErr
}

// node is a running ordering node: a consenter with one chain and one file
// ledger per channel, the AtomicBroadcast gRPC server, and optionally the
// metrics and health HTTP server.
type node struct {
	cfg       nodeConfig
	log       *slog.Logger
	consenter *consensus.Consenter
	chains    map[string]*consensus.Chain
	ledgers   []*ledger.File
	meters    *sdkmetric.MeterProvider
	grpc      *grpc.Server
	grpcLn    net.Listener
	http      *http.Server
	httpLn    net.Listener
	failed    chan error
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// startNode opens the ledgers, starts the chains and serves; Close undoes
// it.
func startNode(c nodeConfig) (_ *node, err error) {
	if len(c.brokers) == 0 {
		return nil, errors.New("start: --brokers is required")
	}
	if len(c.genesis) == 0 {
		return nil, errors.New("start: at least one --genesis is required")
	}
	if c.dataDir == "" {
		return nil, errors.New("start: --data is required")
	}
	if err := c.signer.check(false); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	serverCreds, err := c.tls.credentials()
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if c.tracers == nil {
		c.tracers = otel.GetTracerProvider()
	}
	n := &node{cfg: c, log: c.logger, chains: make(map[string]*consensus.Chain), failed: make(chan error, 2)}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()

	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("start: prometheus exporter: %w", err)
	}
	n.meters = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))

	opts, err := n.consenterOpts()
	if err != nil {
		return nil, err
	}
	if n.consenter, err = consensus.NewConsenter(opts...); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	channels := make(map[string]atomicbroadcast.Channel)
	for _, file := range c.genesis {
		if err := n.openChannel(file, channels); err != nil {
			return nil, err
		}
	}

	sopts := []atomicbroadcast.Option{atomicbroadcast.WithLogger(n.log.With("component", "server"))}
	if c.window != 0 {
		sopts = append(sopts, atomicbroadcast.WithWindow(c.window))
	}
	srv, err := atomicbroadcast.NewServer(channels, sopts...)
	if err != nil {
		return nil, fmt.Errorf("start: --window: %w", err)
	}
	gopts := []grpc.ServerOption{grpc.MaxRecvMsgSize(atomicbroadcast.MaxMessageBytes), grpc.MaxSendMsgSize(atomicbroadcast.MaxMessageBytes)}
	if serverCreds != nil {
		gopts = append(gopts, grpc.Creds(serverCreds))
	}
	n.grpc = grpc.NewServer(gopts...)
	ab.RegisterAtomicBroadcastServer(n.grpc, srv)
	if n.grpcLn, err = net.Listen("tcp", c.listen); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	if c.metricsListen != "" {
		if n.httpLn, err = net.Listen("tcp", c.metricsListen); err != nil {
			return nil, fmt.Errorf("start: metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", n.healthz)
		n.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		n.serve("metrics", func() error {
			if err := n.http.Serve(n.httpLn); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	for _, ch := range n.chains {
		ch.Start()
	}
	n.serve("grpc", func() error { return n.grpc.Serve(n.grpcLn) })
	n.log.Info("orderer started", "listen", n.Addr(), "channels", n.Channels(), "brokers", c.brokers)
	return n, nil
}

// consenterOpts returns the consenter's options from the node's flags.
func (n *node) consenterOpts() ([]consensus.Option, error) {
	c := n.cfg
	k := kotel.NewKotel(
		kotel.WithMeter(kotel.NewMeter(kotel.MeterProvider(n.meters))),
		kotel.WithTracer(kotel.NewTracer(kotel.TracerProvider(c.tracers))),
	)
	opts := []consensus.Option{
		consensus.WithSeedBrokers(c.brokers...),
		consensus.WithLogger(n.log.With("component", "consensus")),
		consensus.WithMeterProvider(n.meters),
		consensus.WithTracerProvider(c.tracers),
		consensus.WithTopicSettings(consensus.TopicSettings{ReplicationFactor: int16(c.replication), MinInsyncReplicas: c.minInsync}),
		consensus.WithKgoOpts(
			kgo.WithHooks(k.Hooks()...),
			kgo.WithLogger(kslog.New(slog.New(minLevel{n.log.Handler(), c.kafkaLogLevel}).With("component", "kafka-client"))),
		),
	}
	if c.retry != nil {
		opts = append(opts, consensus.WithRetry(*c.retry))
	}
	var signer msp.SigningIdentity
	if c.signer.set() {
		si, err := c.signer.load()
		if err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
		signer = si
		opts = append(opts, consensus.WithSigner(si))
	} else {
		n.log.Warn("no --signer: blocks will not be signed")
	}
	sources, err := peerSources(c, signer)
	if err != nil {
		return nil, err
	}
	if len(sources) > 0 {
		opts = append(opts, consensus.WithBlockSources(sources...))
	}
	kafkaOpts, err := c.kafka.opts()
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	timingOpts, err := c.kafkaTiming.opts()
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	return append(append(opts, kafkaOpts...), timingOpts...), nil
}

// peerSources returns a block source per --peers address, whose seek
// requests signer signs.
func peerSources(c nodeConfig, signer msp.SigningIdentity) ([]consensus.BlockSource, error) {
	if len(c.peers) == 0 {
		if c.peerTLS.caFile != "" {
			return nil, errors.New("start: --peer-tls-ca needs --peers")
		}
		return nil, nil
	}
	if signer == nil {
		return nil, errors.New("start: --peers needs --signer: the other orderers serve blocks to their channels' readers only")
	}
	creds, err := c.peerTLS.credentials()
	if err != nil {
		return nil, fmt.Errorf("start: --peer-tls-ca: %w", err)
	}
	var opts []atomicbroadcast.PeerSourceOption
	if c.peerTimeout != 0 {
		opts = append(opts, atomicbroadcast.WithPeerTimeout(c.peerTimeout))
	}
	sources := make([]consensus.BlockSource, len(c.peers))
	for i, addr := range c.peers {
		src, err := atomicbroadcast.NewPeerSource(addr, creds, signer, opts...)
		if err != nil {
			return nil, fmt.Errorf("start: --peers: %w", err)
		}
		sources[i] = src
	}
	return sources, nil
}

// openChannel reads a genesis block, opens the channel's ledger and
// creates its chain.
func (n *node) openChannel(file string, channels map[string]atomicbroadcast.Channel) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("start: --genesis: %w", err)
	}
	genesis := new(cb.Block)
	if err := proto.Unmarshal(raw, genesis); err != nil {
		return fmt.Errorf("start: --genesis %s: %w", file, err)
	}
	bundle, err := channelconfig.FromGenesisBlock(genesis)
	if err != nil {
		return fmt.Errorf("start: --genesis %s: %w", file, err)
	}
	id := bundle.ChannelID()
	if _, dup := channels[id]; dup {
		return fmt.Errorf("start: channel %s given twice", id)
	}
	sync := ledger.SyncNever
	if n.cfg.syncEvery > 0 {
		sync = ledger.SyncEvery(n.cfg.syncEvery)
	}
	l, err := ledger.OpenFile(filepath.Join(n.cfg.dataDir, id), ledger.WithSync(sync), ledger.WithLogger(n.log.With("channel", id)))
	if err != nil {
		return fmt.Errorf("start: channel %s: %w", id, err)
	}
	n.ledgers = append(n.ledgers, l)
	if r := l.Recovered(); r > 0 {
		n.log.Warn("ledger recovered a torn tail", "channel", id, "bytes", r)
	}
	var cl consensus.Ledger = l
	if n.cfg.wrapLedger != nil {
		cl = n.cfg.wrapLedger(id, l)
	}
	ch, err := n.consenter.NewChain(id, cl, genesis)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	n.chains[id] = ch
	channels[id] = atomicbroadcast.Channel{Chain: ch, Ledger: cl}
	n.log.Info("channel opened", "channel", id, "height", l.Height(), "ledger", l.Path())
	return nil
}

func (n *node) serve(name string, f func() error) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := f(); err != nil {
			n.log.Error("server failed", "server", name, "err", err)
			n.failed <- fmt.Errorf("%s server: %w", name, err)
		}
	}()
}

// Addr returns the gRPC address.
func (n *node) Addr() string { return n.grpcLn.Addr().String() }

// MetricsAddr returns the HTTP address of /metrics and /healthz, or "".
func (n *node) MetricsAddr() string {
	if n.httpLn == nil {
		return ""
	}
	return n.httpLn.Addr().String()
}

// Channels returns the channels served, sorted.
func (n *node) Channels() []string {
	out := make([]string, 0, len(n.chains))
	for id := range n.chains {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Failed delivers the error of a server that stopped on its own.
func (n *node) Failed() <-chan error { return n.failed }

// Close stops the node: the gRPC server gracefully (open streams get the
// shutdown timeout to end, then are cut), the chains, the ledgers and the
// HTTP server. It is idempotent.
func (n *node) Close() {
	n.closeOnce.Do(func() {
		if n.grpc != nil {
			done := make(chan struct{})
			go func() { n.grpc.GracefulStop(); close(done) }()
			t := time.NewTimer(n.cfg.shutdownTimeout)
			select {
			case <-done:
			case <-t.C:
				n.log.Warn("open streams at shutdown: closing them")
				n.grpc.Stop()
				<-done
			}
			t.Stop()
		} else if n.grpcLn != nil {
			n.grpcLn.Close()
		}
		if n.consenter != nil {
			n.consenter.Close()
		}
		for _, l := range n.ledgers {
			if err := l.Close(); err != nil {
				n.log.Error("closing ledger", "ledger", l.Path(), "err", err)
			}
		}
		if n.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			n.http.Shutdown(ctx)
			cancel()
		} else if n.httpLn != nil {
			n.httpLn.Close()
		}
		n.wg.Wait()
		if n.meters != nil {
			n.meters.Shutdown(context.Background())
		}
		n.log.Info("orderer stopped")
	})
}

// chainStatus describes a chain's readiness: "ready", "not ready: ..."
// (setting up Kafka, unable to consume, or a re-submitted config in
// flight) or "halted: ...".
func chainStatus(ch *consensus.Chain) string {
	switch err := ch.Available(); {
	case err == nil:
		return "ready"
	case errors.Is(err, consensus.ErrHalted):
		return "halted: " + err.Error()
	default:
		return "not ready: " + err.Error()
	}
}

// healthz reports each chain's readiness as JSON: 200 when every chain is
// ready, 503 otherwise.
func (n *node) healthz(w http.ResponseWriter, r *http.Request) {
	type chainHealth struct {
		Status string `json:"status"`
		Height uint64 `json:"height"`
	}
	resp := struct {
		Status   string                 `json:"status"`
		Channels map[string]chainHealth `json:"channels"`
	}{Status: "ok", Channels: make(map[string]chainHealth)}
	code := http.StatusOK
	for id, ch := range n.chains {
		st := chainStatus(ch)
		if st != "ready" {
			resp.Status, code = "unavailable", http.StatusServiceUnavailable
		}
		resp.Channels[id] = chainHealth{Status: st, Height: ch.Height()}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(resp)
}

// minLevel drops the records of h below level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.level && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(attrs), m.level}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{m.Handler.WithGroup(name), m.level}
}
