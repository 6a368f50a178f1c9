package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// channelsResult is what the channels measurement reports.
type channelsResult struct {
	Channels        int     `json:"channels"`
	ReadySeconds    float64 `json:"ready_s"`
	RSSBytes        int64   `json:"rss_bytes"`
	Goroutines      int     `json:"goroutines"`
	Connections     int64   `json:"connections"`
	Busy            int     `json:"busy_channels"`
	Envelopes       int     `json:"envelopes"`
	OneEnvPerS      float64 `json:"one_channel_env_per_s"`
	BusyEnvPerS     float64 `json:"busy_channels_env_per_s"`
	BusyOverOneRate float64 `json:"ratio"`
}

// connCount counts the open connections of a Kafka client.
type connCount struct{ n atomic.Int64 }

func (c *connCount) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil {
		c.n.Add(1)
	}
}

func (c *connCount) OnBrokerDisconnect(kgo.BrokerMetadata, net.Conn) { c.n.Add(-1) }

// runChannels measures one node serving n channels: the time until every
// chain is ready, the process's RSS, goroutines and open Kafka
// connections; then the throughput of busy channels sharing a load against
// one channel carrying all of it, alternately.
func runChannels(ctx context.Context, out io.Writer, n, busy, envelopes, inFlight int) error {
	if n < 1 || busy < 1 || busy > n {
		return fmt.Errorf("-channels %d -busy %d: want 1 <= busy <= channels", n, busy)
	}
	k, err := consensustest.StartKafka(consensustest.WithBrokers(*brokers))
	if err != nil {
		return err
	}
	defer k.Close()
	rf := int16(min(*brokers, 3))
	conns := new(connCount)
	cons, err := consensus.NewConsenter(consensus.WithSeedBrokers(k.Addrs()...),
		consensus.WithLogger(slog.New(slog.DiscardHandler)),
		consensus.WithTopicSettings(consensus.TopicSettings{ReplicationFactor: rf, MinInsyncReplicas: int(min(rf, 2))}),
		consensus.WithKgoOpts(kgo.WithHooks(conns)))
	if err != nil {
		return err
	}
	defer cons.Close()
	ca, err := msptest.NewCA("Org1MSP")
	if err != nil {
		return err
	}
	start := time.Now()
	chains := make([]*consensus.Chain, n)
	for i := range chains {
		name := fmt.Sprintf("ch%04d", i)
		g, err := msptest.GenesisBlock(name, []*msptest.CA{ca}, msptest.WithOrdererOrgs(ca),
			msptest.WithBatchSize(uint32(*maxCount), 10<<20, uint32(*prefer)), msptest.WithBatchTimeout(*timeout))
		if err != nil {
			return err
		}
		if chains[i], err = cons.NewChain(name, ledger.NewMemory(), g); err != nil {
			return err
		}
		chains[i].Start()
	}
	for _, ch := range chains {
		if err := ch.WaitReady(ctx); err != nil {
			return err
		}
	}
	r := channelsResult{Channels: n, ReadySeconds: time.Since(start).Seconds(), Goroutines: runtime.NumGoroutine(),
		Connections: conns.n.Load(), RSSBytes: rss(), Busy: busy, Envelopes: envelopes}

	env := &cb.Envelope{Payload: make([]byte, *size-72), Signature: make([]byte, 72)}
	rand.Read(env.Payload)
	var one, many []float64
	for round := range 2 * *rounds {
		targets := chains[:1]
		if round%2 == 1 {
			targets = chains[:busy]
		}
		stop := profileBusy(round%2 == 1 && round == 2**rounds-1)
		rate, err := spread(ctx, targets, env, envelopes, inFlight)
		stop()
		if err != nil {
			return err
		}
		if round%2 == 0 {
			one = append(one, rate)
		} else {
			many = append(many, rate)
		}
	}
	r.OneEnvPerS, r.BusyEnvPerS = median(one), median(many)
	r.BusyOverOneRate = r.BusyEnvPerS / r.OneEnvPerS
	if *jsonOut {
		return json.NewEncoder(out).Encode(r)
	}
	fmt.Fprintf(out, "%d channels on one node: ready in %.2fs, RSS %d MiB, %d goroutines, %d Kafka connections\n",
		n, r.ReadySeconds, r.RSSBytes>>20, r.Goroutines, r.Connections)
	fmt.Fprintf(out, "%d envelopes, %d in flight: 1 channel %.0f env/s, %d channels %.0f env/s, ratio %.2f\n",
		envelopes, inFlight, r.OneEnvPerS, busy, r.BusyEnvPerS, r.BusyOverOneRate)
	return nil
}

// spread orders total envelopes over targets, inFlight at once in all,
// and returns the envelopes per second until every one is in its ledger.
func spread(ctx context.Context, targets []*consensus.Chain, env *cb.Envelope, total, inFlight int) (float64, error) {
	heights := make([]uint64, len(targets))
	for i, ch := range targets {
		heights[i] = ch.Ledger().Height()
	}
	sem := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	start := time.Now()
	for i := range total {
		ch := targets[i%len(targets)]
		sem <- struct{}{}
		wg.Add(1)
		ch.OrderAsync(ctx, env, 0, func(err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
			<-sem
			wg.Done()
		})
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		return 0, *p
	}
	for i, ch := range targets {
		want := total / len(targets)
		if i < total%len(targets) {
			want++
		}
		if err := waitEnvelopes(ctx, ch.Ledger(), heights[i], want); err != nil {
			return 0, err
		}
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

// waitEnvelopes waits until the blocks of l from height from hold want
// envelopes.
func waitEnvelopes(ctx context.Context, l consensus.Ledger, from uint64, want int) error {
	got := 0
	it := l.Iterator(from)
	defer it.Close()
	for got < want {
		b, err := it.Next(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %d envelopes, %d so far: %w", want, got, err)
		}
		got += len(b.GetData().GetData())
	}
	return nil
}

// rss returns the process's resident set size, or 0 where /proc does not
// tell it.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// median returns the median of xs (0 when empty).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

// profileBusy starts the -cpuprofile profile when on, for the last round
// of the busy channels, and returns what stops it.
func profileBusy(on bool) func() {
	if !on || *cpuProf == "" {
		return func() {}
	}
	f, err := os.Create(*cpuProf)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
