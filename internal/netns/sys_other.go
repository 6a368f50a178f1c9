//go:build !linux

package netns

import (
	"context"
	"errors"
	"net"
	"os/exec"
)

var errNotLinux = errors.New("netns: network namespaces need Linux")

// Dial connects to addr from inside h's namespace (Linux only).
func (h *Host) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, errNotLinux
}

// Listen listens on addr from inside h's namespace (Linux only).
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	return nil, errNotLinux
}

func killWithParent(cmd *exec.Cmd) {}

func processAlive(pid int) bool { return true }

func kill(pid int) {}

const goos = "other"
