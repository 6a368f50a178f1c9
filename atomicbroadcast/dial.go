package atomicbroadcast

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
)

// DefaultClientStallTimeout is the stall timeout of the connections a
// PeerSource dials, and the one clients should give DialOptions unless
// they have a reason to choose another: the same as the ordering node's
// own stall timeout towards Kafka (consensus.DefaultStallTimeout).
const DefaultClientStallTimeout = consensus.DefaultStallTimeout

// ClientKeepaliveTime is how long a connection dialled with a stall
// timeout may carry nothing before the client pings the node: a minute,
// Fabric's client default. It is no shorter than the least interval any
// server here allows (GRPCLimits.KeepaliveMinTime, 15 seconds by default)
// or a Fabric orderer allows (General.Keepalive.ServerMinInterval, a
// minute by default), so that no server takes the pings for abuse and
// closes the connection.
const ClientKeepaliveTime = time.Minute

// DialOptions returns the gRPC dial options of a client of ordering nodes:
// the transport credentials creds (for plaintext,
// insecure.NewCredentials()), MaxMessageBytes as the largest message sent
// and received (a block may exceed gRPC's default of 4 MiB), and, when
// stall is positive, keepalive.
//
// With keepalive, a connection that has carried nothing for
// ClientKeepaliveTime while a stream is open is pinged, and a connection
// whose ping, or whose data sent, goes unacknowledged for stall is closed
// (on Linux gRPC sets the socket's TCP_USER_TIMEOUT to stall). A
// connection cut by a network partition then fails its streams, and the
// next stream dials the node afresh, instead of queueing behind TCP
// retransmissions that back off for as long as the link is down. In the
// multi-host tests, clients cut from a node for 5 seconds were
// acknowledged by it again 0.05 to 1.1 seconds after the link came back
// with a stall timeout of 2 seconds, against 1.5 to 1.6 seconds without
// keepalive (6 runs each). A stall of 0 or less leaves keepalive off.
//
// Append options of your own after these: a later keepalive or call
// option replaces the one set here.
func DialOptions(creds credentials.TransportCredentials, stall time.Duration) []grpc.DialOption {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
	}
	if stall > 0 {
		opts = append(opts, grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: ClientKeepaliveTime, Timeout: stall}))
	}
	return opts
}
