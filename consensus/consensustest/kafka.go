package consensustest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultBrokers is the number of brokers StartKafka starts unless told
// otherwise with WithBrokers or WithSeedPorts.
const DefaultBrokers = 3

// Kafka is an embedded, in-process Kafka cluster of several brokers, all
// listening on 127.0.0.1 (or the host of WithListenHost). It is safe for concurrent use. Start one with
// StartKafka and stop it with Close.
//
// Broker node IDs are 0 to n-1, in the order of Addrs. The fault methods
// that take node IDs apply to every broker when given none.
type Kafka struct {
	c     *kfake.Cluster
	addrs []string
	host  string // the brokers' IP address; "" for kfake's 127.0.0.1

	mu     sync.Mutex
	lns    []*trackedListener // index is the node ID
	conns  map[*trackedConn]struct{}
	closed bool
}

// KafkaOption configures StartKafka.
type KafkaOption func(*kafkaConfig)

type kafkaConfig struct {
	brokers    int
	brokersSet bool
	ports      []int
	host       string // "" means 127.0.0.1; see WithListenHost
	dataDir    string
	logger     *slog.Logger
	extra      []kfake.Opt
	tls        *tls.Config // with tlsSet; see WithTLS
	tlsSet     bool
	sasl       []saslUser // see WithSASLUser
}

// WithBrokers sets the number of brokers, overriding DefaultBrokers.
func WithBrokers(n int) KafkaOption {
	return func(c *kafkaConfig) { c.brokers, c.brokersSet = n, true }
}

// WithSeedPorts makes the brokers listen on the given ports of 127.0.0.1 (or
// of the host of WithListenHost), one broker per port, overriding random
// ports. A port of 0 is chosen at random.
func WithSeedPorts(ports ...int) KafkaOption {
	return func(c *kafkaConfig) { c.ports = slices.Clone(ports) }
}

// WithListenHost makes the brokers listen on host, an IP address of this
// machine, instead of 127.0.0.1, so that clients on other machines or in
// other network namespaces reach them: the brokers advertise the address
// they listen on. The brokers accept any client that reaches them (add
// WithSASLUser); the certificates of SelfSignedTLS are for 127.0.0.1 only.
func WithListenHost(host string) KafkaOption {
	return func(c *kafkaConfig) { c.host = host }
}

// WithDataDir persists the cluster's topics, logs and offsets in dir, so that
// a Kafka started again on the same dir after Close finds them. Without it,
// everything is kept in memory and lost on Close.
func WithDataDir(dir string) KafkaOption {
	return func(c *kafkaConfig) { c.dataDir = dir }
}

// WithLogger sends the brokers' logs to l. By default they are discarded.
func WithLogger(l *slog.Logger) KafkaOption {
	return func(c *kafkaConfig) { c.logger = l }
}

// WithClusterOpts passes options through to kfake.NewCluster, for example
// kfake.BrokerConfigs or kfake.SeedTopics. The options StartKafka derives
// from its own settings (number of brokers, ports, listener, data dir,
// logger, TLS, SASL users) are applied after these and take precedence.
// Prefer WithTLS and WithSASLUser to kfake.TLS and kfake.EnableSASL, which
// StartKafka cannot check.
func WithClusterOpts(opts ...kfake.Opt) KafkaOption {
	return func(c *kafkaConfig) { c.extra = append(c.extra, opts...) }
}

func (c *kafkaConfig) validate() error {
	if c.brokersSet && c.brokers < 1 {
		return fmt.Errorf("consensustest: WithBrokers(%d): need at least one broker", c.brokers)
	}
	if len(c.ports) > 0 {
		if c.brokersSet && c.brokers != len(c.ports) {
			return fmt.Errorf("consensustest: WithBrokers(%d) contradicts WithSeedPorts with %d ports", c.brokers, len(c.ports))
		}
		for _, p := range c.ports {
			if p < 0 || p > 65535 {
				return fmt.Errorf("consensustest: WithSeedPorts: invalid port %d", p)
			}
		}
		c.brokers = len(c.ports)
	}
	if c.host != "" {
		if ip := net.ParseIP(c.host); ip == nil || ip.IsUnspecified() {
			return fmt.Errorf("consensustest: WithListenHost(%q): want the IP address of one interface (the brokers advertise it)", c.host)
		}
	}
	return c.validateSecurity()
}

// StartKafka starts an embedded Kafka cluster on 127.0.0.1 (see
// WithListenHost), by default with DefaultBrokers brokers on random ports,
// in plaintext and without
// authentication (see WithTLS and WithSASLUser). The caller must Close it.
func StartKafka(opts ...KafkaOption) (*Kafka, error) {
	cfg := kafkaConfig{brokers: DefaultBrokers}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}

	k := &Kafka{host: cfg.host, conns: make(map[*trackedConn]struct{})}
	kopts := slices.Clone(cfg.extra)
	kopts = append(kopts,
		kfake.NumBrokers(cfg.brokers),
		kfake.ListenFn(k.listen),
	)
	if len(cfg.ports) > 0 {
		kopts = append(kopts, kfake.Ports(cfg.ports...))
	}
	if cfg.dataDir != "" {
		kopts = append(kopts, kfake.DataDir(cfg.dataDir))
	}
	if cfg.logger != nil {
		kopts = append(kopts, kfake.WithLogger(slogLogger{cfg.logger}))
	}
	if cfg.tls != nil {
		// kfake wraps the listeners of k.listen, so TLS runs above the
		// tracked connections.
		kopts = append(kopts, kfake.TLS(cfg.tls))
	}
	if len(cfg.sasl) > 0 {
		kopts = append(kopts, kfake.EnableSASL())
		for _, u := range cfg.sasl {
			kopts = append(kopts, kfake.Superuser(u.mechanism, u.user, u.password))
		}
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		k.closeConns(nil)
		return nil, fmt.Errorf("consensustest: starting kafka: %w", err)
	}
	k.c = c
	k.addrs = c.ListenAddrs()
	if len(cfg.sasl) > 0 {
		k.rejectUnknownCredentials(cfg.sasl)
	}
	return k, nil
}

// Addrs returns the brokers' host:port addresses, indexed by node ID, to use
// as seed brokers.
func (k *Kafka) Addrs() []string { return slices.Clone(k.addrs) }

// Cluster returns the underlying kfake cluster, for what Kafka does not wrap:
// Cluster().Fault for targeted faults (a topic, a node, a request key),
// ControlKey, MoveTopicPartition, ShufflePartitionLeaders and so on.
func (k *Kafka) Cluster() *kfake.Cluster { return k.c }

// Close stops the cluster and closes every client connection to it. With
// WithDataDir, the state is saved first. Close is idempotent.
func (k *Kafka) Close() {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	k.closed = true
	k.mu.Unlock()
	k.c.Close()
	k.closeConns(nil)
}

// FailProduce answers the next n produce requests (n < 0: all of them until
// the returned handle's Remove is called) with err for every partition
// written to; the records are not appended. A nil err means
// kerr.NotEnoughReplicas, the answer of a real broker whose in-sync replica
// set shrank below min.insync.replicas: it is retriable, so a kgo producer
// retries and the records are delivered once the fault is used up or
// removed. Pass a non-retriable code, such as kerr.InvalidRecord or
// kerr.TopicAuthorizationFailed, to make kgo fail the records with it.
// Before retrying, kgo refreshes metadata at most once per kgo.MetadataMinAge
// (5s by default); tests lower it to keep retries fast.
//
// The handle reports how many requests were failed (Hits, Wait).
func (k *Kafka) FailProduce(n int, err *kerr.Error) *kfake.FaultHandle {
	if err == nil {
		err = kerr.NotEnoughReplicas
	}
	return k.fault(kmsg.Produce, n, err)
}

// FailFetch answers the next n fetch requests (n < 0: all of them until the
// returned handle's Remove is called) with err for every partition fetched.
// A nil err means kerr.UnknownServerError, which is not retriable: a kgo
// consumer returns it from PollFetches (Fetches.Errors) and keeps fetching
// from the same offset, so records arrive once the fault is used up or
// removed. A retriable code, such as kerr.NotLeaderForPartition, is retried
// inside kgo and only reaches PollFetches with kgo.KeepRetryableFetchErrors.
func (k *Kafka) FailFetch(n int, err *kerr.Error) *kfake.FaultHandle {
	if err == nil {
		err = kerr.UnknownServerError
	}
	return k.fault(kmsg.Fetch, n, err)
}

func (k *Kafka) fault(key kmsg.Key, n int, err *kerr.Error) *kfake.FaultHandle {
	if n == 0 {
		return k.c.Fault() // nothing to fail; a handle with no faults
	}
	if n < 0 {
		n = -1
	}
	return k.c.Fault(kfake.Fault{Keys: []kmsg.Key{key}, Err: err, Count: n})
}

// DropConnections closes every open client connection to the given brokers
// (all brokers when none are given). Clients see the connection end, then
// reconnect: the brokers keep accepting new connections unless paused.
func (k *Kafka) DropConnections(nodes ...int32) {
	k.closeConns(nodes)
}

// Pause makes the given brokers (all brokers when none are given)
// unreachable, as when a broker is down: their open client connections are
// reset, and their listeners are closed so that new connections are
// refused. Clients see "connection reset" and "connection refused", network
// errors they retry, as they would with a real outage; a broker that
// accepted connections only to close them would instead look like a TLS or
// SASL mismatch to franz-go. The brokers keep their data. Resume undoes it.
func (k *Kafka) Pause(nodes ...int32) {
	k.mu.Lock()
	for i, ln := range k.lns {
		if len(nodes) == 0 || slices.Contains(nodes, int32(i)) {
			ln.pauseLocked()
		}
	}
	k.mu.Unlock()
	k.resetConns(nodes)
}

// Resume makes brokers paused with Pause reachable again (all brokers when
// none are given): each listens again on its address. Clients reconnect on
// their next attempt. It fails if a broker's port was taken while it was
// paused; the other brokers are resumed nevertheless.
func (k *Kafka) Resume(nodes ...int32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	var errs []error
	for i, ln := range k.lns {
		if len(nodes) == 0 || slices.Contains(nodes, int32(i)) {
			if err := ln.resumeLocked(); err != nil {
				errs = append(errs, fmt.Errorf("consensustest: resuming broker %d: %w", i, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Paused reports whether broker node is paused.
func (k *Kafka) Paused(node int32) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if node < 0 || int(node) >= len(k.lns) {
		return false
	}
	l := k.lns[node]
	return l.ln == nil && !l.closed
}

// Leader returns the node ID of the broker that leads partition of topic,
// for faults aimed at it (Pause, DropConnections). It fails if the topic or
// the partition does not exist, or once the Kafka is closed.
func (k *Kafka) Leader(topic string, partition int32) (int32, error) {
	k.mu.Lock()
	closed := k.closed
	k.mu.Unlock()
	if closed {
		return -1, errors.New("consensustest: Leader: kafka closed")
	}
	n := k.c.LeaderFor(topic, partition)
	if n < 0 {
		return -1, fmt.Errorf("consensustest: Leader: no partition %d of topic %q", partition, topic)
	}
	return n, nil
}

// resetConns closes the connections to the given nodes (all if nodes is
// empty) with a TCP reset, as a crashed host's kernel answers.
func (k *Kafka) resetConns(nodes []int32) {
	k.mu.Lock()
	for c := range k.conns {
		if len(nodes) == 0 || slices.Contains(nodes, c.ln.node) {
			if tc, ok := c.Conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // the close then resets
			}
		}
	}
	k.mu.Unlock()
	k.closeConns(nodes)
}

// closeConns closes the connections to the given nodes, all if nodes is
// empty.
func (k *Kafka) closeConns(nodes []int32) {
	k.mu.Lock()
	var cs []*trackedConn
	for c := range k.conns {
		if len(nodes) == 0 || slices.Contains(nodes, c.ln.node) {
			cs = append(cs, c)
			delete(k.conns, c)
		}
	}
	k.mu.Unlock()
	for _, c := range cs {
		c.Conn.Close()
	}
}

// listen is kfake's ListenFn. Brokers are created in node ID order, and
// brokers added later through Cluster().AddNode are numbered after them.
// kfake asks for 127.0.0.1 addresses; with WithListenHost, the port is
// taken on that host instead.
func (k *Kafka) listen(network, addr string) (net.Listener, error) {
	if k.host != "" {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		addr = net.JoinHostPort(k.host, port)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	tl := &trackedListener{k: k, node: int32(len(k.lns)), network: network, addr: ln.Addr(), ln: ln}
	k.lns = append(k.lns, tl)
	return tl, nil
}

// trackedListener is a broker's listener. It records the connections it
// accepts, so that they can be dropped, and closes its socket while its
// broker is paused, listening again on the same address on resume; kfake's
// accept loop meanwhile waits in Accept.
type trackedListener struct {
	k       *Kafka
	node    int32
	network string
	addr    net.Addr

	// Guarded by k.mu.
	ln      net.Listener  // nil while paused or closed
	closed  bool          // closed by kfake
	resumed chan struct{} // while paused: closed on resume or close
}

func (l *trackedListener) Addr() net.Addr { return l.addr }

func (l *trackedListener) Accept() (net.Conn, error) {
	for {
		l.k.mu.Lock()
		ln, resumed, closed := l.ln, l.resumed, l.closed
		l.k.mu.Unlock()
		if closed {
			return nil, net.ErrClosed
		}
		if ln == nil {
			<-resumed
			continue
		}
		c, err := ln.Accept()
		l.k.mu.Lock()
		current := l.ln == ln && !l.closed && !l.k.closed
		if err == nil && current {
			tc := &trackedConn{Conn: c, ln: l}
			l.k.conns[tc] = struct{}{}
			l.k.mu.Unlock()
			return tc, nil
		}
		paused := l.ln != ln && !l.closed
		l.k.mu.Unlock()
		switch {
		case err == nil:
			c.Close() // accepted as the broker was paused or closed
		case !paused:
			return nil, err
		}
	}
}

func (l *trackedListener) Close() error {
	l.k.mu.Lock()
	ln := l.ln
	if !l.closed {
		l.closed = true
		l.ln = nil
		if l.resumed != nil {
			close(l.resumed)
			l.resumed = nil
		}
	}
	l.k.mu.Unlock()
	if ln == nil {
		return nil
	}
	return ln.Close()
}

// pauseLocked closes the listener's socket; k.mu is held.
func (l *trackedListener) pauseLocked() {
	if l.ln == nil || l.closed {
		return
	}
	l.ln.Close()
	l.ln = nil
	l.resumed = make(chan struct{})
}

// resumeLocked listens again on the listener's address; k.mu is held. The
// port may be briefly unavailable (a client connection may hold it as its
// own), so it tries for a second.
func (l *trackedListener) resumeLocked() error {
	if l.ln != nil || l.closed {
		return nil
	}
	var err error
	for range 20 {
		var ln net.Listener
		if ln, err = net.Listen(l.network, l.addr.String()); err == nil {
			l.ln = ln
			close(l.resumed)
			l.resumed = nil
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

type trackedConn struct {
	net.Conn
	ln *trackedListener
}

func (c *trackedConn) Close() error {
	c.ln.k.mu.Lock()
	delete(c.ln.k.conns, c)
	c.ln.k.mu.Unlock()
	err := c.Conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil // already dropped by the Kafka
	}
	return err
}

// slogLogger adapts a *slog.Logger to kfake.Logger.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lvl slog.Level
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
	case kfake.LogLevelInfo:
		lvl = slog.LevelInfo
	case kfake.LogLevelDebug:
		lvl = slog.LevelDebug
	default:
		return
	}
	ctx := context.Background()
	if !s.l.Enabled(ctx, lvl) {
		return
	}
	s.l.Log(ctx, lvl, fmt.Sprintf(format, args...), "component", "kfake")
}

// DeleteRecords deletes the records of partition 0 of topic before offset,
// as retention or kafka-delete-records do: the log then starts at offset.
// Like DeleteTopic, it connects in plaintext without authentication.
func (k *Kafka) DeleteRecords(ctx context.Context, topic string, offset int64) error {
	adm, closeAdm, err := k.admin()
	if err != nil {
		return err
	}
	defer closeAdm()
	offs := make(kadm.Offsets)
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: offset})
	res, err := adm.DeleteRecords(ctx, offs)
	if err != nil {
		return fmt.Errorf("consensustest: deleting records of %s: %w", topic, err)
	}
	if r, ok := res.Lookup(topic, 0); !ok || r.Err != nil {
		return fmt.Errorf("consensustest: deleting records of %s before %d: %v", topic, offset, r.Err)
	}
	return nil
}

// DeleteTopic deletes topic. A chain recreates its topic when it starts
// (with a new topic ID); a node whose ledger came from the old topic then
// refuses it (consensus.ErrLogReplaced).
func (k *Kafka) DeleteTopic(ctx context.Context, topic string) error {
	adm, closeAdm, err := k.admin()
	if err != nil {
		return err
	}
	defer closeAdm()
	res, err := adm.DeleteTopic(ctx, topic)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return fmt.Errorf("consensustest: deleting topic %s: %w", topic, err)
	}
	return nil
}

// admin returns an admin client of the cluster and its closer. It
// connects in plaintext without authentication: on a cluster started with
// WithTLS or WithSASLUser, use kadm with a client of your own.
func (k *Kafka) admin() (*kadm.Client, func(), error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.addrs...))
	if err != nil {
		return nil, nil, fmt.Errorf("consensustest: admin client: %w", err)
	}
	return kadm.NewClient(cl), cl.Close, nil
}
