//go:build !linux

package consensus

import (
	"net"
	"time"
)

// setStallTimeout does nothing: TCP_USER_TIMEOUT is Linux's, and the
// connection waits on the system's own retransmission limits.
func setStallTimeout(net.Conn, time.Duration) error { return nil }
