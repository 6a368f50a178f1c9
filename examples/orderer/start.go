package main

import (
	"context"
	"crypto/tls"
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
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/atomicbroadcast"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// nodeConfig is what the start subcommand runs. A zero window, peer
// timeout, limit or budget means the atomicbroadcast package's default.
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
	limits          limitFlags

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
	fs.IntVar(&c.window, "window", atomicbroadcast.DefaultWindow, "envelopes of one Broadcast stream that may be read and not yet answered at once")
	c.limits.register(fs)
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
	if err := c.check(); err != nil {
		return nil, err
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
	if err := n.serveGRPC(channels); err != nil {
		return nil, err
	}
	if err := n.serveMetrics(reg); err != nil {
		return nil, err
	}
	for _, ch := range n.chains {
		ch.Start()
	}
	n.serve("grpc", func() error { return n.grpc.Serve(n.grpcLn) })
	n.log.Info("orderer started", "listen", n.Addr(), "channels", n.Channels(), "brokers", c.brokers)
	return n, nil
}

// check refuses a node configuration that misses what start needs or
// whose flags contradict each other.
func (c nodeConfig) check() error {
	switch {
	case len(c.brokers) == 0:
		return errors.New("start: --brokers is required")
	case len(c.genesis) == 0:
		return errors.New("start: at least one --genesis is required")
	case c.dataDir == "":
		return errors.New("start: --data is required")
	}
	if err := c.signer.check(false); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if _, _, err := c.tls.config(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if err := c.limits.check(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	return nil
}

// serveGRPC builds the AtomicBroadcast server of channels with the
// node's limits, TLS and binding, and listens (serving starts once the
// chains are started).
func (n *node) serveGRPC(channels map[string]atomicbroadcast.Channel) error {
	c := n.cfg
	sopts := append(c.limits.serverOpts(), atomicbroadcast.WithLogger(n.log.With("component", "server")),
		atomicbroadcast.WithTLSBinding(c.tls.tlsBinding()))
	if c.window != 0 {
		sopts = append(sopts, atomicbroadcast.WithWindow(c.window))
	}
	srv, err := atomicbroadcast.NewServer(channels, sopts...)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	maxRecv := int(c.limits.maxRecvMsgSize)
	if maxRecv == 0 {
		maxRecv = atomicbroadcast.MaxRecvMsgSize(channels)
	}
	gopts, err := atomicbroadcast.ServerOptions(atomicbroadcast.GRPCLimits{MaxRecvMsgSize: maxRecv, MaxConcurrentStreams: uint32(c.limits.streamsPerConn)})
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	serverTLS, clientCAs, err := c.tls.config()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if serverTLS != nil {
		if c.tls.clientAuth {
			serverTLS = atomicbroadcast.MutualTLS(serverTLS, channels, clientCAs...)
		}
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(serverTLS)))
	}
	n.grpc = grpc.NewServer(gopts...)
	ab.RegisterAtomicBroadcastServer(n.grpc, srv)
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	maxConns := c.limits.maxConnections
	if maxConns == 0 {
		maxConns = atomicbroadcast.DefaultMaxConnections
	}
	n.grpcLn = atomicbroadcast.LimitListener(ln, maxConns)
	n.log.Info("serving with limits", "max_recv_message_bytes", maxRecv, "max_connections", maxConns, "tls_client_auth", c.tls.clientAuth, "tls_binding", c.tls.tlsBinding())
	return nil
}

// serveMetrics serves /metrics (from reg) and /healthz on
// --metrics-listen, when given.
func (n *node) serveMetrics(reg *prometheus.Registry) error {
	if n.cfg.metricsListen == "" {
		return nil
	}
	var err error
	if n.httpLn, err = net.Listen("tcp", n.cfg.metricsListen); err != nil {
		return fmt.Errorf("start: metrics: %w", err)
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
	return nil
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
		consensus.WithTopicSettings(consensus.TopicSettings{ReplicationFactor: int16(c.replication), MinInsyncReplicas: c.minInsync,
			MaxMessageBytes: int32(min(int64(c.kafka.maxMessageBytes), 1<<31-1))}),
		consensus.WithKgoOpts(
			kgo.WithHooks(k.Hooks()...),
			kgo.WithLogger(consensus.KafkaLogger(slog.New(minLevel{n.log.Handler(), c.kafkaLogLevel}).With("component", "kafka-client"))),
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
	var opts []atomicbroadcast.PeerSourceOption
	var clientCert []tls.Certificate
	if c.peerTLS.caFile != "" && c.tls.cert != "" {
		// The node shows peers that require client certificates its own
		// TLS certificate, and binds its seek requests to it.
		cert, err := tls.LoadX509KeyPair(c.tls.cert, c.tls.key)
		if err != nil {
			return nil, fmt.Errorf("start: TLS: %w", err)
		}
		clientCert = append(clientCert, cert)
		opts = append(opts, atomicbroadcast.WithTLSCertHash(atomicbroadcast.CertHash(cert.Certificate[0])))
	}
	creds, err := clientCredentials(c.peerTLS.caFile, c.peerTLS.serverName, clientCert...)
	if err != nil {
		return nil, fmt.Errorf("start: --peer-tls-ca: %w", err)
	}
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
	id, err := genesisChannel(genesis)
	if err != nil {
		return fmt.Errorf("start: --genesis %s: %w", file, err)
	}
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

// genesisChannel returns the channel of a genesis block, of either
// configuration format, after checking that its configuration reads
// (consensus.DefaultConfigParser).
func genesisChannel(genesis *cb.Block) (string, error) {
	if genesis.GetHeader().GetNumber() != 0 || len(genesis.GetData().GetData()) != 1 {
		return "", errors.New("not a genesis block: want block 0 with one envelope")
	}
	if _, err := consensus.DefaultConfigParser()(genesis); err != nil {
		return "", err
	}
	env, err := protoutil.UnmarshalEnvelope(genesis.Data.Data[0])
	if err != nil {
		return "", err
	}
	h, err := protoutil.EnvelopeHeaders(env)
	if err != nil {
		return "", err
	}
	return h.ChannelHeader.GetChannelId(), nil
}
