package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The partition tests run the embedded Kafka (orderer kafka, three
// brokers), three orderer nodes (orderer start) and the clients each on a
// host of its own: five network namespaces plugged into a bridge
// (internal/netns), 10.213.0.1 for Kafka, .2 to .4 for the nodes, .5 for
// the clients. While the clients broadcast, a test cuts the network
// between hosts (netns.Network.Cut drops the packets of a pair at the
// switch, silently; Disconnect pulls a host's cable), restarts nodes, and
// heals. It then stops the load, waits until every node is ready at the
// same height, stops the nodes, reads their ledger files and checks, with
// consensustest.CheckAgreement, that the ledgers are identical and hold
// every envelope the clients had acknowledged exactly once.
//
// The test polls each node's /healthz from inside the node's host, so that
// partitions do not hide what the node says, and logs a summary: a
// timeline of the nodes' states and of what the test did, and what the
// clients saw (envelopes acknowledged, failed by outcome, sent again).
//
// The nodes run with short timings (partitionNodeFlags) so that a silent
// broker is noticed in about three seconds. The tests need root and
// iproute2 (ip, tc); they skip with the reason elsewhere, with -short, and
// when KAFKACONSENSUS_NO_NETNS is set.

// TestPartitionNodeFromKafka cuts orderer1 from Kafka while the clients
// still reach it: its chain goes errored, it answers Broadcast with
// SERVICE_UNAVAILABLE and STRICT Deliver too, BEST_EFFORT Deliver serves
// the blocks it wrote, and the clients order through the other nodes.
// Healed, it catches up.
func TestPartitionNodeFromKafka(t *testing.T) {
	pc := newPartitionCluster(t)
	n1 := pc.nodes[1]
	pc.startLoad()
	time.Sleep(2 * time.Second)
	written := pc.state(1).height
	cutAt := pc.cut(n1.host, pc.kafka)
	d := pc.waitFor("orderer1 errored", 30*time.Second, func() bool { return pc.state(1).state == stateErrored })
	pc.obs.mark("orderer1 errored %v after the cut", d.Round(time.Millisecond))

	res := pc.probe(1)
	require.Equal(t, "SERVICE_UNAVAILABLE", res.Broadcast, res.BroadcastInfo)
	require.Equal(t, "SUCCESS", res.BestEffortStatus)
	require.GreaterOrEqual(t, uint64(res.BestEffortBlocks), written, "BEST_EFFORT served fewer blocks than orderer1 had written before the cut")
	require.Equal(t, "SERVICE_UNAVAILABLE", res.StrictStatus)
	require.Zero(t, res.StrictBlocks)
	for _, i := range []int{0, 2} {
		require.Equal(t, stateReady, pc.state(i).state, pc.nodes[i].name)
	}

	time.Sleep(2 * time.Second)
	healAt := pc.heal(n1.host, pc.kafka)
	pc.waitReadyAt(1, pc.maxHeight(), healAt, "the heal")
	pc.waitClientsBack(1, healAt, "the heal")
	time.Sleep(time.Second)
	events := pc.finish("node cut off from Kafka, reachable by clients")
	require.Positive(t, acks(events, "", cutAt, healAt), "no envelope acknowledged while orderer1 was cut off")
}

// TestPartitionNodeFromClients cuts orderer1 from the clients' host only:
// it stays ready and keeps writing the blocks of what the others order,
// the clients fail over to the other nodes, and come back once healed.
// Their connection to orderer1, with data unacknowledged since the cut, is
// closed after its stall timeout (2s, see atomicbroadcast.DialOptions) and
// dialled again; without it, it would wait for TCP's next retransmission,
// which backs off while the link is cut.
func TestPartitionNodeFromClients(t *testing.T) {
	pc := newPartitionCluster(t)
	n1 := pc.nodes[1]
	pc.startLoad()
	time.Sleep(2 * time.Second)
	cutAt := pc.cut(n1.host, pc.client)
	h := pc.state(1).height
	time.Sleep(5 * time.Second)
	require.Equal(t, []string{stateReady}, pc.obs.statesSince(1, cutAt), "orderer1's states while cut off from the clients")
	require.Greater(t, pc.state(1).height, h, "orderer1 wrote no block while cut off from the clients")
	healAt := pc.heal(n1.host, pc.client)
	pc.waitClientsBack(1, healAt, "the heal")
	time.Sleep(time.Second)
	events := pc.finish("node cut off from its clients only")
	require.Zero(t, acks(events, n1.addr(), cutAt, healAt), "envelopes sent to orderer1 while cut off were acknowledged")
	require.Positive(t, acks(events, "", cutAt, healAt), "no envelope acknowledged while orderer1 was cut off")
}

// TestPartitionKafkaFromAll disconnects Kafka's host from every node, and
// restarts orderer2 meanwhile, for longer than the nodes' short retry
// phase (2s): every node goes unavailable, orderer2 retries its Kafka
// set-up through the short phase into the long one (every second), and
// none halts. Once Kafka is back, every node is ready again, and the
// clients' envelopes are acknowledged again by each. The producer
// connections of the nodes that stayed up, with a request in flight at the
// cut, are closed after --kafka-stall-timeout (2s) and dialled again;
// without it they would wait for TCP's next retransmission, which backs
// off while the link is down, or for the produce request's own deadline
// (franz-go's ProduceRequestTimeout, 10s, plus --kafka-request-timeout).
func TestPartitionKafkaFromAll(t *testing.T) {
	pc := newPartitionCluster(t)
	pc.startLoad()
	time.Sleep(2 * time.Second)
	require.NoError(t, pc.kafka.Disconnect())
	pc.obs.mark("kafka disconnected from every node (its switch port down)")
	cutAt := time.Now()
	pc.restartNode(2)
	restartedAt := time.Now()
	pc.waitFor("every node unavailable", 30*time.Second, func() bool {
		return pc.state(0).state == stateErrored && pc.state(1).state == stateErrored && pc.state(2).state == stateStarting
	})
	pc.obs.mark("every node unavailable, %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	allDownAt := time.Now()
	res := pc.probe(0)
	require.Equal(t, "SERVICE_UNAVAILABLE", res.Broadcast, res.BroadcastInfo)
	require.Equal(t, "SUCCESS", res.BestEffortStatus)
	require.Equal(t, "SERVICE_UNAVAILABLE", res.StrictStatus)
	// orderer2's set-up has been failing for 5s: 2s of retries every
	// 200ms, then every second.
	time.Sleep(time.Until(restartedAt.Add(5 * time.Second)))
	require.Equal(t, stateStarting, pc.state(2).state)
	require.NoError(t, pc.kafka.Reconnect())
	pc.obs.mark("kafka reconnected after %v", time.Since(cutAt).Round(time.Millisecond))
	healAt := time.Now()
	h := pc.maxHeight()
	for i := range pc.nodes {
		pc.waitReadyAt(i, h, healAt, "kafka came back")
	}
	for i := range pc.nodes {
		pc.waitClientsBack(i, healAt, "kafka came back")
	}
	time.Sleep(time.Second)
	events := pc.finish("Kafka cut off from every node (short retry phase 2s), a node restarted meanwhile")
	require.Zero(t, acks(events, "", allDownAt, healAt), "envelopes acknowledged while no node could reach Kafka")
}

// TestPartitionRollingRestart restarts every node in turn under load
// (SIGTERM, then the same command line), each once the one before has
// caught up.
func TestPartitionRollingRestart(t *testing.T) {
	pc := newPartitionCluster(t)
	pc.startLoad()
	time.Sleep(2 * time.Second)
	for i := range pc.nodes {
		h := pc.maxHeight()
		start := time.Now()
		pc.restartNode(i)
		pc.waitReadyAt(i, h, start, "the SIGTERM")
		time.Sleep(time.Second)
	}
	time.Sleep(time.Second)
	pc.finish("rolling restart of every node")
}

// TestPartitionFlappingLink pulls orderer1's cable and plugs it back every
// 300ms for 20s under load, then leaves it plugged in: orderer1 catches
// up.
func TestPartitionFlappingLink(t *testing.T) {
	pc := newPartitionCluster(t)
	n1 := pc.nodes[1]
	pc.startLoad()
	time.Sleep(2 * time.Second)
	pc.obs.mark("orderer1's link flapping: down 300ms, up 300ms")
	start := time.Now()
	flaps := 0
	for time.Since(start) < 20*time.Second {
		require.NoError(t, n1.host.Disconnect())
		time.Sleep(300 * time.Millisecond)
		require.NoError(t, n1.host.Reconnect())
		time.Sleep(300 * time.Millisecond)
		flaps++
	}
	pc.obs.mark("orderer1's link up for good after %d flaps in %v", flaps, time.Since(start).Round(time.Millisecond))
	healAt := time.Now()
	pc.waitReadyAt(1, pc.maxHeight(), healAt, "the last flap")
	pc.waitClientsBack(1, healAt, "the last flap")
	time.Sleep(time.Second)
	pc.finish("flapping link of orderer1")
}
