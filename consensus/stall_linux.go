package consensus

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// setStallTimeout sets TCP_USER_TIMEOUT to d on the TCP connection under
// conn (through TLS and any wrapper with a NetConn method); a connection
// with no TCP connection under it is left alone.
func setStallTimeout(conn net.Conn, d time.Duration) error {
	tcp, ok := underlyingTCP(conn)
	if !ok {
		return nil
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d/time.Millisecond))
	})
	if err != nil {
		return err
	}
	return serr
}

// underlyingTCP returns the TCP connection under conn, unwrapping
// connections with a NetConn method (a *tls.Conn among them).
func underlyingTCP(conn net.Conn) (*net.TCPConn, bool) {
	for {
		switch c := conn.(type) {
		case *net.TCPConn:
			return c, true
		case interface{ NetConn() net.Conn }:
			conn = c.NetConn()
		default:
			return nil, false
		}
	}
}
