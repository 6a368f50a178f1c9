// Package netns builds a network of hosts on one Linux machine, for tests
// of programs that run on several machines: each host is a network
// namespace, and network partitions between hosts are made and mended
// while the programs run.
//
// # The network
//
// A Network is a switch and the hosts plugged into it. The switch is a
// namespace of its own holding a bridge, br0. Each host (AddHost) is a
// namespace with a loopback and one interface, eth0, with an address of
// Subnet (10.213.0.0/24: .1 for the first host, .2 for the second...); the
// other end of eth0's veth pair is a port of the bridge. Nothing is created
// in the namespace of the caller: its interfaces, routes and addresses are
// left alone, and deleting the namespaces deletes every veth pair and the
// bridge with them.
//
//	nw, err := netns.New()          // fails with the reason when namespaces cannot be made
//	defer nw.Close()                // kills what still runs in them, deletes them
//	kafka, err := nw.AddHost("kafka")
//	node, err := nw.AddHost("orderer0")
//	cmd := node.Command("orderer", "start", "--brokers", kafka.IP+":9092", ...)
//	conn, err := node.Dial(ctx, "tcp", "127.0.0.1:9443") // from inside the host
//
// Programs run in a host with Command (ip netns exec). The caller reaches
// a host's own sockets with Dial, which opens the socket from inside the
// host's namespace (setns on a locked thread), so that it sees the host as
// a local process does, whatever the partitions.
//
// # Partitions
//
// There is no firewall (no iptables or nftables): cuts are made on the
// switch, with tc and ip link, where a real network would fail.
//
//   - Cut(a, b) drops every IP packet between two hosts, both ways,
//     silently, as a lost route does: the switch ports of a and b each get,
//     at creation, an htb qdisc whose one class leads to a blackhole qdisc;
//     a cut adds a u32 filter on b's port that sends packets from a's
//     address to that class, and the converse on a's port. Unclassified
//     traffic bypasses htb's shaping, and ARP is not IP, so it passes.
//     Open connections see no reset: they stall until their own timeouts,
//     and new ones are not answered. Heal removes both filters.
//   - Disconnect(h) sets h's switch port down, as a cable pulled: h's eth0
//     loses its carrier and h reaches nobody. Reconnect sets it up again.
//     Doing both every few hundred milliseconds makes a flapping link.
//
// tc actions (act_gact's drop) and netem are kernel modules that a
// minimal kernel may lack; htb, u32 and blackhole are what this needs.
//
// # Cleaning up
//
// Namespace names start with Prefix, then the process ID of the test and a
// sequence number: kcnet-<pid>-<n>-<host>. Close kills the processes still
// in the namespaces and deletes them. A test killed before it could (a
// timeout, SIGKILL) leaves namespaces whose process is gone; the first New
// of a later run removes those (RemoveStale), and leaves those of runs still
// alive. ip netns list shows what is left.
//
// Check reports, as an error naming the reason, when namespaces cannot be
// made here: not Linux, not root, no ip or tc command, ip netns add
// refused (a container without CAP_SYS_ADMIN), or DisableEnv set. Tests
// skip with it.
package netns
