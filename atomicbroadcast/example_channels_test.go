package atomicbroadcast_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kafkaconsensus/kafkaconsensus/atomicbroadcast"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
)

// Example_twoChannels is a custom orderer of two channels: one Consenter,
// a chain and a file ledger per channel, and the AtomicBroadcast service
// over both, on loopback. (The embedded Kafka stands for a real cluster:
// give its seed brokers instead.)
func Example_twoChannels() {
	k, err := consensustest.StartKafka()
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()
	org, _ := msptest.NewCA("Org1MSP", msptest.WithNodeOUs())
	client, _ := org.Issue("client", msptest.WithOU(msptest.OUClient))
	cons, err := consensus.NewConsenter(consensus.WithSeedBrokers(k.Addrs()...),
		consensus.WithTopicSettings(consensus.TopicSettings{ReplicationFactor: 1, MinInsyncReplicas: 1}),
		consensus.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	var ledgers []*ledger.File
	defer func() {
		cons.Close() // the chains first, then their ledgers
		for _, l := range ledgers {
			l.Close()
		}
	}()
	channels := map[string]atomicbroadcast.Channel{}
	for _, name := range []string{"payments", "audit"} {
		genesis, _ := msptest.GenesisBlock(name, []*msptest.CA{org}, msptest.WithOrdererOrgs(org), msptest.WithBatchTimeout(50*time.Millisecond))
		dir, _ := os.MkdirTemp("", name)
		defer os.RemoveAll(dir)
		l, err := ledger.OpenFile(dir, ledger.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			log.Fatal(err)
		}
		ledgers = append(ledgers, l)
		chain, err := cons.NewChain(name, l, genesis)
		if err != nil {
			log.Fatal(err)
		}
		chain.Start()
		channels[name] = atomicbroadcast.Channel{Chain: chain, Ledger: l}
	}
	srv, _ := atomicbroadcast.NewServer(channels, atomicbroadcast.WithLogger(slog.New(slog.DiscardHandler)))
	gs := grpc.NewServer()
	ab.RegisterAtomicBroadcastServer(gs, srv)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go gs.Serve(ln)
	defer gs.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ch := range channels {
		if err := ch.Chain.(*consensus.Chain).WaitReady(ctx); err != nil {
			log.Fatal(err)
		}
	}
	conn, _ := grpc.NewClient(ln.Addr().String(), atomicbroadcast.DialOptions(insecure.NewCredentials(), atomicbroadcast.DefaultClientStallTimeout)...)
	defer conn.Close()
	stream, _ := ab.NewAtomicBroadcastClient(conn).Broadcast(ctx)
	for _, name := range []string{"payments", "audit"} {
		env, _ := client.Envelope(cb.HeaderType_ENDORSER_TRANSACTION, name, []byte("hello "+name))
		stream.Send(env)
		r, _ := stream.Recv()
		fmt.Println(name, r.GetStatus())
	}
	// Output:
	// payments SUCCESS
	// audit SUCCESS
}
