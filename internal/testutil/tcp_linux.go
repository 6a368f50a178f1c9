package testutil

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// TCPUserTimeout reads TCP_USER_TIMEOUT, in milliseconds, of the TCP
// connection under conn (through any wrappers with a NetConn method, such
// as *tls.Conn): 0 is the system's default.
func TCPUserTimeout(conn net.Conn) (int, error) {
	for {
		w, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		conn = w.NetConn()
	}
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return 0, fmt.Errorf("testutil: %T is not a TCP connection", conn)
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return 0, err
	}
	var v int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		v, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
	}); err != nil {
		return 0, err
	}
	return v, serr
}
