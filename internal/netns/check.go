package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
)

// DisableEnv is the environment variable that, set to anything but "",
// makes Check report namespaces as unavailable, so that tests that need
// them skip even as root.
const DisableEnv = "KAFKACONSENSUS_NO_NETNS"

// ErrUnavailable is wrapped by Check's errors: network namespaces cannot
// be made here.
var ErrUnavailable = errors.New("network namespaces unavailable")

var checked = sync.OnceValue(func() error {
	return check(env{
		getenv:   os.Getenv,
		goos:     goos,
		euid:     os.Geteuid(),
		lookPath: exec.LookPath,
		tryNetns: tryNetns,
	})
})

// Check returns nil when this process can make network namespaces, and
// otherwise an error wrapping ErrUnavailable that says why: DisableEnv is
// set, not Linux, not root, no ip or tc command (iproute2), or ip netns
// add refused. It tries once per process.
func Check() error { return checked() }

// env is what check looks at, replaced in tests.
type env struct {
	getenv   func(string) string
	goos     string
	euid     int
	lookPath func(string) (string, error)
	tryNetns func() error // makes and deletes a namespace
}

func check(e env) error {
	switch {
	case e.getenv(DisableEnv) != "":
		return fmt.Errorf("%w: %s is set", ErrUnavailable, DisableEnv)
	case e.goos != "linux":
		return fmt.Errorf("%w: they need Linux", ErrUnavailable)
	case e.euid != 0:
		return fmt.Errorf("%w: making them needs root (effective user ID %d)", ErrUnavailable, e.euid)
	}
	for _, cmd := range []string{"ip", "tc"} {
		if _, err := e.lookPath(cmd); err != nil {
			return fmt.Errorf("%w: no %s command (iproute2): %v", ErrUnavailable, cmd, err)
		}
	}
	if err := e.tryNetns(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// tryNetns makes a namespace with what a Network uses (a bridge, a veth
// pair, the tc qdiscs and filter of a cut), runs a program in it, and
// deletes it.
func tryNetns() error {
	ns := fmt.Sprintf("%s%d-0-check", Prefix, os.Getpid())
	err := runAll(
		[]string{"netns", "add", ns},
		[]string{"netns", "exec", ns, "ip", "link", "set", "lo", "up"},
		[]string{"-n", ns, "link", "add", "probebr", "type", "bridge"},
		[]string{"-n", ns, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1"},
		[]string{"tc", "-n", ns, "qdisc", "add", "dev", "probe0", "root", "handle", "1:", "htb"},
		[]string{"tc", "-n", ns, "class", "add", "dev", "probe0", "parent", "1:", "classid", "1:1", "htb", "rate", "1gbit", "quantum", "1514"},
		[]string{"tc", "-n", ns, "qdisc", "add", "dev", "probe0", "parent", "1:1", "handle", "10:", "blackhole"},
		[]string{"tc", "-n", ns, "filter", "add", "dev", "probe0", "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match", "ip", "src", "10.213.0.1/32", "flowid", "1:1"},
	)
	if rerr := remove(ns); err == nil {
		err = rerr
	}
	return err
}
