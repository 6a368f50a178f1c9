package netns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Subnet is the network of the hosts' addresses.
const Subnet = "10.213.0.0/24"

// maxHosts is how many hosts a Network can hold (addresses .1 to .250).
const maxHosts = 250

// Prefix starts the name of every namespace this package creates.
const Prefix = "kcnet-"

// bridge is the name of the switch's bridge, in the switch's namespace.
const bridge = "br0"

// Network is a switch and the hosts plugged into it. Its methods are safe
// for concurrent use.
type Network struct {
	name string // prefix of its namespaces: Prefix + "<pid>-<n>-"
	sw   string // the switch's namespace

	mu     sync.Mutex
	hosts  []*Host
	cuts   map[[2]int]bool // by host indexes, lower first
	closed bool
}

// Host is a network namespace plugged into a Network's switch.
type Host struct {
	// Name is the name given to AddHost.
	Name string
	// NS is the namespace's name, for ip netns and ip -n.
	NS string
	// IP is the address of the host's eth0, in Subnet.
	IP string

	nw    *Network
	index int    // in nw.hosts
	port  string // its switch port, in the switch's namespace
}

var (
	sequence   atomic.Int64
	staleOnce  sync.Once
	staleError error
)

// New creates a switch, in a namespace of its own, with no host. The first
// New of a process first removes the namespaces of dead runs
// (RemoveStale). It fails with Check's reason when namespaces cannot be
// made here.
func New() (*Network, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	staleOnce.Do(func() { _, staleError = RemoveStale() })
	if staleError != nil {
		return nil, staleError
	}
	name := fmt.Sprintf("%s%d-%d-", Prefix, os.Getpid(), sequence.Add(1))
	nw := &Network{name: name, sw: name + "switch", cuts: make(map[[2]int]bool)}
	err := runAll(
		[]string{"netns", "add", nw.sw},
		[]string{"-n", nw.sw, "link", "set", "lo", "up"},
		[]string{"-n", nw.sw, "link", "add", bridge, "type", "bridge"},
		[]string{"-n", nw.sw, "link", "set", bridge, "up"},
	)
	if err != nil {
		nw.Close()
		return nil, err
	}
	return nw, nil
}

// AddHost creates a host named name (letters, digits and dashes), plugs
// it into the switch and gives it the next address of Subnet.
func (nw *Network) AddHost(name string) (*Host, error) {
	if name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || name == "switch" {
		return nil, fmt.Errorf("netns: host name %q: want lower-case letters, digits and dashes, not switch", name)
	}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	switch {
	case nw.closed:
		return nil, errors.New("netns: network closed")
	case len(nw.hosts) == maxHosts:
		return nil, fmt.Errorf("netns: %d hosts already", maxHosts)
	}
	for _, h := range nw.hosts {
		if h.Name == name {
			return nil, fmt.Errorf("netns: host %s exists", name)
		}
	}
	i := len(nw.hosts)
	h := &Host{Name: name, NS: nw.name + name, IP: fmt.Sprintf("10.213.0.%d", i+1), nw: nw, index: i, port: fmt.Sprintf("port%d", i)}
	// Registered first, so that Close deletes a host made in part.
	nw.hosts = append(nw.hosts, h)
	err := runAll(
		[]string{"netns", "add", h.NS},
		[]string{"-n", h.NS, "link", "set", "lo", "up"},
		[]string{"-n", h.NS, "link", "add", "eth0", "type", "veth", "peer", "name", h.port, "netns", nw.sw},
		[]string{"-n", h.NS, "addr", "add", h.IP + "/24", "dev", "eth0"},
		[]string{"-n", h.NS, "link", "set", "eth0", "up"},
		[]string{"-n", nw.sw, "link", "set", h.port, "master", bridge, "up"},
		// The cut class: htb passes what no filter classifies
		// unshaped, and sends what a cut's filter classifies to
		// a blackhole.
		[]string{"tc", "-n", nw.sw, "qdisc", "add", "dev", h.port, "root", "handle", "1:", "htb"},
		[]string{"tc", "-n", nw.sw, "class", "add", "dev", h.port, "parent", "1:", "classid", "1:1", "htb", "rate", "1gbit", "quantum", "1514"},
		[]string{"tc", "-n", nw.sw, "qdisc", "add", "dev", h.port, "parent", "1:1", "handle", "10:", "blackhole"},
	)
	if err != nil {
		return nil, fmt.Errorf("netns: host %s: %w", name, err)
	}
	return h, nil
}

// Hosts returns the hosts in the order they were added.
func (nw *Network) Hosts() []*Host {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return append([]*Host(nil), nw.hosts...)
}

// Cut drops every IP packet between a and b, both ways, at the switch,
// until Heal. Cutting a cut pair does nothing.
func (nw *Network) Cut(a, b *Host) error {
	return nw.setCut(a, b, true)
}

// Heal undoes Cut(a, b). Healing a pair that is not cut does nothing.
func (nw *Network) Heal(a, b *Host) error {
	return nw.setCut(a, b, false)
}

func (nw *Network) setCut(a, b *Host, cut bool) error {
	if a.nw != nw || b.nw != nw || a == b {
		return errors.New("netns: cut between two hosts of this network")
	}
	key := [2]int{min(a.index, b.index), max(a.index, b.index)}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.cuts[key] == cut {
		return nil
	}
	// On each end's port, the packets from the other end: the filter's
	// priority is the other end's index, so that Heal finds it.
	var err error
	if cut {
		err = runAll(nw.filter("add", b, a), nw.filter("add", a, b))
	} else {
		err = runAll(nw.filter("del", b, a), nw.filter("del", a, b))
	}
	if err != nil {
		return fmt.Errorf("netns: cut %s-%s: %w", a.Name, b.Name, err)
	}
	nw.cuts[key] = cut
	return nil
}

// filter returns the ip command that adds or deletes, on the port of to,
// the filter that drops packets from from.
func (nw *Network) filter(verb string, to, from *Host) []string {
	args := []string{"-n", nw.sw, "filter", verb, "dev", to.port, "parent", "1:", "protocol", "ip", "prio", strconv.Itoa(from.index + 1)}
	if verb == "add" {
		args = append(args, "u32", "match", "ip", "src", from.IP+"/32", "flowid", "1:1")
	}
	return append([]string{"tc"}, args...)
}

// Disconnect sets h's switch port down: h's eth0 loses its carrier and h
// reaches no other host until Reconnect.
func (h *Host) Disconnect() error {
	return run("ip", "-n", h.nw.sw, "link", "set", h.port, "down")
}

// Reconnect sets h's switch port up again.
func (h *Host) Reconnect() error {
	return run("ip", "-n", h.nw.sw, "link", "set", h.port, "up")
}

// Command returns the command that runs name with args in h's namespace
// (ip netns exec), killed should the caller's process die first.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	killWithParent(cmd)
	return cmd
}

// String returns the host's name and address.
func (h *Host) String() string { return h.Name + " (" + h.IP + ")" }

// Close kills the processes still running in the network's namespaces and
// deletes them, the hosts first, which deletes their veth pairs, then the
// switch. It returns the errors met, and is idempotent.
func (nw *Network) Close() error {
	nw.mu.Lock()
	if nw.closed {
		nw.mu.Unlock()
		return nil
	}
	nw.closed = true
	names := make([]string, 0, len(nw.hosts)+1)
	for _, h := range nw.hosts {
		names = append(names, h.NS)
	}
	nw.mu.Unlock()
	var errs []error
	for _, ns := range append(names, nw.sw) {
		if err := remove(ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Namespaces returns the names of the namespaces that exist now, whoever
// made them.
func Namespaces() ([]string, error) {
	out, err := output("ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range strings.Split(out, "\n") {
		// "name" or "name (id: 3)"
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// RemoveStale removes the namespaces of this package whose process is no
// longer running (a run killed before it could clean up), after killing
// the processes left in them, and returns their names.
func RemoveStale() ([]string, error) {
	names, err := Namespaces()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, ns := range names {
		pid, ok := ownerPID(ns)
		if !ok || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if err := remove(ns); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, ns)
	}
	return removed, errors.Join(errs...)
}

// ownerPID returns the process ID in the name of a namespace of this
// package.
func ownerPID(ns string) (int, bool) {
	rest, ok := strings.CutPrefix(ns, Prefix)
	if !ok {
		return 0, false
	}
	digits, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	return pid, err == nil && pid > 0
}

// remove kills the processes in namespace ns, waits for them to be gone
// and deletes it.
func remove(ns string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := output("ip", "netns", "pids", ns)
		if err != nil {
			break // no such namespace, or made in part: delete says
		}
		pids := strings.Fields(out)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netns: processes %v still in %s", pids, ns)
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				kill(pid)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("No such file")) {
		return fmt.Errorf("netns: ip netns delete %s: %v: %s", ns, err, bytes.TrimSpace(out))
	}
	return nil
}

// runAll runs the ip commands of args in order (tc when args[0] is "tc")
// and stops at the first that fails.
func runAll(args ...[]string) error {
	for _, a := range args {
		name := "ip"
		if a[0] == "tc" {
			name, a = "tc", a[1:]
		}
		if err := run(name, a...); err != nil {
			return err
		}
	}
	return nil
}

func run(name string, args ...string) error {
	_, err := output(name, args...)
	return err
}

// output runs a command and returns its standard output, or an error
// with the command line and its standard error.
func output(name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}
