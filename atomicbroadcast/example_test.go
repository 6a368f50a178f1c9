package atomicbroadcast_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kafkaconsensus/kafkaconsensus/atomicbroadcast"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
)

// Example serves the channel of an ordering node (here a consensustest
// cluster of one node on an embedded Kafka) on loopback, broadcasts one
// envelope and delivers the block that holds it.
func Example() {
	k, err := consensustest.StartKafka()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer k.Close()
	cluster, err := consensustest.NewCluster(k.Addrs(), consensustest.WithNodes(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cluster.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	if err := cluster.WaitReady(ctx); err != nil {
		fmt.Println(err)
		return
	}

	// The server: one Channel per channel, the chain and the ledger it
	// writes.
	channel := consensustest.DefaultChannel
	node := cluster.Node(0)
	channels := map[string]atomicbroadcast.Channel{
		channel: {Chain: node.Chain(channel), Ledger: node.Ledger(channel)},
	}
	srv, err := atomicbroadcast.NewServer(channels, atomicbroadcast.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Println(err)
		return
	}
	// The gRPC server's bounds: the largest message the channels allow,
	// fixed flow-control windows, keepalive enforcement; and a bounded
	// number of connections.
	gopts, err := atomicbroadcast.ServerOptions(atomicbroadcast.GRPCLimits{MaxRecvMsgSize: atomicbroadcast.MaxRecvMsgSize(channels)})
	if err != nil {
		fmt.Println(err)
		return
	}
	gs := grpc.NewServer(gopts...)
	ab.RegisterAtomicBroadcastServer(gs, srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	go gs.Serve(atomicbroadcast.LimitListener(ln, atomicbroadcast.DefaultMaxConnections))
	defer gs.Stop()

	// A client: Broadcast one envelope signed by a writer of the channel.
	conn, err := grpc.NewClient(ln.Addr().String(), atomicbroadcast.DialOptions(insecure.NewCredentials(), atomicbroadcast.DefaultClientStallTimeout)...)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	client := ab.NewAtomicBroadcastClient(conn)
	env, err := cluster.Envelope(channel, []byte("hello"))
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := atomicbroadcast.BroadcastOne(ctx, client, env)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("broadcast:", resp.GetStatus())

	// Deliver block 1, the first after the genesis block, as a reader of
	// the channel: the server waits until it is written.
	seek, err := atomicbroadcast.NewSeekEnvelope(cluster.Client(), channel, &ab.SeekInfo{
		Start: &ab.SeekPosition{Type: &ab.SeekPosition_Specified{Specified: &ab.SeekSpecified{Number: 1}}},
		Stop:  &ab.SeekPosition{Type: &ab.SeekPosition_Specified{Specified: &ab.SeekSpecified{Number: 1}}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	st, err := atomicbroadcast.ReadBlocks(ctx, client, seek, func(b *cb.Block) error {
		data, _, err := consensustest.EnvelopeData(b.GetData().GetData()[0])
		fmt.Printf("block %d: %q\n", b.GetHeader().GetNumber(), data)
		return err
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("deliver:", st)
	// Output:
	// broadcast: SUCCESS
	// block 1: "hello"
	// deliver: SUCCESS
}
